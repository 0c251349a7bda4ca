/*
 * verify.c: `mcwarm verify`, source against destination. The dump engine lists the
 * source's keys (metadump, spooled, optionally sampled by key hash); each worker fetches
 * every key from both servers with two mgpipes given identical batches, without q, so
 * every key gets exactly one reply (VA or EN) on each side and the replies pair up in
 * order. Neither side's LRU is bumped (mg u).
 *
 * Outcomes per key: equal; missing (at the destination); value differs; flags differ;
 * TTL differs (beyond --ttl-slack); expired (gone from the source since the listing: not
 * counted against the warm ratio). warm ratio = equal / (checked - expired).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "dump_private.h"
#include "json.h"
#include "keyspool.h"
#include "mgpipe.h"

static const char verify_usage[] =
    "usage: mcwarm verify --source HOST:PORT --dest HOST:PORT [options]\n"
    "\n"
    "Checks that every item of the source (or a sample) is in the destination with a\n"
    "byte-equal value, equal client flags and a TTL within --ttl-slack seconds. Keys come\n"
    "from 'lru_crawler metadump' of the source; values from pipelined 'mg' on both sides\n"
    "(no LRU bump on either). Prints counts per outcome, the warm ratio\n"
    "(equal / (checked - expired)) and the first mismatches.\n"
    "\n"
    "  -s, --source HOST:PORT   the server warmed from (required)\n"
    "  -d, --dest HOST:PORT     the server warmed (required)\n"
    "      --sample N           check about N keys, chosen by key hash (default: all)\n"
    "      --ttl-slack SECONDS  allowed TTL difference (default 2: each server counts\n"
    "                           whole seconds, so one expiry reads +-1 on either side)\n"
    "      --min-ratio R        exit 2 when the warm ratio is below R (default 0.99)\n"
    "      --mismatches N       list up to N mismatches (default 10, at most 100)\n"
    "      --crawl hash|all     key walk of the source (default hash)\n"
    "  -m, --memory SIZE        memory budget (default 64M)\n"
    "  -t, --threads N          workers, two connections each (default: online CPUs)\n"
    "      --work DIR           where the key spool goes for the run (default /tmp)\n"
    "      --io-timeout SECONDS a server silent this long is gone (default 30)\n"
    "      --json               print a JSON report on stdout\n"
    "  -q, --quiet              no budget table, no progress line\n"
    "  -h, --help               this text\n";

enum { OPT_SAMPLE = 256, OPT_SLACK, OPT_MIN_RATIO, OPT_MISMATCHES, OPT_CRAWL, OPT_WORK };

/* Options of verify only; the common ones go to cli_common_option. 0, or an exit code. */
static int verify_option(int ch, const char *arg, struct dump_opts *o)
{
	uint64_t v;
	char *end;
	switch (ch) {
	case 's':
	case 'd':
		if (hostport_parse(arg, ch == 's' ? &o->source : &o->dest) < 0)
			return cli_usage_error("verify", "'%s' is not HOST:PORT", arg);
		return 0;
	case OPT_SAMPLE:
		return cli_uint("verify", "sample", arg, 1, UINT64_MAX / 2, &o->sample)
			   ? 0
			   : MCW_EXIT_USAGE;
	case OPT_SLACK:
		if (!cli_uint("verify", "ttl-slack", arg, 0, 86400, &v))
			return MCW_EXIT_USAGE;
		o->ttl_slack_s = (int64_t)v;
		return 0;
	case OPT_MIN_RATIO:
		o->min_ratio = strtod(arg, &end);
		if (*end != '\0' || o->min_ratio < 0 || o->min_ratio > 1)
			return cli_usage_error("verify", "--min-ratio: a number from 0 to 1");
		return 0;
	case OPT_MISMATCHES:
		if (!cli_uint("verify", "mismatches", arg, 0, VERIFY_MISMATCHES_MAX, &v))
			return MCW_EXIT_USAGE;
		o->mismatches_max = (unsigned)v;
		return 0;
	case OPT_CRAWL:
		return crawl_option("verify", arg, &o->crawl);
	case OPT_WORK:
		o->out_dir = arg;
		return 0;
	default:
		return engine_shared_option("verify", ch, arg, o);
	}
}

static int parse_opts(int argc, char **argv, struct dump_opts *o)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "dest", required_argument, NULL, 'd' },
		{ "sample", required_argument, NULL, OPT_SAMPLE },
		{ "ttl-slack", required_argument, NULL, OPT_SLACK },
		{ "min-ratio", required_argument, NULL, OPT_MIN_RATIO },
		{ "mismatches", required_argument, NULL, OPT_MISMATCHES },
		{ "crawl", required_argument, NULL, OPT_CRAWL },
		{ "work", required_argument, NULL, OPT_WORK },
		KEYFILTER_LONGOPTS,
		CLI_COMMON_LONGOPTS,
		{ 0 },
	};
	*o = (struct dump_opts){
		.kind = RUN_VERIFY,
		.out_dir = "/tmp",
		.crawl = KEYS_HASH,
		.try_mgdump = true,
		.ttl_slack_s = 2,
		.min_ratio = 0.99,
		.mismatches_max = 10,
	};
	cli_common_defaults(&o->co);
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		int ret = verify_option(ch, optarg, o);
		if (ret != 0)
			return ret;
	}
	if (o->co.help) {
		printf("%s\n%s\n%s\n%s\n%s", verify_usage, keyfilter_help, cli_limits_help,
		       cli_secure_help, mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("verify", "unexpected argument '%s'", argv[optind]);
	if (o->source.port == 0 || o->dest.port == 0)
		return cli_usage_error("verify", "--source and --dest are required");
	return cli_secure_finish("verify", &o->co, &o->source, &o->dest);
}

/* ---- the worker ---------------------------------------------------------------------- */

struct vjob {
	struct dump_worker *w;
	struct dump_ctx *c;
	struct mgpipe src, dst;
	struct keychunk_view kv;
	uint32_t *key_off;
	int64_t last_io_ns; /* the last completion: silence is measured from it */
};

static void note_mismatch(struct vjob *j, uint32_t index, const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note_mismatch(struct vjob *j, uint32_t index, const char *outcome, const char *fmt, ...)
{
	struct dump_ctx *c = j->c;
	pthread_mutex_lock(&c->run.mu);
	if (c->nmismatches < c->o.mismatches_max) {
		struct verify_mismatch *m = &c->mismatches[c->nmismatches++];
		uint16_t klen;
		uint8_t kflags;
		const uint8_t *key = mgpipe_key(&j->src, index, &klen, &kflags);
		size_t n = mcp_pct_encode(m->key, sizeof(m->key) - 1, key, klen);
		m->key[n] = '\0';
		m->outcome = outcome;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->detail, sizeof(m->detail), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&c->run.mu);
}

/* Classifies one key from its two replies. */
static void classify(struct vjob *j, uint32_t index, enum mgpipe_next ns,
		     const struct mcp_meta_reply *rs, enum mgpipe_next nd,
		     const struct mcp_meta_reply *rd)
{
	struct dump_stats *st = &j->c->st;
	int64_t slack = j->c->o.ttl_slack_s;
	atomic_fetch_add_explicit(&st->items, 1, memory_order_relaxed);
	if (ns == MGPIPE_MISS) {
		atomic_fetch_add_explicit(&st->v_expired, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&st->value_bytes, rs->value_len, memory_order_relaxed);
	if (nd == MGPIPE_MISS) {
		atomic_fetch_add_explicit(&st->v_missing, 1, memory_order_relaxed);
		note_mismatch(j, index, "missing", "not in the destination");
	} else if (rs->value_len != rd->value_len ||
		   memcmp(rs->value, rd->value, rs->value_len) != 0) {
		atomic_fetch_add_explicit(&st->v_value, 1, memory_order_relaxed);
		note_mismatch(j, index, "value differs", "source %zu bytes, destination %zu bytes",
			      rs->value_len, rd->value_len);
	} else if (rs->client_flags != rd->client_flags) {
		atomic_fetch_add_explicit(&st->v_flags, 1, memory_order_relaxed);
		note_mismatch(j, index, "flags differ", "source %u, destination %u",
			      rs->client_flags, rd->client_flags);
	} else if ((rs->ttl < 0) != (rd->ttl < 0) ||
		   (rs->ttl >= 0 && (rs->ttl - rd->ttl > slack || rd->ttl - rs->ttl > slack))) {
		atomic_fetch_add_explicit(&st->v_ttl, 1, memory_order_relaxed);
		note_mismatch(j, index, "TTL differs", "source %lld s, destination %lld s",
			      (long long)rs->ttl, (long long)rd->ttl);
	} else {
		atomic_fetch_add_explicit(&st->v_equal, 1, memory_order_relaxed);
	}
}

/* Pairs every reply both sides have; a side without one waits for the other. */
static void compare(struct vjob *j)
{
	struct mcp_meta_reply rs, rd;
	uint32_t is, id;
	for (;;) {
		/* pull both: each pipe also handles its batch ends (MN) while pulling */
		enum mgpipe_next ns = mgpipe_next(&j->src, &rs, &is);
		enum mgpipe_next nd = mgpipe_next(&j->dst, &rd, &id);
		if ((ns != MGPIPE_VALUE && ns != MGPIPE_MISS) ||
		    (nd != MGPIPE_VALUE && nd != MGPIPE_MISS))
			break;
		if (is != id) {
			dump_fail(j->c, MCW_EXIT_PROTOCOL,
				  "replies out of step: source answered key #%u, destination #%u",
				  is, id);
			return;
		}
		classify(j, is, ns, &rs, nd, &rd);
		mgpipe_consume(&j->src, &rs);
		mgpipe_consume(&j->dst, &rd);
	}
	for (struct mgpipe *p = &j->src; p <= &j->dst; p++)
		if (p->exit_code)
			dump_fail(j->c, p->exit_code, "worker %u: %s", j->w->id, p->error);
}

static bool pump(struct vjob *j)
{
	struct ur_cqe cqes[MCW_RING_ENTRIES];
	bool awaiting = mgpipe_awaiting(&j->src) || mgpipe_awaiting(&j->dst);
	int64_t ws = mgpipe_wake_ns(&j->src), wd = mgpipe_wake_ns(&j->dst);
	int64_t wake = ws && wd ? MIN(ws, wd) : MAX(ws, wd);
	int ret = ur_submit_wait(j->w->ring, 1, engine_wait_ms(j->c, wake));
	if (ret == -ETIME && awaiting &&
	    mono_ns() - j->last_io_ns >= (int64_t)j->c->o.co.io_timeout_ms * 1000000) {
		dump_fail(j->c, MCW_EXIT_UNAVAILABLE, "worker %u: no reply for %d s", j->w->id,
			  j->c->o.co.io_timeout_ms / 1000);
		return false;
	}
	if (ret < 0 && ret != -ETIME) {
		dump_fail(j->c, MCW_EXIT_SOFTWARE, "io_uring wait failed: %s", strerror(-ret));
		return false;
	}
	unsigned n = ur_reap(j->w->ring, cqes, ARRAY_LEN(cqes));
	if (n > 0)
		j->last_io_ns = mono_ns();
	for (unsigned i = 0; i < n; i++)
		mgpipe_on_cqe(mgpipe_owns(&j->src, cqes[i].user_data) ? &j->src : &j->dst,
			      &cqes[i]);
	return !dump_failed(j->c);
}

static void run_job(struct vjob *j, uint32_t seq)
{
	uint32_t n;
	if (!engine_load_keys(j->c, j->w, seq, &j->kv, &j->key_off, &n))
		return;
	mgpipe_job(&j->src, &j->kv, j->key_off, n);
	mgpipe_job(&j->dst, &j->kv, j->key_off, n);
	j->last_io_ns = mono_ns();
	for (;;) {
		compare(j);
		if (dump_failed(j->c))
			return;
		mgpipe_kick(&j->src);
		mgpipe_kick(&j->dst);
		if (mgpipe_done(&j->src) && mgpipe_done(&j->dst) && !j->src.send_busy &&
		    !j->dst.send_busy)
			break;
		if (!pump(j))
			return;
	}
	atomic_fetch_add(&j->c->st.keys_fetched, j->src.fetched);
	j->src.fetched = j->dst.fetched = 0;
	atomic_fetch_add(&j->c->st.jobs_done, 1);
}

static int setup(struct dump_worker *w, struct vjob *j)
{
	struct dump_ctx *c = w->ctx;
	char name[16];
	snprintf(name, sizeof(name), "mcw-verify-%u", w->id);
	int ret = run_thread_setup(name, w->cpu, &w->ring);
	if (ret < 0)
		return ret;
	memset(j, 0, sizeof(*j));
	j->w = w;
	j->c = c;
	size_t slots = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES;
	size_t keyin = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES) +
		       MCW_KEYCHUNK_BYTES;
	struct mgpipe_opts so = {
		.ring = w->ring,
		.fd = w->fd,
		.id = 0,
		.what = "the source",
		.send_area = w->net_buf,
		.send_bytes = slots,
		.recv_area = w->net_buf + slots,
		.recv_bytes = w->net_bytes - slots,
		.value_max = c->src.item_size_max,
		.limits = rate_limits_active(&c->limits) ? &c->limits : NULL,
	};
	struct mgpipe_opts dopt = so;
	dopt.fd = w->dst_fd;
	dopt.id = 1;
	dopt.what = "the destination";
	dopt.send_area = w->disk_buf + keyin;
	dopt.recv_area = w->disk_buf + keyin + slots;
	dopt.recv_bytes = w->disk_bytes - keyin - slots;
	dopt.value_max = c->dst.item_size_max;
	mgpipe_init(&j->src, &so);
	mgpipe_init(&j->dst, &dopt);
	return 0;
}

void *verify_worker_main(void *arg)
{
	struct dump_worker *w = arg;
	struct dump_ctx *c = w->ctx;
	struct vjob j;
	int ret = setup(w, &j);
	if (ret < 0)
		dump_fail(c, MCW_EXIT_SOFTWARE, "worker %u cannot start: %s", w->id,
			  strerror(-ret));
	for (int64_t job; ret == 0 && (job = engine_take_job(c, true)) >= 0;)
		run_job(&j, (uint32_t)job);
	ur_ring_destroy(w->ring);
	w->ring = NULL;
	close(w->fd);
	net_close(w->dst_fd);
	w->fd = w->dst_fd = -1;
	run_thread_done(&c->run);
	return NULL;
}

/* ---- the report ---------------------------------------------------------------------- */

static int report(struct dump_ctx *c, int code, double secs)
{
	struct dump_stats *s = &c->st;
	uint64_t eq = atomic_load(&s->v_equal), miss = atomic_load(&s->v_missing);
	uint64_t val = atomic_load(&s->v_value), fl = atomic_load(&s->v_flags);
	uint64_t ttl = atomic_load(&s->v_ttl), exp = atomic_load(&s->v_expired);
	uint64_t checked = eq + miss + val + fl + ttl;
	double ratio = checked > 0 ? (double)eq / (double)checked : 1.0;
	if (code == 0 && ratio < c->o.min_ratio)
		code = MCW_EXIT_MISMATCH;
	fprintf(stderr,
		"mcwarm: verify %s: warm ratio %.6f (%llu equal of %llu checked); missing %llu, "
		"value differs %llu, flags differ %llu, TTL differs %llu; expired at the source "
		"%llu; %.2f s\n",
		code == 0		    ? "passed"
		: code == MCW_EXIT_MISMATCH ? "BELOW --min-ratio"
					    : "FAILED",
		ratio, (unsigned long long)eq, (unsigned long long)checked,
		(unsigned long long)miss, (unsigned long long)val, (unsigned long long)fl,
		(unsigned long long)ttl, (unsigned long long)exp, secs);
	for (unsigned i = 0; i < c->nmismatches; i++)
		fprintf(stderr, "mcwarm:   %s: key=%s (%s)\n", c->mismatches[i].outcome,
			c->mismatches[i].key, c->mismatches[i].detail);
	if (!c->o.co.json)
		return code;
	struct json j;
	json_begin(&j, stdout);
	json_str(&j, "command", "verify");
	json_bool(&j, "ok", code == 0);
	json_i64(&j, "exit_code", code);
	if (c->run.failed)
		json_str(&j, "error", c->run.error);
	json_str(&j, "source", c->o.source.text);
	json_str(&j, "dest", c->o.dest.text);
	json_f64(&j, "warm_ratio", ratio);
	json_f64(&j, "min_ratio", c->o.min_ratio);
	json_u64(&j, "keys_listed", atomic_load(&s->keys_listed));
	json_u64(&j, "keys_unsampled", atomic_load(&s->keys_unsampled));
	json_u64(&j, "keys_filtered_prefix", atomic_load(&s->keys_filtered_prefix));
	json_u64(&j, "keys_filtered_ring", atomic_load(&s->keys_filtered_ring));
	json_u64(&j, "checked", checked);
	json_u64(&j, "equal", eq);
	json_u64(&j, "missing", miss);
	json_u64(&j, "value_differs", val);
	json_u64(&j, "flags_differ", fl);
	json_u64(&j, "ttl_differs", ttl);
	json_u64(&j, "expired", exp);
	json_f64(&j, "wall_seconds", secs);
	json_obj(&j, "mismatches");
	for (unsigned i = 0; i < c->nmismatches; i++) {
		char k[12];
		snprintf(k, sizeof(k), "%u", i);
		json_obj(&j, k);
		json_str(&j, "key", c->mismatches[i].key);
		json_str(&j, "outcome", c->mismatches[i].outcome);
		json_str(&j, "detail", c->mismatches[i].detail);
		json_obj_end(&j);
	}
	json_obj_end(&j);
	json_end(&j);
	return code;
}

int mcw_cmd_verify(int argc, char **argv)
{
	static struct dump_ctx ctx;
	struct dump_ctx *c = &ctx;
	memset(c, 0, sizeof(*c));
	int code = parse_opts(argc, argv, &c->o);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	engine_init(c);
	int64_t t0 = mono_ns();
	code = engine_run(c);
	code = report(c, code, (double)(mono_ns() - t0) / 1e9);
	engine_metrics(c, metrics_phase_of(code));
	engine_release(c);
	return code;
}
