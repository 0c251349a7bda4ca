/*
 * stream.c: `mcwarm stream`, source straight into destination, no volume. The dump engine
 * lists the source's keys (metadump into a key spool in --work, with the same filters);
 * each worker fetches values with a pipelined quiet `mg` on the source (mgpipe) and
 * writes them through an ms pipe (mspipe) on the destination, under the populator's
 * rules: add mode by default, TTL recomputed when the request is sent (expired items
 * skipped), values the destination cannot hold skipped (a failed ms deletes the key on
 * memcached 1.6.18).
 *
 *   source --mg--> receive area --copy--> ms batch (2) --send--> destination
 *                                                          <-- NS / MN / errors
 *
 * Values are copied once, from the receive area into the pipe's batch: a batch holds the
 * values of up to MCW_STREAM_BATCH_RECORDS items, so the receive area is free again as
 * soon as a reply is copied. A reply that does not fit waits (not consumed) until a batch
 * is answered; an empty batch always has room for one largest item.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "dump_private.h"
#include "json.h"
#include "mgpipe.h"
#include "mspipe.h"

static const char stream_usage[] =
    "usage: mcwarm stream --source HOST:PORT --dest HOST:PORT [options]\n"
    "\n"
    "Copies every item (or the filtered ones) of a live memcached straight into another,\n"
    "without chunk files: for small clusters and moves within a zone. Keys come from\n"
    "'lru_crawler metadump' of the source, values from pipelined 'mg' (no LRU bump), and\n"
    "go into the destination with pipelined 'ms' in add mode (a key live traffic wrote\n"
    "first is kept). TTLs are recomputed when sent; expired items and values too large\n"
    "for the destination are skipped and counted. Nothing is kept if it stops: run it\n"
    "again (add mode makes that harmless).\n"
    "\n"
    "  -s, --source HOST:PORT   the memcached to copy (required)\n"
    "  -d, --dest HOST:PORT     the memcached to warm (required)\n"
    "      --mode add|set       add (default): never overwrite; set: overwrite\n"
    "      --min-ttl SECONDS    skip items with less TTL left than this (default 1)\n"
    "      --crawl hash|all     key walk of the source (default hash)\n"
    "  -m, --memory SIZE        memory budget (default 64M)\n"
    "  -t, --threads N          workers, two connections each (default: online CPUs)\n"
    "      --work DIR           where the key spool goes for the run (default /tmp)\n"
    "      --allow-shrink       copy even when the destination's memory clearly cannot\n"
    "                           hold what the source holds (it evicts the rest: exit 3)\n"
    "      --allow-smaller-items  copy even when the destination's item_size_max is below\n"
    "                           the source's (larger items are skipped and counted)\n"
    "      --io-timeout SECONDS a server silent this long is gone (default 30)\n"
    "      --json               print a JSON summary on stdout\n"
    "  -q, --quiet              no budget table, no progress line\n"
    "  -h, --help               this text\n"
    "\n"
    "Before copying, the destination is checked: not the source itself (address, or pid\n"
    "and start time: exit 64), item_size_max not below the source's (exit 69), and memory\n"
    "for what the source holds (its curr_items and bytes, rounded to the destination's\n"
    "slab chunks, against limit_maxbytes: refused with exit 3; skipped when key filters\n"
    "select a share). While copying, its evictions are read every 2 s: the run ends with\n"
    "exit 3 if it evicted any, and 'SERVER_ERROR out of memory' (-M) stops it at once.\n";

enum { OPT_MODE = 256, OPT_MIN_TTL, OPT_CRAWL, OPT_WORK, OPT_ALLOW_SHRINK, OPT_ALLOW_SMALLER };

static int stream_option(int ch, const char *arg, struct dump_opts *o)
{
	uint64_t v;
	switch (ch) {
	case 's':
	case 'd':
		if (hostport_parse(arg, ch == 's' ? &o->source : &o->dest) < 0)
			return cli_usage_error("stream", "'%s' is not HOST:PORT", arg);
		return 0;
	case OPT_MODE:
		if (strcmp(arg, "add") != 0 && strcmp(arg, "set") != 0)
			return cli_usage_error("stream", "--mode: use add or set");
		o->ms_mode = strcmp(arg, "set") == 0 ? MCP_MS_SET : MCP_MS_ADD;
		return 0;
	case OPT_MIN_TTL:
		if (!cli_uint("stream", "min-ttl", arg, 0, 10ull * 365 * 86400, &v))
			return MCW_EXIT_USAGE;
		o->min_ttl_s = (int64_t)v;
		return 0;
	case OPT_CRAWL:
		return crawl_option("stream", arg, &o->crawl);
	case OPT_WORK:
		o->out_dir = arg;
		return 0;
	case OPT_ALLOW_SHRINK:
		o->allow.shrink = true;
		return 0;
	case OPT_ALLOW_SMALLER:
		o->allow.smaller_items = true;
		return 0;
	default:
		return engine_shared_option("stream", ch, arg, o);
	}
}

static int parse_opts(int argc, char **argv, struct dump_opts *o)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "dest", required_argument, NULL, 'd' },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "min-ttl", required_argument, NULL, OPT_MIN_TTL },
		{ "crawl", required_argument, NULL, OPT_CRAWL },
		{ "work", required_argument, NULL, OPT_WORK },
		{ "allow-shrink", no_argument, NULL, OPT_ALLOW_SHRINK },
		{ "allow-smaller-items", no_argument, NULL, OPT_ALLOW_SMALLER },
		KEYFILTER_LONGOPTS,
		CLI_COMMON_LONGOPTS,
		{ 0 },
	};
	*o = (struct dump_opts){
		.kind = RUN_STREAM,
		.out_dir = "/tmp",
		.crawl = KEYS_HASH,
		.try_mgdump = true,
		.min_ttl_s = 1,
		.ms_mode = MCP_MS_ADD,
	};
	cli_common_defaults(&o->co);
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		int ret = stream_option(ch, optarg, o);
		if (ret != 0)
			return ret;
	}
	if (o->co.help) {
		printf("%s\n%s\n%s\n%s", stream_usage, keyfilter_help, cli_limits_help,
		       mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("stream", "unexpected argument '%s'", argv[optind]);
	if (o->source.port == 0 || o->dest.port == 0)
		return cli_usage_error("stream", "--source and --dest are required");
	return 0;
}

/* ---- the worker ------------------------------------------------------------------------ */

struct sjob {
	struct dump_worker *w;
	struct dump_ctx *c;
	struct mgpipe src;
	struct mspipe dst;
	struct keychunk_view kv;
	uint32_t *key_off;
	int64_t last_io_ns;
	uint64_t too_large; /* since the last flush into the shared stats */
};

static void job_fail(struct sjob *j, int code, const char *fmt, const char *what)
{
	dump_fail(j->c, code, "worker %u: %s%s", j->w->id, fmt, what);
}

/* Puts one fetched item into the open batch. 0: taken (or skipped and counted);
 * -EAGAIN: no room now, keep the reply. */
static int take_item(struct sjob *j, const struct mcp_meta_reply *rep, uint32_t index)
{
	struct dump_ctx *c = j->c;
	uint16_t klen;
	uint8_t kflags;
	const uint8_t *key = mgpipe_key(&j->src, index, &klen, &kflags);
	if (rep->value_len >
	    cap_value_max(c->dst.item_size_max, c->dst.cas_enabled, klen, rep->client_flags)) {
		j->too_large++;
		return 0;
	}
	struct iovec value = { (void *)rep->value, rep->value_len };
	const struct mspipe_item it = {
		.key = key, /* the key chunk stays loaded until the job is answered */
		.key_len = klen,
		.key_b64 = (kflags & KEYCHUNK_F_B64) != 0,
		.client_flags = rep->client_flags,
		.value_len = (uint32_t)rep->value_len,
		.expires_at_ms = rep->ttl < 0 ? 0 : j->src.recv_ms + rep->ttl * 1000,
		.pieces = &value,
		.npieces = 1,
	};
	return mspipe_add(&j->dst, &it) < 0 ? -EAGAIN : 0;
}

static void take_replies(struct sjob *j)
{
	struct mcp_meta_reply rep;
	uint32_t index;
	while (mgpipe_next(&j->src, &rep, &index) == MGPIPE_VALUE) {
		if (take_item(j, &rep, index) == -EAGAIN)
			break;
		mgpipe_consume(&j->src, &rep);
	}
	if (j->src.exit_code)
		job_fail(j, j->src.exit_code, "", j->src.error);
}

static int64_t dest_now_hook(void *arg)
{
	return server_now_s(&((struct dump_ctx *)arg)->dst);
}

static bool dest_evicts_hook(void *arg)
{
	return ((struct dump_ctx *)arg)->dst.evictions_on;
}

static void on_cqe(struct sjob *j, const struct ur_cqe *cqe)
{
	if (mspipe_owns(&j->dst, cqe->user_data)) {
		mspipe_on_cqe(&j->dst, cqe);
		if (j->dst.exit_code)
			job_fail(j, j->dst.exit_code, "", j->dst.error);
	} else {
		ASSERT(mgpipe_owns(&j->src, cqe->user_data));
		mgpipe_on_cqe(&j->src, cqe);
		if (j->src.exit_code)
			job_fail(j, j->src.exit_code, "", j->src.error);
	}
}

static bool pump(struct sjob *j)
{
	struct ur_cqe cqes[MCW_RING_ENTRIES];
	bool awaiting = mgpipe_awaiting(&j->src) || mspipe_awaiting(&j->dst);
	int64_t ws = mgpipe_wake_ns(&j->src), wd = mspipe_wake_ns(&j->dst);
	int64_t wake = ws && wd ? MIN(ws, wd) : MAX(ws, wd);
	int ret = ur_submit_wait(j->w->ring, 1, engine_wait_ms(j->c, wake));
	if (ret == -ETIME && awaiting &&
	    mono_ns() - j->last_io_ns >= (int64_t)j->c->o.co.io_timeout_ms * 1000000) {
		job_fail(j, MCW_EXIT_UNAVAILABLE, "no answer within --io-timeout", "");
		return false;
	}
	if (ret < 0 && ret != -ETIME) {
		job_fail(j, MCW_EXIT_SOFTWARE, "io_uring wait failed: ", strerror(-ret));
		return false;
	}
	unsigned n = ur_reap(j->w->ring, cqes, ARRAY_LEN(cqes));
	if (n > 0)
		j->last_io_ns = mono_ns();
	for (unsigned i = 0; i < n; i++)
		on_cqe(j, &cqes[i]);
	return !dump_failed(j->c);
}

static void flush_counts(struct sjob *j)
{
	struct dump_stats *st = &j->c->st;
	struct mspipe_counts n;
	mspipe_take_counts(&j->dst, &n);
	atomic_fetch_add(&st->items, n.sent);
	atomic_fetch_add(&st->s_present, n.present);
	atomic_fetch_add(&st->s_expired, n.expired);
	atomic_fetch_add(&st->s_too_large, j->too_large);
	atomic_fetch_add(&st->server_errors, n.server_errors + j->src.server_errors);
	atomic_fetch_add(&st->keys_fetched, j->src.fetched);
	atomic_fetch_add(&st->misses, j->src.misses);
	j->too_large = 0;
	j->src.fetched = j->src.misses = j->src.server_errors = j->src.values = 0;
}

static void run_job(struct sjob *j, uint32_t seq)
{
	uint32_t n;
	if (!engine_load_keys(j->c, j->w, seq, &j->kv, &j->key_off, &n))
		return;
	mgpipe_job(&j->src, &j->kv, j->key_off, n);
	j->last_io_ns = mono_ns();
	for (;;) {
		take_replies(j);
		if (dump_failed(j->c))
			return;
		bool fetched = mgpipe_done(&j->src) && !j->src.send_busy;
		if (fetched)
			mspipe_close(&j->dst); /* the job's last items go now */
		mgpipe_kick(&j->src);
		mspipe_kick(&j->dst);
		if (j->dst.exit_code)
			job_fail(j, j->dst.exit_code, "", j->dst.error);
		if (fetched && mspipe_idle(&j->dst))
			break;
		if (!pump(j))
			return;
	}
	flush_counts(j);
	atomic_fetch_add(&j->c->st.jobs_done, 1);
}

size_t stream_pipe_bytes(void)
{
	return mspipe_area_bytes(MCW_STREAM_SLOTS, MCW_STREAM_BATCH_RECORDS,
				 MCW_STREAM_BATCH_RECORDS, 0);
}

static int setup(struct dump_worker *w, struct sjob *j)
{
	struct dump_ctx *c = w->ctx;
	char name[16];
	snprintf(name, sizeof(name), "mcw-stream-%u", w->id);
	int ret = run_thread_setup(name, w->cpu, &w->ring);
	if (ret < 0)
		return ret;
	memset(j, 0, sizeof(*j));
	j->w = w;
	j->c = c;
	size_t slots = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES;
	size_t keyin = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES) +
		       MCW_KEYCHUNK_BYTES;
	struct rate_limits *limits = rate_limits_active(&c->limits) ? &c->limits : NULL;
	struct mgpipe_opts so = {
		.ring = w->ring,
		.fd = w->fd,
		.id = 0,
		.what = "the source",
		.send_area = w->net_buf,
		.send_bytes = slots,
		.recv_area = w->net_buf + slots,
		.recv_bytes = w->net_bytes - slots,
		.quiet = true,
		.value_max = c->src.item_size_max,
		.limits = limits,
	};
	mgpipe_init(&j->src, &so);
	/* the disk area: key input, the answers, then the pipe's batches with their values */
	size_t fixed = stream_pipe_bytes();
	size_t copy =
	    (w->disk_bytes - keyin - MCW_STREAM_RECV_BYTES - fixed) / MCW_STREAM_SLOTS / 16 * 16;
	ASSERT(copy >= c->src.item_size_max);
	const struct mspipe_opts mo = {
		.ring = w->ring,
		.fd = w->dst_fd,
		.id = 1,
		.what = "the destination",
		.area = w->disk_buf + keyin + MCW_STREAM_RECV_BYTES,
		.area_bytes = w->disk_bytes - keyin - MCW_STREAM_RECV_BYTES,
		.batches = MCW_STREAM_SLOTS,
		.batch_records = MCW_STREAM_BATCH_RECORDS,
		.batch_pieces = MCW_STREAM_BATCH_RECORDS,
		.copy_bytes = copy,
		.recv_area = w->disk_buf + keyin,
		.recv_bytes = MCW_STREAM_RECV_BYTES,
		.mode = c->o.ms_mode,
		.min_ttl_s = c->o.min_ttl_s,
		.io_timeout_ms = c->o.co.io_timeout_ms,
		.dest_now_s = dest_now_hook,
		.dest_evicts = dest_evicts_hook,
		.arg = c,
		.oom_answers = &c->st.s_out_of_memory,
		.limits = limits,
	};
	mspipe_init(&j->dst, &mo);
	return 0;
}

void *stream_worker_main(void *arg)
{
	struct dump_worker *w = arg;
	struct dump_ctx *c = w->ctx;
	struct sjob j;
	int ret = setup(w, &j);
	if (ret < 0)
		dump_fail(c, MCW_EXIT_SOFTWARE, "worker %u cannot start: %s", w->id,
			  strerror(-ret));
	for (int64_t job; ret == 0 && (job = engine_take_job(c, true)) >= 0;)
		run_job(&j, (uint32_t)job);
	if (ret == 0)
		flush_counts(&j);
	ur_ring_destroy(w->ring);
	w->ring = NULL;
	close(w->fd);
	close(w->dst_fd); /* the pipe never reconnects here: still its connection */
	w->fd = w->dst_fd = -1;
	run_thread_done(&c->run);
	return NULL;
}

/* ---- the checks before copying --------------------------------------------------------- */

int stream_preflight(struct dump_ctx *c)
{
	char err[1024];
	struct cap_load load;
	/* both are live: the same address is the same process, so identity covers both */
	int code = cap_check_not_same(-1, &c->src, c->o.source.text, -1, &c->dst, c->o.dest.text,
				      err, sizeof(err));
	if (code == 0) {
		cap_load_of_source(&c->src, &load);
		if (c->filter_on) {
			load.items = 0; /* an unknown share: the evictions watch still judges */
			log_info("key filters select a share of %s: its memory is not compared "
				 "with %s's before copying",
				 c->o.source.text, c->o.dest.text);
		}
		code = cap_check(&c->dst, c->o.dest.text, &load, &c->o.allow, err, sizeof(err));
	}
	if (code != 0) {
		log_error("%s", err);
		return code;
	}
	cap_watch_start(&c->watch, &c->o.dest, &c->dst);
	c->watch_on = true;
	return 0;
}

/* ---- the summary ---------------------------------------------------------------------- */

static void summary(struct dump_ctx *c, int code, double secs)
{
	struct dump_stats *s = &c->st;
	uint64_t items = atomic_load(&s->items), present = atomic_load(&s->s_present);
	fprintf(
	    stderr,
	    "mcwarm: stream %s: %llu items sent (%llu already present), %.2f s (%.0f items/s); "
	    "keys listed %llu, filtered %llu, misses %llu, expired %llu, too large %llu, "
	    "server errors %llu (out of memory %llu); destination evictions %llu (never read "
	    "%llu); %.2f CPU s, peak RSS %.1f MiB\n",
	    code == 0			 ? "complete"
	    : code == MCW_EXIT_TOO_SMALL ? "FAILED (destination too small)"
					 : "FAILED",
	    (unsigned long long)items, (unsigned long long)present, secs,
	    secs > 0 ? (double)items / secs : 0, (unsigned long long)atomic_load(&s->keys_listed),
	    (unsigned long long)(atomic_load(&s->keys_filtered_prefix) +
				 atomic_load(&s->keys_filtered_ring)),
	    (unsigned long long)atomic_load(&s->misses),
	    (unsigned long long)atomic_load(&s->s_expired),
	    (unsigned long long)atomic_load(&s->s_too_large),
	    (unsigned long long)atomic_load(&s->server_errors),
	    (unsigned long long)atomic_load(&s->s_out_of_memory),
	    (unsigned long long)c->watch.evictions, (unsigned long long)c->watch.evicted_unfetched,
	    cpu_seconds(), (double)peak_rss_bytes() / (double)MIB);
	if (!c->o.co.json)
		return;
	struct json j;
	json_begin(&j, stdout);
	json_str(&j, "command", "stream");
	json_bool(&j, "ok", code == 0);
	json_i64(&j, "exit_code", code);
	if (code != 0)
		json_str(&j, "error", c->run.error);
	json_str(&j, "source", c->o.source.text);
	json_str(&j, "dest", c->o.dest.text);
	json_str(&j, "mode", c->o.ms_mode == MCP_MS_ADD ? "add" : "set");
	json_u64(&j, "keys_listed", atomic_load(&s->keys_listed));
	json_u64(&j, "keys_filtered_prefix", atomic_load(&s->keys_filtered_prefix));
	json_u64(&j, "keys_filtered_ring", atomic_load(&s->keys_filtered_ring));
	json_u64(&j, "keys_fetched", atomic_load(&s->keys_fetched));
	json_u64(&j, "misses", atomic_load(&s->misses));
	json_u64(&j, "items_sent", items);
	json_u64(&j, "already_present", present);
	json_u64(&j, "expired", atomic_load(&s->s_expired));
	json_u64(&j, "too_large", atomic_load(&s->s_too_large));
	json_u64(&j, "server_errors", atomic_load(&s->server_errors));
	json_u64(&j, "out_of_memory", atomic_load(&s->s_out_of_memory));
	json_u64(&j, "evictions", c->watch.evictions);
	json_u64(&j, "evicted_unfetched", c->watch.evicted_unfetched);
	json_f64(&j, "wall_seconds", secs);
	json_f64(&j, "cpu_seconds", cpu_seconds());
	json_u64(&j, "peak_rss_bytes", peak_rss_bytes());
	json_end(&j);
}

int mcw_cmd_stream(int argc, char **argv)
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
	if (c->watch_on)
		cap_watch_end(&c->watch);
	char why[512];
	if (code == 0 && cap_watch_evicted(&c->watch, why, sizeof(why))) {
		dump_fail(c, MCW_EXIT_TOO_SMALL, "%s", why);
		log_error("%s", why);
		code = MCW_EXIT_TOO_SMALL;
	}
	if (code == 0 && atomic_load(&c->st.server_errors) > 0)
		code = MCW_EXIT_INCOMPLETE; /* the destination refused some items */
	if (code == 0 || c->start_mono_ns != 0)
		summary(c, code, (double)(mono_ns() - t0) / 1e9);
	engine_metrics(c, metrics_phase_of(code));
	engine_release(c);
	return code;
}
