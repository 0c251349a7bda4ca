/*
 * test_dump_plan.c: the memory budget split of dump (into a directory or s3://), verify and stream
 * (engine_plan_compute in core/engine/engine.c) for 1 to MCW_THREADS_MAX workers: every accepted
 * plan fits the budget and gives each buffer room for what it holds; every worker's layout
 * (the slices of its two buffers) has slices that do not overlap, stay inside their
 * buffer and are each at least their minimum; every refusal names a --memory size, and
 * that size is accepted while one MiB less is not; edge budgets (zero, exactly enough,
 * one byte short, far more than useful).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "sinks.h"
#include "mcw_limits.h"
#include "mspipe.h"

#define ERR_BYTES 512

static const unsigned thread_counts[] = { 1, 2, 3, 4, 7, 8, 16, 31, 64 };
static const uint64_t item_sizes[] = { 1 * KIB, 512 * KIB, 1 * MIB, 2 * MIB };
/* The three sinks; the test's own input (kind, mode) becomes the plan's sink need. */
enum kind { DUMP, VERIFY, STREAM, DUMP_S3 };
static const enum kind kinds[] = { DUMP, VERIFY, STREAM, DUMP_S3 };

struct dump_plan_in {
	enum kind kind;
	uint64_t budget_bytes;
	unsigned threads;
	uint64_t item_size_max;
	enum chunk_write_mode mode;
	unsigned groups;
	size_t filter_bytes;
	bool no_dedupe; /* a hash walk that cannot repeat keys: no dedupe table */
};
#define dump_plan engine_plan

static const char *kind_name(enum kind k)
{
	return k == DUMP ? "dump" : k == VERIFY ? "verify" : k == STREAM ? "stream" : "dump s3";
}

static int dump_plan_compute(const struct dump_plan_in *t, struct engine_plan *p, char *err,
			     size_t cap)
{
	struct engine_plan_in in = {
		.budget_bytes = t->budget_bytes,
		.threads = t->threads,
		.item_size_max = t->item_size_max,
		.groups = t->groups,
		.filter_bytes = t->filter_bytes,
		.dedupe = !t->no_dedupe,
	};
	if (t->kind == DUMP || t->kind == DUMP_S3)
		dump_sink_need(t->mode, t->item_size_max, t->kind == DUMP_S3, &in.sink);
	else if (t->kind == VERIFY)
		verify_sink_need(t->item_size_max, &in.sink);
	else
		stream_sink_need(t->item_size_max, &in.sink);
	return engine_plan_compute(&in, p, err, cap);
}

/* What each worker buffer must hold, from the layout the workers carve (dump_worker.c,
 * verify.c, stream.c), independently of how engine_plan_compute adds it up. */
static size_t reply_max(const struct dump_plan_in *in)
{
	return (size_t)in->item_size_max + MCW_REPLY_OVERHEAD_MAX;
}

static size_t net_need(const struct dump_plan_in *in)
{
	return MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES + reply_max(in);
}

static size_t disk_need(const struct dump_plan_in *in)
{
	size_t keyin = MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t) + MCW_KEYCHUNK_BYTES;
	if (in->kind == DUMP)
		return keyin + chunk_writer_staging_min(in->mode, (uint32_t)in->item_size_max);
	if (in->kind == DUMP_S3) /* staging, then two parts for the uploader */
		return keyin + chunk_writer_staging_min(in->mode, (uint32_t)in->item_size_max) +
		       MCW_S3_PART_BUFS * (size_t)MCW_S3_PART_BYTES;
	if (in->kind == VERIFY)
		return keyin + net_need(in);
	/* the ms pipe's batches, each with a largest value copied in, then the answers */
	return keyin + MCW_STREAM_RECV_BYTES +
	       mspipe_area_bytes(MCW_STREAM_SLOTS, MCW_STREAM_BATCH_RECORDS,
				 MCW_STREAM_BATCH_RECORDS, (size_t)in->item_size_max);
}

/* One slice: inside its buffer, at least min bytes, after the end of the one before. */
static void check_slice(const char *what, const struct engine_slice *s, size_t min, size_t *end,
			size_t buf)
{
	if (s->off < *end || s->off + s->bytes > buf || s->bytes < min)
		fail_msg("slice %s: [%zu, +%zu) after %zu in %zu bytes, min %zu", what, s->off,
			 s->bytes, *end, buf, min);
	*end = s->off + s->bytes;
}

/* The layout every worker takes its slices from: in order, no overlap, each slice at
 * least what its holder needs, the sum within the buffer. */
static void check_layout(const struct dump_plan_in *in, const struct engine_layout *l)
{
	struct engine_sink_need need;
	struct dump_plan_in t = *in;
	struct engine_plan p;
	char err[ERR_BYTES];
	size_t end = 0;
	check_slice("send slots", &l->send_slots, MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES, &end,
		    l->net_bytes);
	check_slice("receive", &l->recv, reply_max(in), &end, l->net_bytes);
	end = 0;
	check_slice("key offsets", &l->key_off, MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), &end,
		    l->disk_bytes);
	check_slice("key input", &l->key_in, MCW_KEYCHUNK_BYTES, &end, l->disk_bytes);
	if (in->kind == DUMP || in->kind == DUMP_S3)
		dump_sink_need(in->mode, in->item_size_max, in->kind == DUMP_S3, &need);
	else if (in->kind == VERIFY)
		verify_sink_need(in->item_size_max, &need);
	else
		stream_sink_need(in->item_size_max, &need);
	assert_int_equal(l->nsink, need.nparts);
	size_t sum = l->key_off.bytes + l->key_in.bytes;
	for (unsigned i = 0; i < l->nsink; i++) {
		check_slice(need.part[i].name, &l->sink[i], need.part[i].min_bytes, &end,
			    l->disk_bytes);
		sum += l->sink[i].bytes;
	}
	assert_true(sum <= l->disk_bytes);
	assert_true(l->send_slots.bytes + l->recv.bytes <= l->net_bytes);
	/* what each holder itself requires of its slice */
	if (in->kind == DUMP || in->kind == DUMP_S3)
		assert_true(l->sink[0].bytes >=
			    chunk_writer_staging_min(in->mode, (uint32_t)in->item_size_max));
	if (in->kind == DUMP_S3)
		assert_true(l->sink[1].bytes >= MCW_S3_PART_BUFS * (size_t)MCW_S3_PART_BYTES);
	if (in->kind == VERIFY)
		assert_true(l->sink[1].bytes >= reply_max(in));
	if (in->kind == STREAM) {
		assert_true(l->sink[0].bytes >=
			    mspipe_area_bytes(MCW_STREAM_SLOTS, MCW_STREAM_BATCH_RECORDS,
					      MCW_STREAM_BATCH_RECORDS, (size_t)in->item_size_max));
		assert_true(l->sink[1].bytes >= MCW_STREAM_RECV_BYTES);
	}
	/* computed once: the same input gives the same layout */
	assert_int_equal(dump_plan_compute(&t, &p, err, sizeof(err)), 0);
	assert_memory_equal(&p.worker, l, sizeof(*l));
}

static void check_plan(const struct dump_plan_in *in, const struct dump_plan *p)
{
	size_t t = in->threads;
	size_t groups = in->groups > 1 ? in->groups * p->kr_group_bytes : 0;
	check_layout(in, &p->worker);
	size_t sum = 2 * t * p->worker.net_bytes + p->kr_recv_bytes + 2 * MCW_KEYCHUNK_BYTES +
		     groups + ROUND_UP(in->filter_bytes, MCW_ALIGN_BYTES) + p->dedupe_bytes;
	if (p->total_bytes > in->budget_bytes || p->total_bytes != sum ||
	    p->worker.net_bytes != p->worker.disk_bytes ||
	    /* over the cap only as far as the largest item needs (64 KiB rounding, twice) */
	    p->worker.net_bytes > MAX((size_t)MCW_WORKER_BUF_MAX_BYTES,
				      MAX(net_need(in), disk_need(in)) + 128 * KIB) ||
	    p->worker.net_bytes % (64 * KIB) != 0 || p->worker.net_bytes < net_need(in) ||
	    p->worker.disk_bytes < disk_need(in) ||
	    (in->no_dedupe ? p->dedupe_bytes != 0 : p->dedupe_bytes < MCW_DEDUPE_MIN_BYTES) ||
	    p->dedupe_bytes % MCW_ALIGN_BYTES != 0 || p->kr_recv_bytes < MCW_KEYCHUNK_BYTES ||
	    (in->groups > 1 && p->kr_group_bytes < MCW_GROUP_KEYCHUNK_BYTES))
		fail_msg("%s, %u threads, item %llu, groups %u, budget %llu: bad plan: net %zu "
			 "disk %zu (need %zu/%zu) kr %zu group %zu dedupe %zu total %zu (sum %zu)",
			 kind_name(in->kind), in->threads, (unsigned long long)in->item_size_max,
			 in->groups, (unsigned long long)in->budget_bytes, p->worker.net_bytes,
			 p->worker.disk_bytes, net_need(in), disk_need(in), p->kr_recv_bytes,
			 p->kr_group_bytes, p->dedupe_bytes, p->total_bytes, sum);
}

/* The size a refusal names ("use --memory NM or more"), in bytes. */
static uint64_t named_size(const char *err)
{
	const char *s = strstr(err, "--memory ");
	if (s == NULL)
		fail_msg("the refusal names no size: \"%s\"", err);
	char *end;
	unsigned long long mib = strtoull(s + strlen("--memory "), &end, 10);
	if (end == s + strlen("--memory ") || *end != 'M')
		fail_msg("the refusal names no size in MiB: \"%s\"", err);
	return mib * MIB;
}

static int plan(struct dump_plan_in *in, uint64_t budget, struct dump_plan *p, char *err)
{
	in->budget_bytes = budget;
	err[0] = '\0';
	memset(p, 0xa5, sizeof(*p)); /* what a refusal leaves must not look like a plan */
	int ret = dump_plan_compute(in, p, err, ERR_BYTES);
	if (ret == 0)
		check_plan(in, p);
	return ret;
}

/* For one shape: the smallest budget named by a refusal is accepted, a MiB less is
 * refused, and a sweep of budgets either plans well or refuses with a size. */
static void check_shape(struct dump_plan_in *in)
{
	char err[ERR_BYTES];
	struct dump_plan p;
	assert_int_equal(plan(in, 0, &p, err), -ENOMEM);
	uint64_t need = named_size(err);
	assert_non_null(strstr(err, "fewer --threads"));
	if (plan(in, need, &p, err) != 0)
		fail_msg("%s, %u threads, item %llu: the size named (%llu MiB) is refused: %s",
			 kind_name(in->kind), in->threads, (unsigned long long)in->item_size_max,
			 (unsigned long long)(need / MIB), err);
	assert_int_equal(plan(in, need - MIB, &p, err), -ENOMEM);
	assert_int_equal(named_size(err), need); /* the same advice from any short budget */
	size_t last_net = 0;
	for (uint64_t b = need / 2; b < need + 2 * GIB; b = b * 5 / 4 + 4093) {
		int ret = plan(in, b, &p, err);
		if (b < need && ret == 0) {
			assert_true(b > need - MIB); /* the size named is rounded up to a MiB */
		} else if (b < need) {
			assert_int_equal(named_size(err), need);
			continue;
		}
		if (ret != 0)
			fail_msg("%s, %u threads, item %llu, groups %u: %llu bytes refused, %llu "
				 "accepted: %s",
				 kind_name(in->kind), in->threads,
				 (unsigned long long)in->item_size_max, in->groups,
				 (unsigned long long)b, (unsigned long long)need, err);
		assert_true(p.worker.net_bytes >= last_net); /* more budget, never less */
		last_net = p.worker.net_bytes;
	}
	/* far more: capped, unless what a buffer must hold is more than the cap */
	size_t buf_min = ROUND_UP(MAX(net_need(in), disk_need(in)), 64 * KIB);
	assert_int_equal(last_net, MAX((size_t)MCW_WORKER_BUF_MAX_BYTES, buf_min));
}

/* dump --out s3://: a budget too small says so and names the uploader's part buffers. */
static void test_s3_refusal_names_the_upload_parts(void **state)
{
	(void)state;
	struct dump_plan_in in = {
		.kind = DUMP_S3, .threads = 2, .item_size_max = MIB, .groups = 1
	};
	char err[ERR_BYTES];
	struct dump_plan p;
	assert_int_equal(plan(&in, 64 * MIB, &p, err), -ENOMEM);
	assert_non_null(strstr(err, "upload parts"));
	assert_non_null(strstr(err, "--memory"));
	assert_int_equal(plan(&in, named_size(err), &p, err), 0);
	assert_true(p.worker.sink[1].bytes >= MCW_S3_PART_BUFS * (size_t)MCW_S3_PART_BYTES);
}

static void test_every_shape(void **state)
{
	(void)state;
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++)
		for (size_t t = 0; t < ARRAY_LEN(thread_counts); t++)
			for (size_t i = 0; i < ARRAY_LEN(item_sizes); i++)
				for (int mode = 0; mode < 2; mode++) {
					struct dump_plan_in in = {
						.kind = kinds[k],
						.threads = thread_counts[t],
						.item_size_max = item_sizes[i],
						.mode =
						    mode ? CHUNK_WRITE_WRITEV : CHUNK_WRITE_STAGE,
						.groups = 1,
					};
					check_shape(&in);
				}
}

static void test_groups_and_rings(void **state)
{
	(void)state;
	static const unsigned groups[] = { 1, 2, 17, KEYFILTER_GROUPS_MAX };
	static const size_t filters[] = { 0, 1, 4096, 123457, 64 * MIB };
	for (size_t g = 0; g < ARRAY_LEN(groups); g++)
		for (size_t f = 0; f < ARRAY_LEN(filters); f++)
			for (size_t t = 0; t < ARRAY_LEN(thread_counts); t += 3) {
				struct dump_plan_in in = {
					.kind = DUMP,
					.threads = thread_counts[t],
					.item_size_max = MIB,
					.groups = groups[g],
					.filter_bytes = filters[f],
				};
				check_shape(&in);
				char err[ERR_BYTES];
				struct dump_plan p;
				assert_int_equal(plan(&in, 0, &p, err), -ENOMEM);
				/* the refusal says when the rings are part of the reason */
				assert_true((strstr(err, "key filter's rings") != NULL) ==
					    (filters[f] != 0));
			}
}

static void test_exact_edges(void **state)
{
	(void)state;
	char err[ERR_BYTES];
	struct dump_plan p;
	struct dump_plan_in in = {
		.kind = DUMP,
		.threads = 4,
		.item_size_max = MIB,
		.groups = 1,
	};
	/* find the smallest accepted budget by bisection: it is a whole number of 64 KiB
	 * steps above the fixed part, and one byte less is refused */
	assert_int_equal(plan(&in, 0, &p, err), -ENOMEM);
	uint64_t hi = named_size(err), lo = 0;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (plan(&in, mid, &p, err) == 0)
			hi = mid;
		else
			lo = mid;
	}
	assert_int_equal(plan(&in, hi, &p, err), 0);
	assert_int_equal(p.total_bytes, hi); /* nothing left over at the edge */
	assert_int_equal(p.dedupe_bytes, MCW_DEDUPE_MIN_BYTES);
	assert_int_equal(plan(&in, hi - 1, &p, err), -ENOMEM);
	assert_true(named_size(err) >= hi && named_size(err) < hi + MIB);

	/* a huge budget: buffers capped, the dedupe table takes the rest */
	assert_int_equal(plan(&in, 64 * GIB, &p, err), 0);
	assert_int_equal(p.worker.net_bytes, MCW_WORKER_BUF_MAX_BYTES);
	assert_true(p.total_bytes > 64 * GIB - MCW_ALIGN_BYTES);

	/* the default budget holds a default dump on two workers */
	in.threads = 2;
	assert_int_equal(plan(&in, MCW_MEMORY_DEFAULT_BYTES, &p, err), 0);

	/* the refusal says what was asked for */
	in.threads = 64;
	assert_int_equal(plan(&in, MCW_MEMORY_DEFAULT_BYTES, &p, err), -ENOMEM);
	assert_non_null(strstr(err, "64 worker(s)"));
	assert_non_null(strstr(err, "64.0 MiB"));
}

/* Without a dedupe table (a hash walk, not resumed) the plan needs MCW_DEDUPE_MIN_BYTES
 * less and leaves what the buffers do not use untouched instead of giving it to a table. */
static void test_no_dedupe(void **state)
{
	(void)state;
	char err[ERR_BYTES];
	struct dump_plan with, without;
	struct dump_plan_in in = {
		.kind = DUMP,
		.threads = 2,
		.item_size_max = MIB,
		.groups = 1,
	};
	assert_int_equal(plan(&in, 0, &with, err), -ENOMEM);
	uint64_t need_with = named_size(err);
	in.no_dedupe = true;
	assert_int_equal(plan(&in, 0, &without, err), -ENOMEM);
	uint64_t need_without = named_size(err);
	assert_true(need_without < need_with);
	assert_true(need_with - need_without <= MCW_DEDUPE_MIN_BYTES + MIB);
	assert_int_equal(plan(&in, MCW_MEMORY_DEFAULT_BYTES, &without, err), 0);
	assert_int_equal(without.dedupe_bytes, 0);
	assert_true(without.total_bytes < MCW_MEMORY_DEFAULT_BYTES);
	in.no_dedupe = false;
	assert_int_equal(plan(&in, MCW_MEMORY_DEFAULT_BYTES, &with, err), 0);
	/* the buffers are the same; only the table differs */
	assert_memory_equal(&with.worker, &without.worker, sizeof(with.worker));
	assert_int_equal(with.total_bytes - without.total_bytes, with.dedupe_bytes);
}

/*
 * A regression test: with large items (memcached -I 4m and up; -I goes to 1024m) a worker
 * buffer had to exceed MCW_WORKER_BUF_MAX_BYTES, so no budget was enough, yet the refusal
 * named a --memory size as if one were. Every refusal's size must plan.
 */
static void test_large_items(void **state)
{
	(void)state;
	static const uint64_t large[] = { 3 * MIB, 4 * MIB, 8 * MIB, 16 * MIB, 64 * MIB };
	char refused[2048] = "";
	size_t len = 0;
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++)
		for (int mode = 0; mode < (kinds[k] == DUMP ? 2 : 1); mode++)
			for (size_t i = 0; i < ARRAY_LEN(large); i++) {
				struct dump_plan_in in = {
					.kind = kinds[k],
					.threads = 1,
					.item_size_max = large[i],
					.mode = mode ? CHUNK_WRITE_WRITEV : CHUNK_WRITE_STAGE,
					.groups = 1,
				};
				char err[ERR_BYTES];
				struct dump_plan p;
				assert_int_equal(plan(&in, 0, &p, err), -ENOMEM);
				if (plan(&in, named_size(err), &p, err) == 0)
					continue;
				/* whatever the budget */
				assert_int_equal(plan(&in, 64 * GIB, &p, err), -ENOMEM);
				len += (size_t)snprintf(refused + len, sizeof(refused) - len,
							" %s%s/%lluM", kind_name(in.kind),
							mode ? "(writev)" : "",
							(unsigned long long)(large[i] / MIB));
			}
	if (len > 0)
		fail_msg("no budget plans:%s", refused);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_shape),
		cmocka_unit_test(test_s3_refusal_names_the_upload_parts),
		cmocka_unit_test(test_groups_and_rings),
		cmocka_unit_test(test_exact_edges),
		cmocka_unit_test(test_no_dedupe),
		cmocka_unit_test(test_large_items),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
