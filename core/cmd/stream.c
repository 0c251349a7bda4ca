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
#include "capacity.h"
#include "cli.h"
#include "engine.h"
#include "json.h"
#include "mgpipe.h"
#include "mspipe.h"
#include "sinks.h"

struct stream_opts {
	struct hostport dest;
	enum mcp_ms_mode ms_mode;
	struct mcw_copy_allow allow; /* --allow-shrink, --allow-smaller-items */
};

struct stream_stats {
	atomic_uint_fast64_t present;	    /* NS: the destination had the key (add mode) */
	atomic_uint_fast64_t expired;	    /* expired before it could be sent */
	atomic_uint_fast64_t too_large;	    /* over the destination's item size limit */
	atomic_uint_fast64_t out_of_memory; /* SERVER_ERROR out of memory to an ms */
};

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

enum { OPT_MIN_TTL = 256, OPT_CRAWL, OPT_WORK };

struct stream_cmd;

struct sjob {
	struct engine_worker *w;
	struct stream_cmd *c;
	int fd;		    /* the destination's connection, until the pipe takes it */
	struct mspipe dst;  /* ms to the destination */
	uint64_t too_large; /* since the last flush into the shared stats */
};

struct stream_cmd {
	struct engine e; /* e.o.dir is --work */
	struct stream_opts o;
	struct stream_stats st;
	struct server_info dst;
	struct cap_watch watch; /* the destination's evictions */
	bool watch_on;
	struct sjob jobs[MCW_THREADS_MAX]; /* the sink's state of each worker */
};

static struct sjob *sj(struct engine_worker *w)
{
	return w->sink;
}

static int stream_option(int ch, const char *arg, struct stream_cmd *c)
{
	struct engine_opts *eo = &c->e.o;
	struct stream_opts *o = &c->o;
	uint64_t v;
	switch (ch) {
	case 's':
	case 'd':
		if (hostport_parse(arg, ch == 's' ? &eo->source : &o->dest) < 0)
			return cli_usage_error("stream", "'%s' is not HOST:PORT", arg);
		return 0;
	case OPT_MIN_TTL:
		if (!cli_uint("stream", "min-ttl", arg, 0, 10ull * 365 * 86400, &v))
			return MCW_EXIT_USAGE;
		eo->min_ttl_s = (int64_t)v;
		return 0;
	case OPT_CRAWL:
		return crawl_option("stream", arg, &eo->crawl);
	case OPT_WORK:
		eo->dir = arg;
		return 0;
	default: {
		int ret = cap_copy_option("stream", ch, arg, &o->ms_mode, &o->allow);
		return ret != 1 ? ret : engine_shared_option("stream", ch, arg, eo);
	}
	}
}

static int parse_opts(int argc, char **argv, struct stream_cmd *c)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "dest", required_argument, NULL, 'd' },
		{ "min-ttl", required_argument, NULL, OPT_MIN_TTL },
		{ "crawl", required_argument, NULL, OPT_CRAWL },
		{ "work", required_argument, NULL, OPT_WORK },
		CAP_COPY_LONGOPTS,
		KEYFILTER_LONGOPTS,
		CLI_COMMON_LONGOPTS,
		{ 0 },
	};
	struct engine_opts *o = &c->e.o;
	*o = (struct engine_opts){
		.dir = "/tmp",
		.crawl = KEYS_HASH,
		.try_mgdump = true,
		.min_ttl_s = 1,
	};
	c->o = (struct stream_opts){ .ms_mode = MCP_MS_ADD };
	cli_common_defaults(&o->co);
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:d:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		int ret = stream_option(ch, optarg, c);
		if (ret != 0)
			return ret;
	}
	if (o->co.help) {
		printf("%s\n%s\n%s\n%s\n%s", stream_usage, keyfilter_help, cli_limits_help,
		       cli_secure_help, mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("stream", "unexpected argument '%s'", argv[optind]);
	if (o->source.port == 0 || c->o.dest.port == 0)
		return cli_usage_error("stream", "--source and --dest are required");
	return cli_secure_finish("stream", &o->co, &o->source, &c->o.dest);
}

/* ---- the ms side: one mspipe per worker ---------------------------------------------- */

static void pipe_check(struct sjob *j)
{
	if (j->dst.fault.err)
		engine_fail(&j->c->e, j->dst.fault.err, "worker %u: %s", j->w->id,
			    j->dst.fault.msg);
}

/* Hands one fetched item to the pipe (its value is copied into the open batch). 0: taken
 * (or skipped and counted); -EAGAIN: every batch is in flight, keep the reply. */
static int take_item(struct sjob *j, const struct mcp_meta_reply *rep, uint32_t index)
{
	struct stream_cmd *c = j->c;
	uint16_t klen;
	uint8_t kflags;
	const uint8_t *key = mgpipe_key(&j->w->pipe, index, &klen, &kflags);
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
		.key_b64_decided = true, /* the key reader scanned the key */
		.client_flags = rep->client_flags,
		.value_len = (uint32_t)rep->value_len,
		.expires_at_ms = rep->ttl < 0 ? 0 : j->w->pipe.recv_ms + rep->ttl * 1000,
		.pieces = &value,
		.npieces = 1,
	};
	return mspipe_add(&j->dst, &it) < 0 ? -EAGAIN : 0;
}

static int64_t dest_now_hook(void *arg)
{
	return server_now_s(&((struct stream_cmd *)arg)->dst);
}

static bool dest_evicts_hook(void *arg)
{
	return ((struct stream_cmd *)arg)->dst.evictions_on;
}

static void flush_counts(struct sjob *j)
{
	struct stream_stats *st = &j->c->st;
	struct mspipe_counts n;
	mspipe_take_counts(&j->dst, &n);
	atomic_fetch_add(&j->c->e.st.items, n.sent);
	atomic_fetch_add(&st->present, n.present);
	atomic_fetch_add(&st->expired, n.expired);
	atomic_fetch_add(&st->too_large, j->too_large);
	atomic_fetch_add(&j->c->e.st.server_errors, n.server_errors);
	j->too_large = 0;
}

/* ---- the checks before copying --------------------------------------------------------- */

static int stream_preflight(struct stream_cmd *c)
{
	char err[1024];
	struct cap_load load;
	/* both are live: the same address is the same process, so identity covers both */
	int ret = cap_check_not_same(-1, &c->e.src, c->e.o.source.text, -1, &c->dst, c->o.dest.text,
				     err, sizeof(err));
	if (ret == 0) {
		cap_load_of_source(&c->e.src, &load);
		if (c->e.filter_on) {
			load.items = 0; /* an unknown share: the evictions watch still judges */
			log_info("key filters select a share of %s: its memory is not compared "
				 "with %s's before copying",
				 c->e.o.source.text, c->o.dest.text);
		}
		ret = cap_check(&c->dst, c->o.dest.text, &load, &c->o.allow, err, sizeof(err));
	}
	if (ret != 0) {
		log_error("%s", err);
		return ret;
	}
	cap_watch_start(&c->watch, &c->o.dest, &c->dst);
	c->watch_on = true;
	return 0;
}

/* ---- the sink's operations ----------------------------------------------------------- */

/* The ms pipe's batch area (two batches, each with room for a largest value copied in),
 * then the destination's answers. */
static size_t pipe_bytes(uint64_t item_size_max, size_t copy)
{
	(void)item_size_max;
	return mspipe_area_bytes(MCW_STREAM_SLOTS, MCW_STREAM_BATCH_RECORDS,
				 MCW_STREAM_BATCH_RECORDS, copy);
}

void stream_sink_need(uint64_t item_size_max, struct engine_sink_need *need)
{
	size_t copy = ROUND_UP((size_t)item_size_max + 16, 16);
	*need = (struct engine_sink_need){
		.nparts = 2,
		.part[0] = { "ms batches", ROUND_UP(pipe_bytes(item_size_max, copy), 64 * KIB),
			     true },
		.part[1] = { "answers", MCW_STREAM_RECV_BYTES, false },
	};
}

static void stream_need(const struct engine *e, uint64_t item_size_max,
			struct engine_sink_need *need)
{
	const struct stream_cmd *c = e->sink_ctx;
	stream_sink_need(item_size_max, need);
	if (c->o.dest.sec && c->o.dest.sec->tls) /* the ms pipe's stage and ciphertext areas */
		need->part[1].min_bytes += MSPIPE_TLS_BYTES;
}

static int stream_prepare(struct engine *e)
{
	struct stream_cmd *c = e->sink_ctx;
	int ret = engine_probe_dest(e, &c->o.dest, &c->dst);
	if (ret == 0)
		ret = stream_preflight(c);
	return ret != 0 ? ret : engine_make_work_dir(e);
}

static int stream_worker_open(struct engine *e, struct engine_worker *w)
{
	struct stream_cmd *c = e->sink_ctx;
	struct sjob *j = &c->jobs[w->id];
	w->sink = j;
	return engine_connect(&c->o.dest, &j->fd);
}

static int stream_worker_init(struct engine_worker *w)
{
	struct sjob *j = sj(w);
	struct stream_cmd *c = w->e->sink_ctx;
	int fd = j->fd;
	memset(j, 0, sizeof(*j));
	j->w = w;
	j->c = c;
	j->fd = fd;
	/* the largest copy area per batch that the part holds */
	size_t area = w->sink_part_bytes[0], copy = c->e.src.item_size_max;
	while (pipe_bytes(c->e.src.item_size_max, copy + 64 * KIB) <= area)
		copy += 64 * KIB;
	ASSERT(pipe_bytes(c->e.src.item_size_max, copy) <= area);
	ASSERT(w->sink_part_bytes[1] >=
	       MCW_STREAM_RECV_BYTES + (j->fd >= 0 && tls_conn_of(j->fd) ? MSPIPE_TLS_BYTES : 0));
	const struct mspipe_opts mo = {
		.ring = w->ring,
		.fd = fd,
		.id = 1,
		.what = "the destination",
		.area = w->sink_part[0],
		.area_bytes = area,
		.batches = MCW_STREAM_SLOTS,
		.batch_records = MCW_STREAM_BATCH_RECORDS,
		.batch_pieces = MCW_STREAM_BATCH_RECORDS,
		.copy_bytes = copy,
		.recv_area = w->sink_part[1],
		.recv_bytes = w->sink_part_bytes[1],
		.mode = c->o.ms_mode,
		.min_ttl_s = c->e.o.min_ttl_s,
		.io_timeout_ms = c->e.o.co.io_timeout_ms,
		.dest_now_s = dest_now_hook,
		.dest_evicts = dest_evicts_hook,
		.arg = c,
		.oom_answers = &c->st.out_of_memory,
		.limits = rate_limits_active(&c->e.limits) ? &c->e.limits : NULL,
	};
	mspipe_init(&j->dst, &mo);
	return 0;
}

static int stream_on_value(struct engine_worker *w, enum mgpipe_next kind,
			   const struct mcp_meta_reply *rep, uint32_t index)
{
	ASSERT(kind == MGPIPE_VALUE); /* quiet: misses are silent */
	return take_item(sj(w), rep, index);
}

static void stream_kick(struct engine_worker *w, bool fetched)
{
	if (fetched)
		mspipe_close(&sj(w)->dst); /* the job's last items go now */
	mspipe_kick(&sj(w)->dst);
	pipe_check(sj(w));
}

static void stream_on_cqe(struct engine_worker *w, const struct ur_cqe *cqe)
{
	ASSERT(mspipe_owns(&sj(w)->dst, cqe->user_data));
	mspipe_on_cqe(&sj(w)->dst, cqe);
	pipe_check(sj(w));
}

static bool stream_awaiting(struct engine_worker *w)
{
	return mspipe_awaiting(&sj(w)->dst);
}

static int64_t stream_wake_ns(struct engine_worker *w)
{
	return mspipe_wake_ns(&sj(w)->dst);
}

static bool stream_job_idle(struct engine_worker *w)
{
	return mspipe_idle(&sj(w)->dst);
}

static void stream_job_end(struct engine_worker *w, uint32_t seq)
{
	(void)seq;
	flush_counts(sj(w));
}

static void stream_worker_fini(struct engine_worker *w, bool failed)
{
	(void)failed;
	if (sj(w)->c != NULL)
		flush_counts(sj(w));
	if (sj(w)->fd >= 0)
		net_close(sj(w)->fd); /* the pipe never reconnects here: still its connection */
	sj(w)->fd = -1;
}

static void stream_poll(struct engine *e)
{
	struct stream_cmd *c = e->sink_ctx;
	if (c->watch_on)
		cap_watch_poll(&c->watch, false);
}

static void stream_metrics(struct engine *e, struct metrics *m)
{
	struct stream_cmd *c = e->sink_ctx;
	if (!c->watch_on)
		return;
	static const char *const ev[] = { "evicted", "evicted_unfetched" };
	uint64_t n[] = { c->watch.evictions, c->watch.evicted_unfetched };
	metrics_add_kinds(m, "mcwarm_destination_evictions_total",
			  "items the destination evicted during the run", "kind", ev, n,
			  ARRAY_LEN(ev));
}

static const struct engine_sink_ops stream_sink_ops = {
	.name = "stream",
	.thread_name = "mcw-stream",
	.verb = "streaming",
	.onto = "into",
	.src_quiet = true,
	.peer = "the destination",
	.need = stream_need,
	.prepare = stream_prepare,
	.worker_open = stream_worker_open,
	.worker_init = stream_worker_init,
	.on_value = stream_on_value,
	.kick = stream_kick,
	.on_cqe = stream_on_cqe,
	.awaiting = stream_awaiting,
	.wake_ns = stream_wake_ns,
	.job_idle = stream_job_idle,
	.job_end = stream_job_end,
	.worker_fini = stream_worker_fini,
	.poll = stream_poll,
	.metrics = stream_metrics,
	.fini = engine_remove_work_dir,
};

/* ---- the summary ---------------------------------------------------------------------- */

static void summary(struct stream_cmd *c, int code, double secs)
{
	struct engine_stats *s = &c->e.st;
	struct stream_stats *ss = &c->st;
	uint64_t items = atomic_load(&s->items), present = atomic_load(&ss->present);
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
	    (unsigned long long)atomic_load(&ss->expired),
	    (unsigned long long)atomic_load(&ss->too_large),
	    (unsigned long long)atomic_load(&s->server_errors),
	    (unsigned long long)atomic_load(&ss->out_of_memory),
	    (unsigned long long)c->watch.evictions, (unsigned long long)c->watch.evicted_unfetched,
	    cpu_seconds(), (double)peak_rss_bytes() / (double)MIB);
	if (!c->e.o.co.json)
		return;
	struct json j;
	json_begin(&j, stdout);
	json_str(&j, "command", "stream");
	json_bool(&j, "ok", code == 0);
	json_i64(&j, "exit_code", code);
	if (code != 0)
		json_str(&j, "error", c->e.run.fault.msg);
	json_str(&j, "source", c->e.o.source.text);
	json_str(&j, "dest", c->o.dest.text);
	json_str(&j, "mode", c->o.ms_mode == MCP_MS_ADD ? "add" : "set");
	json_u64(&j, "keys_listed", atomic_load(&s->keys_listed));
	json_u64(&j, "keys_filtered_prefix", atomic_load(&s->keys_filtered_prefix));
	json_u64(&j, "keys_filtered_ring", atomic_load(&s->keys_filtered_ring));
	json_u64(&j, "keys_fetched", atomic_load(&s->keys_fetched));
	json_u64(&j, "misses", atomic_load(&s->misses));
	json_u64(&j, "items_sent", items);
	json_u64(&j, "already_present", present);
	json_u64(&j, "expired", atomic_load(&ss->expired));
	json_u64(&j, "too_large", atomic_load(&ss->too_large));
	json_u64(&j, "server_errors", atomic_load(&s->server_errors));
	json_u64(&j, "out_of_memory", atomic_load(&ss->out_of_memory));
	json_u64(&j, "evictions", c->watch.evictions);
	json_u64(&j, "evicted_unfetched", c->watch.evicted_unfetched);
	json_f64(&j, "wall_seconds", secs);
	json_f64(&j, "cpu_seconds", cpu_seconds());
	json_u64(&j, "peak_rss_bytes", peak_rss_bytes());
	json_end(&j);
}

int mcw_cmd_stream(int argc, char **argv)
{
	static struct stream_cmd cmd;
	struct stream_cmd *c = &cmd;
	memset(c, 0, sizeof(*c));
	engine_init(&c->e, &stream_sink_ops, c);
	for (unsigned i = 0; i < MCW_THREADS_MAX; i++)
		c->jobs[i].fd = -1;
	int code = parse_opts(argc, argv, c);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	int64_t t0 = mono_ns();
	code = mcw_exit_code(engine_run(&c->e));
	if (c->watch_on)
		cap_watch_end(&c->watch);
	char why[512];
	if (code == 0 && cap_watch_evicted(&c->watch, why, sizeof(why))) {
		engine_fail(&c->e, -MCW_ETOOSMALL, "%s", why);
		log_error("%s", why);
		code = MCW_EXIT_TOO_SMALL;
	}
	if (code == 0 && atomic_load(&c->e.st.server_errors) > 0)
		code = MCW_EXIT_INCOMPLETE; /* the destination refused some items */
	if (code == 0 || c->e.start_mono_ns != 0)
		summary(c, code, (double)(mono_ns() - t0) / 1e9);
	engine_metrics(&c->e, metrics_phase_of(code));
	engine_release(&c->e);
	return code;
}
