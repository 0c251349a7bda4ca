/*
 * stream.c: `mcwarm stream`, source straight into destination, no volume. The engine
 * (engine.h) lists the source's keys (metadump into a key spool in --work, with the same filters);
 * each worker fetches values with a pipelined quiet `mg` on the source (mgpipe) and
 * writes them with pipelined `ms ... q` batches closed by `mn` on the destination, under
 * the populator's rules: add mode by default, TTL recomputed when the request is built
 * (expired items skipped), values the destination cannot hold skipped (a failed ms
 * deletes the key on memcached 1.6.18).
 *
 *   source --mg--> receive area --copy--> ms batch slot (2) --send--> destination
 *                                                                  <-- NS / MN / errors
 *
 * Values are copied once, from the receive area into a batch slot: a slot holds the
 * header, value and CRLF of up to MCW_STREAM_BATCH_RECORDS items, so the receive area is
 * free again as soon as a reply is copied. A reply that does not fit waits (not consumed)
 * until a slot is answered; its slot always has room for one largest item.
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
#include "sinks.h"
#include "populate_private.h"

#define UD_MS_SEND (0x5ull << 60)
#define UD_MS_RECV (0x6ull << 60)

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

enum { OPT_MODE = 256, OPT_MIN_TTL, OPT_CRAWL, OPT_WORK, OPT_ALLOW_SHRINK, OPT_ALLOW_SMALLER };

struct stream_cmd;

struct sslot {
	uint8_t *buf;
	size_t len;
	uint32_t nrec;
	bool closed, sent;
};

struct sjob {
	struct engine_worker *w;
	struct stream_cmd *c;
	/* the destination side: slots by monotonic batch number (slot = n % 2) */
	int fd;
	struct sslot slot[MCW_STREAM_SLOTS];
	size_t slot_cap;
	uint64_t b_open, b_sent, b_answered; /* [b_answered, b_open] in use; b_open is filling */
	bool has_open, send_busy;
	uint8_t *rbuf;
	size_t rd, wr;
	bool recv_posted;
	struct rate_bucket bucket;
	int64_t wake_ns;
	uint64_t opaque; /* O<n> of the next ms, for reading a trace */
	/* counts since the last flush into the shared stats */
	uint64_t sent, present, expired, too_large, server_errors;
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
	case OPT_MODE:
		if (strcmp(arg, "add") != 0 && strcmp(arg, "set") != 0)
			return cli_usage_error("stream", "--mode: use add or set");
		o->ms_mode = strcmp(arg, "set") == 0 ? MCP_MS_SET : MCP_MS_ADD;
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
	case OPT_ALLOW_SHRINK:
		o->allow.shrink = true;
		return 0;
	case OPT_ALLOW_SMALLER:
		o->allow.smaller_items = true;
		return 0;
	default:
		return engine_shared_option("stream", ch, arg, eo);
	}
}

static int parse_opts(int argc, char **argv, struct stream_cmd *c)
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
		printf("%s\n%s\n%s\n%s", stream_usage, keyfilter_help, cli_limits_help,
		       mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("stream", "unexpected argument '%s'", argv[optind]);
	if (o->source.port == 0 || c->o.dest.port == 0)
		return cli_usage_error("stream", "--source and --dest are required");
	return 0;
}

/* ---- the ms sending (kept as it was; see mspipe) ------------------------------------- */

static void job_fail(struct sjob *j, int code, const char *fmt, const char *what)
{
	engine_fail(&j->c->e, code, "worker %u: %s%s", j->w->id, fmt, what);
}

static struct sslot *slot_of(struct sjob *j, uint64_t n)
{
	return &j->slot[n % MCW_STREAM_SLOTS];
}

/* The open batch, opening one if a slot is free; NULL when both are in flight. */
static struct sslot *open_batch(struct sjob *j)
{
	if (j->has_open)
		return slot_of(j, j->b_open);
	if (j->b_open - j->b_answered == MCW_STREAM_SLOTS)
		return NULL;
	struct sslot *s = slot_of(j, j->b_open);
	s->len = 0;
	s->nrec = 0;
	s->closed = s->sent = false;
	j->has_open = true;
	return s;
}

static void close_batch(struct sjob *j)
{
	if (!j->has_open)
		return;
	struct sslot *s = slot_of(j, j->b_open);
	j->has_open = false;
	if (s->nrec == 0)
		return; /* nothing in it: the slot stays free */
	memcpy(s->buf + s->len, "mn\r\n", 4);
	s->len += 4;
	s->closed = true;
	j->b_open++;
}

/* Copies one fetched item into the open batch. 0: taken (or skipped and counted);
 * -EAGAIN: no room now, keep the reply. */
static int take_item(struct sjob *j, const struct mcp_meta_reply *rep, uint32_t index)
{
	struct stream_cmd *c = j->c;
	uint16_t klen;
	uint8_t kflags;
	const uint8_t *key = mgpipe_key(&j->w->pipe, index, &klen, &kflags);
	if (rep->value_len >
	    pop_value_max(c->dst.item_size_max, c->dst.cas_enabled, klen, rep->client_flags)) {
		j->too_large++;
		return 0;
	}
	int64_t expires_at_ms = rep->ttl < 0 ? 0 : j->w->pipe.recv_ms + rep->ttl * 1000;
	int64_t t = pop_exptime(expires_at_ms, wall_ns() / 1000000, c->e.o.min_ttl_s,
				server_now_s(&c->dst));
	if (t < 0) {
		j->expired++;
		return 0;
	}
	size_t need = MCP_REQ_MAX + rep->value_len + 2 + 4;
	struct sslot *s = open_batch(j);
	if (s != NULL && s->len + need > j->slot_cap) {
		close_batch(j);
		s = open_batch(j);
	}
	if (s == NULL)
		return -EAGAIN;
	size_t n =
	    mcp_ms_encode((char *)s->buf + s->len, MCP_REQ_MAX, key, klen, kflags & KEYCHUNK_F_B64,
			  rep->value_len, t, rep->client_flags, c->o.ms_mode, j->opaque++);
	ASSERT(n > 0); /* the key reader spools only sendable keys */
	s->len += n;
	memcpy(s->buf + s->len, rep->value, rep->value_len);
	s->len += rep->value_len;
	memcpy(s->buf + s->len, "\r\n", 2);
	s->len += 2;
	if (++s->nrec >= rate_bucket_batch(&j->bucket, MCW_STREAM_BATCH_RECORDS))
		close_batch(j);
	return 0;
}

static void kick_send(struct sjob *j)
{
	j->wake_ns = 0;
	if (j->send_busy || j->b_sent == j->b_open)
		return;
	struct sslot *s = slot_of(j, j->b_sent);
	int64_t now = mono_ns();
	uint64_t bytes = s->len; /* headers included: close enough for a byte limit */
	int64_t wait = rate_bucket_take(&j->bucket, s->nrec, bytes, now);
	if (wait > 0) {
		j->wake_ns = now + wait;
		return;
	}
	if (ur_prep_send(j->w->ring, j->fd, s->buf, s->len, UD_MS_SEND) < 0) {
		job_fail(j, MCW_EXIT_SOFTWARE, "cannot queue a send", "");
		return;
	}
	j->send_busy = true;
}

static void post_recv(struct sjob *j)
{
	if (j->recv_posted)
		return;
	if (j->rd == j->wr) {
		j->rd = j->wr = 0;
	} else if (j->rd > 0) {
		memmove(j->rbuf, j->rbuf + j->rd, j->wr - j->rd);
		j->wr -= j->rd;
		j->rd = 0;
	}
	if (ur_prep_recv(j->w->ring, j->fd, j->rbuf + j->wr, MCW_STREAM_RECV_BYTES - j->wr,
			 UD_MS_RECV) == 0)
		j->recv_posted = true;
}

/* Out of memory stops the run: at once when the destination does not evict (-M), else
 * after CAP_OOM_ERRORS_MAX answers (its slabs are stuck). */
static void on_out_of_memory(struct sjob *j)
{
	struct stream_cmd *c = j->c;
	char why[512];
	uint64_t n = atomic_fetch_add(&c->st.out_of_memory, 1) + 1;
	if (cap_oom_stops(c->dst.evictions_on, c->o.dest.text, n, why, sizeof(why)))
		engine_fail(&c->e, MCW_EXIT_TOO_SMALL, "%s", why);
}

/* The destination's answers: NS (kept: add mode), MN (a batch is done), errors. */
static void parse_answers(struct sjob *j)
{
	while (j->rd < j->wr && !engine_failed(&j->c->e)) {
		const char *line = (const char *)j->rbuf + j->rd;
		const char *nl = memchr(line, '\n', j->wr - j->rd);
		if (nl == NULL) {
			if (j->wr - j->rd > MCP_META_LINE_MAX)
				job_fail(j, MCW_EXIT_PROTOCOL,
					 "an answer line from the destination "
					 "is too long",
					 "");
			return;
		}
		size_t len = (size_t)(nl - line) + 1;
		if (len >= 4 && memcmp(line, "MN\r\n", 4) == 0) {
			if (j->b_answered == j->b_sent) {
				job_fail(j, MCW_EXIT_PROTOCOL,
					 "an MN from the destination answers "
					 "nothing in flight",
					 "");
				return;
			}
			j->sent += slot_of(j, j->b_answered)->nrec;
			j->b_answered++;
		} else if (len >= 2 && memcmp(line, "NS", 2) == 0) {
			j->present++;
		} else if (len >= 12 && memcmp(line, "SERVER_ERROR", 12) == 0) {
			j->server_errors++; /* that item is not stored */
			if (cap_is_out_of_memory(line, len))
				on_out_of_memory(j);
		} else {
			char what[120];
			snprintf(what, sizeof(what), "%.*s", (int)MIN(len, sizeof(what) - 1), line);
			job_fail(j, MCW_EXIT_PROTOCOL, "the destination answered: ", what);
			return;
		}
		j->rd += len;
	}
}

static void on_cqe(struct sjob *j, const struct ur_cqe *cqe)
{
	if (cqe->user_data == UD_MS_SEND) {
		j->send_busy = false;
		struct sslot *s = slot_of(j, j->b_sent);
		if (cqe->res < 0 || (size_t)cqe->res != s->len) {
			job_fail(j, MCW_EXIT_UNAVAILABLE, "sending to the destination failed: ",
				 cqe->res < 0 ? strerror(-cqe->res) : "short send");
			return;
		}
		s->sent = true;
		j->b_sent++;
	} else {
		ASSERT(cqe->user_data == UD_MS_RECV);
		j->recv_posted = false;
		if (cqe->res <= 0) {
			job_fail(j, MCW_EXIT_UNAVAILABLE, "connection to the destination lost: ",
				 cqe->res == 0 ? "closed by the server" : strerror(-cqe->res));
			return;
		}
		j->wr += (size_t)cqe->res;
		parse_answers(j);
	}
}

static void flush_counts(struct sjob *j)
{
	struct stream_stats *st = &j->c->st;
	atomic_fetch_add(&j->c->e.st.items, j->sent);
	atomic_fetch_add(&st->present, j->present);
	atomic_fetch_add(&st->expired, j->expired);
	atomic_fetch_add(&st->too_large, j->too_large);
	atomic_fetch_add(&j->c->e.st.server_errors, j->server_errors);
	j->sent = j->present = j->expired = j->too_large = j->server_errors = 0;
}

/* ---- the checks before copying --------------------------------------------------------- */

static int stream_preflight(struct stream_cmd *c)
{
	char err[1024];
	struct cap_load load;
	/* both are live: the same address is the same process, so identity covers both */
	int code = cap_check_not_same(-1, &c->e.src, c->e.o.source.text, -1, &c->dst,
				      c->o.dest.text, err, sizeof(err));
	if (code == 0) {
		cap_load_of_source(&c->e.src, &load);
		if (c->e.filter_on) {
			load.items = 0; /* an unknown share: the evictions watch still judges */
			log_info("key filters select a share of %s: its memory is not compared "
				 "with %s's before copying",
				 c->e.o.source.text, c->o.dest.text);
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

/* ---- the sink's operations ----------------------------------------------------------- */

/* Two ms batch slots that each hold a largest item, then the destination's answers. */
void stream_sink_need(uint64_t item_size_max, struct engine_sink_need *need)
{
	size_t slot =
	    ROUND_UP((size_t)item_size_max + MCW_REPLY_OVERHEAD_MAX + MCP_REQ_MAX + 8, 64 * KIB);
	static_assert(MCW_STREAM_SLOTS == 2, "two slot parts below");
	*need = (struct engine_sink_need){
		.nparts = 3,
		.part[0] = { "ms batch A", slot, true },
		.part[1] = { "ms batch B", slot, true },
		.part[2] = { "answers", MCW_STREAM_RECV_BYTES, false },
	};
}

static void stream_need(const struct engine *e, uint64_t item_size_max,
			struct engine_sink_need *need)
{
	(void)e;
	stream_sink_need(item_size_max, need);
}

static int stream_prepare(struct engine *e)
{
	struct stream_cmd *c = e->sink_ctx;
	int code = engine_probe_dest(e, &c->o.dest, &c->dst);
	if (code == 0)
		code = stream_preflight(c);
	return code != 0 ? code : engine_make_work_dir(e);
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
	j->slot_cap = MIN(w->sink_part_bytes[0], w->sink_part_bytes[1]);
	ASSERT(j->slot_cap >= c->e.src.item_size_max + MCW_REPLY_OVERHEAD_MAX);
	for (unsigned i = 0; i < MCW_STREAM_SLOTS; i++)
		j->slot[i].buf = w->sink_part[i];
	j->rbuf = w->sink_part[2];
	ASSERT(w->sink_part_bytes[2] >= MCW_STREAM_RECV_BYTES);
	rate_bucket_init(&j->bucket, rate_limits_active(&c->e.limits) ? &c->e.limits : NULL);
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
		close_batch(sj(w)); /* the job's last items go now */
	kick_send(sj(w));
	post_recv(sj(w));
}

static void stream_on_cqe(struct engine_worker *w, const struct ur_cqe *cqe)
{
	on_cqe(sj(w), cqe);
}

static bool stream_awaiting(struct engine_worker *w)
{
	return sj(w)->b_answered < sj(w)->b_sent || sj(w)->send_busy;
}

static int64_t stream_wake_ns(struct engine_worker *w)
{
	return sj(w)->wake_ns;
}

static bool stream_job_idle(struct engine_worker *w)
{
	return sj(w)->b_answered == sj(w)->b_open && !sj(w)->has_open;
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
		close(sj(w)->fd);
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
		json_str(&j, "error", c->e.run.error);
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
	code = engine_run(&c->e);
	if (c->watch_on)
		cap_watch_end(&c->watch);
	char why[512];
	if (code == 0 && cap_watch_evicted(&c->watch, why, sizeof(why))) {
		engine_fail(&c->e, MCW_EXIT_TOO_SMALL, "%s", why);
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
