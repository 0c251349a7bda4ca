/*
 * verify.c: `mcwarm verify`, source against destination. The engine (engine.h) lists the
 * source's keys (metadump, spooled, optionally sampled by key hash); each worker fetches
 * every key from both servers with two mgpipes given identical batches, without q, so
 * every key gets exactly one reply (VA or EN) on each side and the replies pair up in
 * order. Neither side's LRU is bumped (mg u).
 *
 * The verify sink: the engine's worker runs the source's pipe (not quiet) and offers each
 * reply; the sink's own pipe on the destination gets identical batches (job_begin, kick)
 * and on_value pairs the two replies of one key, keeping the source's until the
 * destination's is there.
 *
 * Outcomes per key: equal; missing (at the destination); value differs; flags differ;
 * TTL differs (beyond --ttl-slack); expired (gone from the source since the listing: not
 * counted against the warm ratio). warm ratio = equal / (checked - expired).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "engine.h"
#include "json.h"
#include "sinks.h"

struct verify_opts {
	struct hostport dest;
	uint64_t sample; /* about this many keys (0: all) */
	int64_t ttl_slack_s;
	double min_ratio;
	unsigned mismatches_max; /* listed in the report */
};

struct verify_stats {
	atomic_uint_fast64_t equal;
	atomic_uint_fast64_t missing;
	atomic_uint_fast64_t value;
	atomic_uint_fast64_t flags;
	atomic_uint_fast64_t ttl;
	atomic_uint_fast64_t expired; /* gone from the source since the listing */
};

struct verify_mismatch {
	char key[3 * MCP_KEY_MAX + 1]; /* percent-encoded */
	const char *outcome;
	char detail[128];
};

/* The sink's state of one worker: its connection and pipe to the destination. */
struct verify_worker {
	struct verify_cmd *v;
	int fd;
	struct mgpipe dst;
};

struct verify_cmd {
	struct engine e; /* e.o.dir is --work */
	struct verify_opts o;
	struct verify_stats st;
	struct server_info dst;
	struct verify_mismatch mismatches[VERIFY_MISMATCHES_MAX];
	unsigned nmismatches; /* under e.run.mu */
	struct verify_worker workers[MCW_THREADS_MAX];
};

static struct verify_worker *vw(struct engine_worker *w)
{
	return w->sink;
}

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
static int verify_option(int ch, const char *arg, struct verify_cmd *v)
{
	struct engine_opts *eo = &v->e.o;
	struct verify_opts *o = &v->o;
	uint64_t n;
	char *end;
	switch (ch) {
	case 's':
	case 'd':
		if (hostport_parse(arg, ch == 's' ? &eo->source : &o->dest) < 0)
			return cli_usage_error("verify", "'%s' is not HOST:PORT", arg);
		return 0;
	case OPT_SAMPLE:
		return cli_uint("verify", "sample", arg, 1, UINT64_MAX / 2, &o->sample)
			   ? 0
			   : MCW_EXIT_USAGE;
	case OPT_SLACK:
		if (!cli_uint("verify", "ttl-slack", arg, 0, 86400, &n))
			return MCW_EXIT_USAGE;
		o->ttl_slack_s = (int64_t)n;
		return 0;
	case OPT_MIN_RATIO:
		o->min_ratio = strtod(arg, &end);
		if (*end != '\0' || o->min_ratio < 0 || o->min_ratio > 1)
			return cli_usage_error("verify", "--min-ratio: a number from 0 to 1");
		return 0;
	case OPT_MISMATCHES:
		if (!cli_uint("verify", "mismatches", arg, 0, VERIFY_MISMATCHES_MAX, &n))
			return MCW_EXIT_USAGE;
		o->mismatches_max = (unsigned)n;
		return 0;
	case OPT_CRAWL:
		return crawl_option("verify", arg, &eo->crawl);
	case OPT_WORK:
		eo->dir = arg;
		return 0;
	default:
		return engine_shared_option("verify", ch, arg, eo);
	}
}

static int parse_opts(int argc, char **argv, struct verify_cmd *v)
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
	struct engine_opts *o = &v->e.o;
	*o = (struct engine_opts){ .dir = "/tmp", .crawl = KEYS_HASH, .try_mgdump = true };
	v->o = (struct verify_opts){ .ttl_slack_s = 2, .min_ratio = 0.99, .mismatches_max = 10 };
	cli_common_defaults(&o->co);
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		int ret = verify_option(ch, optarg, v);
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
	if (o->source.port == 0 || v->o.dest.port == 0)
		return cli_usage_error("verify", "--source and --dest are required");
	return cli_secure_finish("verify", &o->co, &o->source, &v->o.dest);
}

/* ---- the outcomes ----------------------------------------------------------------------- */

static void note_mismatch(struct engine_worker *w, uint32_t index, const char *outcome,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void note_mismatch(struct engine_worker *w, uint32_t index, const char *outcome,
			  const char *fmt, ...)
{
	struct verify_cmd *v = vw(w)->v;
	pthread_mutex_lock(&v->e.run.mu);
	if (v->nmismatches < v->o.mismatches_max) {
		struct verify_mismatch *m = &v->mismatches[v->nmismatches++];
		uint16_t klen;
		uint8_t kflags;
		const uint8_t *key = mgpipe_key(&w->pipe, index, &klen, &kflags);
		size_t n = mcp_pct_encode(m->key, sizeof(m->key) - 1, key, klen);
		m->key[n] = '\0';
		m->outcome = outcome;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->detail, sizeof(m->detail), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&v->e.run.mu);
}

/* Classifies one key from its two replies. */
static void classify(struct engine_worker *w, uint32_t index, enum mgpipe_next ns,
		     const struct mcp_meta_reply *rs, enum mgpipe_next nd,
		     const struct mcp_meta_reply *rd)
{
	struct verify_cmd *v = vw(w)->v;
	struct verify_stats *st = &v->st;
	int64_t slack = v->o.ttl_slack_s;
	atomic_fetch_add_explicit(&v->e.st.items, 1, memory_order_relaxed);
	if (ns == MGPIPE_MISS) {
		atomic_fetch_add_explicit(&st->expired, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&v->e.st.value_bytes, rs->value_len, memory_order_relaxed);
	if (nd == MGPIPE_MISS) {
		atomic_fetch_add_explicit(&st->missing, 1, memory_order_relaxed);
		note_mismatch(w, index, "missing", "not in the destination");
	} else if (rs->value_len != rd->value_len ||
		   memcmp(rs->value, rd->value, rs->value_len) != 0) {
		atomic_fetch_add_explicit(&st->value, 1, memory_order_relaxed);
		note_mismatch(w, index, "value differs", "source %zu bytes, destination %zu bytes",
			      rs->value_len, rd->value_len);
	} else if (rs->client_flags != rd->client_flags) {
		atomic_fetch_add_explicit(&st->flags, 1, memory_order_relaxed);
		note_mismatch(w, index, "flags differ", "source %u, destination %u",
			      rs->client_flags, rd->client_flags);
	} else if ((rs->ttl < 0) != (rd->ttl < 0) ||
		   (rs->ttl >= 0 && (rs->ttl - rd->ttl > slack || rd->ttl - rs->ttl > slack))) {
		atomic_fetch_add_explicit(&st->ttl, 1, memory_order_relaxed);
		note_mismatch(w, index, "TTL differs", "source %lld s, destination %lld s",
			      (long long)rs->ttl, (long long)rd->ttl);
	} else {
		atomic_fetch_add_explicit(&st->equal, 1, memory_order_relaxed);
	}
}

/* ---- the sink --------------------------------------------------------------------------- */

/* The destination's pipe: send slots, then its receive area. */
void verify_sink_need(uint64_t item_size_max, struct engine_sink_need *need)
{
	size_t reply_max = (size_t)item_size_max + MCW_REPLY_OVERHEAD_MAX;
	*need = (struct engine_sink_need){
		.nparts = 2,
		.part[0] = { "the destination's send slots",
			     MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES, false },
		.part[1] = { "receive", ROUND_UP(reply_max, 64 * KIB), true },
	};
}

static void verify_need(const struct engine *e, uint64_t item_size_max,
			struct engine_sink_need *need)
{
	const struct verify_cmd *v = e->sink_ctx;
	verify_sink_need(item_size_max, need);
	if (v->o.dest.sec && v->o.dest.sec->tls) /* the pipe's ciphertext areas */
		need->part[1].min_bytes += MCW_TLS_PIPE_BYTES;
}

/* The destination is probed too; --sample becomes a key hash threshold. */
static int verify_prepare(struct engine *e)
{
	struct verify_cmd *v = e->sink_ctx;
	int code = engine_probe_dest(e, &v->o.dest, &v->dst);
	if (code != 0)
		return code;
	if (v->o.sample > 0 && e->src.curr_items > v->o.sample) {
		double p = (double)v->o.sample / (double)e->src.curr_items;
		e->sample_threshold = (uint64_t)(p * 18446744073709551615.0);
	}
	return engine_make_work_dir(e);
}

static int verify_worker_open(struct engine *e, struct engine_worker *w)
{
	struct verify_cmd *v = e->sink_ctx;
	struct verify_worker *s = &v->workers[w->id];
	w->sink = s;
	s->v = v;
	return engine_connect(&v->o.dest, &s->fd);
}

static int verify_worker_init(struct engine_worker *w)
{
	struct verify_worker *s = vw(w);
	struct mgpipe_opts o = {
		.ring = w->ring,
		.fd = s->fd,
		.id = 1,
		.what = "the destination",
		.send_area = w->sink_part[0],
		.send_bytes = w->sink_part_bytes[0],
		.recv_area = w->sink_part[1],
		.recv_bytes = w->sink_part_bytes[1],
		.value_max = s->v->dst.item_size_max,
		.limits = rate_limits_active(&s->v->e.limits) ? &s->v->e.limits : NULL,
	};
	mgpipe_init(&s->dst, &o);
	return 0;
}

static bool verify_job_begin(struct engine_worker *w, uint32_t seq, unsigned group)
{
	(void)seq;
	(void)group;
	mgpipe_job(&vw(w)->dst, &w->kv, w->key_off, w->pipe.nkeys);
	return true;
}

static void check_dst(struct engine_worker *w)
{
	struct mgpipe *p = &vw(w)->dst;
	if (p->fault.err)
		engine_fail(w->e, p->fault.err, "worker %u: %s", w->id, p->fault.msg);
}

/* The source's reply for key index; the destination's must be the next one there. */
static int verify_on_value(struct engine_worker *w, enum mgpipe_next ns,
			   const struct mcp_meta_reply *rs, uint32_t index)
{
	struct mgpipe *dst = &vw(w)->dst;
	struct mcp_meta_reply rd;
	uint32_t id;
	enum mgpipe_next nd = mgpipe_next(dst, &rd, &id);
	if (nd != MGPIPE_VALUE && nd != MGPIPE_MISS) {
		check_dst(w);
		return nd == MGPIPE_FAILED ? -EIO : -EAGAIN;
	}
	if (index != id) {
		engine_fail(w->e, -EPROTO,
			    "replies out of step: source answered key #%u, destination #%u", index,
			    id);
		return -EPROTO;
	}
	classify(w, index, ns, rs, nd, &rd);
	mgpipe_consume(dst, &rd);
	return 0;
}

static void verify_kick(struct engine_worker *w, bool fetched)
{
	struct mcp_meta_reply rd;
	uint32_t id;
	(void)fetched;
	/* pulling handles the destination's batch ends (MN) even with no source reply */
	(void)mgpipe_next(&vw(w)->dst, &rd, &id);
	check_dst(w);
	mgpipe_kick(&vw(w)->dst);
}

static void verify_on_cqe(struct engine_worker *w, const struct ur_cqe *cqe)
{
	ASSERT(mgpipe_owns(&vw(w)->dst, cqe->user_data));
	mgpipe_on_cqe(&vw(w)->dst, cqe);
	check_dst(w);
}

static bool verify_awaiting(struct engine_worker *w)
{
	return mgpipe_awaiting(&vw(w)->dst);
}

static int64_t verify_wake_ns(struct engine_worker *w)
{
	return mgpipe_wake_ns(&vw(w)->dst);
}

static bool verify_job_idle(struct engine_worker *w)
{
	return mgpipe_done(&vw(w)->dst) && !vw(w)->dst.send_busy;
}

static void verify_job_end(struct engine_worker *w, uint32_t seq)
{
	(void)seq;
	vw(w)->dst.fetched = 0;
}

static void verify_worker_fini(struct engine_worker *w, bool failed)
{
	(void)failed;
	if (vw(w)->fd >= 0)
		net_close(vw(w)->fd);
	vw(w)->fd = -1;
}

static uint64_t verify_metric_items(const struct engine *e)
{
	const struct verify_cmd *v = e->sink_ctx;
	return atomic_load(&v->st.equal);
}

static void verify_metrics(struct engine *e, struct metrics *m)
{
	struct verify_cmd *v = e->sink_ctx;
	static const char *const outcomes[] = { "equal", "missing", "value",
						"flags", "ttl",	    "expired" };
	uint64_t n[] = { atomic_load(&v->st.equal), atomic_load(&v->st.missing),
			 atomic_load(&v->st.value), atomic_load(&v->st.flags),
			 atomic_load(&v->st.ttl),   atomic_load(&v->st.expired) };
	metrics_add_kinds(m, "mcwarm_verify_keys_total", "keys checked, by outcome", "outcome",
			  outcomes, n, ARRAY_LEN(outcomes));
}

static const struct engine_sink_ops verify_sink_ops = {
	.name = "verify",
	.thread_name = "mcw-verify",
	.verb = "verifying",
	.onto = "against",
	.src_quiet = false, /* every key gets VA or EN on both sides: replies pair up */
	.peer = "the destination",
	.need = verify_need,
	.prepare = verify_prepare,
	.worker_open = verify_worker_open,
	.worker_init = verify_worker_init,
	.job_begin = verify_job_begin,
	.on_value = verify_on_value,
	.kick = verify_kick,
	.on_cqe = verify_on_cqe,
	.awaiting = verify_awaiting,
	.wake_ns = verify_wake_ns,
	.job_idle = verify_job_idle,
	.job_end = verify_job_end,
	.worker_fini = verify_worker_fini,
	.metric_items = verify_metric_items,
	.metrics = verify_metrics,
	.fini = engine_remove_work_dir,
};

/* ---- the report ---------------------------------------------------------------------- */

static int report(struct verify_cmd *v, int code, double secs)
{
	struct engine *c = &v->e;
	struct engine_stats *s = &c->st;
	uint64_t eq = atomic_load(&v->st.equal), miss = atomic_load(&v->st.missing);
	uint64_t val = atomic_load(&v->st.value), fl = atomic_load(&v->st.flags);
	uint64_t ttl = atomic_load(&v->st.ttl), exp = atomic_load(&v->st.expired);
	uint64_t checked = eq + miss + val + fl + ttl;
	double ratio = checked > 0 ? (double)eq / (double)checked : 1.0;
	if (code == 0 && ratio < v->o.min_ratio)
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
	for (unsigned i = 0; i < v->nmismatches; i++)
		fprintf(stderr, "mcwarm:   %s: key=%s (%s)\n", v->mismatches[i].outcome,
			v->mismatches[i].key, v->mismatches[i].detail);
	if (!c->o.co.json)
		return code;
	struct json j;
	json_begin(&j, stdout);
	json_str(&j, "command", "verify");
	json_bool(&j, "ok", code == 0);
	json_i64(&j, "exit_code", code);
	if (c->run.fault.err)
		json_str(&j, "error", c->run.fault.msg);
	json_str(&j, "source", c->o.source.text);
	json_str(&j, "dest", v->o.dest.text);
	json_f64(&j, "warm_ratio", ratio);
	json_f64(&j, "min_ratio", v->o.min_ratio);
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
	for (unsigned i = 0; i < v->nmismatches; i++) {
		char k[12];
		snprintf(k, sizeof(k), "%u", i);
		json_obj(&j, k);
		json_str(&j, "key", v->mismatches[i].key);
		json_str(&j, "outcome", v->mismatches[i].outcome);
		json_str(&j, "detail", v->mismatches[i].detail);
		json_obj_end(&j);
	}
	json_obj_end(&j);
	json_end(&j);
	return code;
}

int mcw_cmd_verify(int argc, char **argv)
{
	static struct verify_cmd cmd;
	struct verify_cmd *v = &cmd;
	memset(v, 0, sizeof(*v));
	engine_init(&v->e, &verify_sink_ops, v);
	for (unsigned i = 0; i < MCW_THREADS_MAX; i++)
		v->workers[i].fd = -1;
	int code = parse_opts(argc, argv, v);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	int64_t t0 = mono_ns();
	code = mcw_exit_code(engine_run(&v->e));
	code = report(v, code, (double)(mono_ns() - t0) / 1e9);
	engine_metrics(&v->e, metrics_phase_of(code));
	engine_release(&v->e);
	return code;
}
