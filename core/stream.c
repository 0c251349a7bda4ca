/*
 * stream.c: `mcwarm stream`, source straight into destination, no volume. The dump engine
 * lists the source's keys (metadump into a key spool in --work, with the same filters);
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
#include "cli.h"
#include "dump_private.h"
#include "json.h"
#include "mgpipe.h"
#include "populate_private.h"

#define UD_MS_SEND (0x5ull << 60)
#define UD_MS_RECV (0x6ull << 60)

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
		printf("%s\n%s\n%s\n%s\n%s", stream_usage, keyfilter_help, cli_limits_help,
		       cli_secure_help, mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("stream", "unexpected argument '%s'", argv[optind]);
	if (o->source.port == 0 || o->dest.port == 0)
		return cli_usage_error("stream", "--source and --dest are required");
	int ret = cli_secure_finish("stream", &o->co, &o->source, &o->dest);
	if (ret == 0 && o->co.dst_sec.tls) /* TODO(mspipe): seal/open in the ms sender */
		return cli_usage_error("stream", "--dest-tls: TLS to stream's destination is not "
						 "built yet (its ms sender); use dump + populate");
	return ret;
}

/* ---- the worker ------------------------------------------------------------------------ */

struct sslot {
	uint8_t *buf;
	size_t len;
	uint32_t nrec;
	bool closed, sent;
};

struct sjob {
	struct dump_worker *w;
	struct dump_ctx *c;
	struct mgpipe src;
	struct keychunk_view kv;
	uint32_t *key_off;
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
	int64_t last_io_ns;
	uint64_t opaque; /* O<n> of the next ms, for reading a trace */
	/* counts since the last flush into the shared stats */
	uint64_t sent, present, expired, too_large, server_errors;
};

static void job_fail(struct sjob *j, int code, const char *fmt, const char *what)
{
	dump_fail(j->c, code, "worker %u: %s%s", j->w->id, fmt, what);
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
	struct dump_ctx *c = j->c;
	uint16_t klen;
	uint8_t kflags;
	const uint8_t *key = mgpipe_key(&j->src, index, &klen, &kflags);
	if (rep->value_len >
	    pop_value_max(c->dst.item_size_max, c->dst.cas_enabled, klen, rep->client_flags)) {
		j->too_large++;
		return 0;
	}
	int64_t expires_at_ms = rep->ttl < 0 ? 0 : j->src.recv_ms + rep->ttl * 1000;
	int64_t t =
	    pop_exptime(expires_at_ms, wall_ns() / 1000000, c->o.min_ttl_s, server_now_s(&c->dst));
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
	struct dump_ctx *c = j->c;
	char why[512];
	uint64_t n = atomic_fetch_add(&c->st.s_out_of_memory, 1) + 1;
	if (cap_oom_stops(c->dst.evictions_on, c->o.dest.text, n, why, sizeof(why)))
		dump_fail(c, MCW_EXIT_TOO_SMALL, "%s", why);
}

/* The destination's answers: NS (kept: add mode), MN (a batch is done), errors. */
static void parse_answers(struct sjob *j)
{
	while (j->rd < j->wr && !dump_failed(j->c)) {
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
	} else if (cqe->user_data == UD_MS_RECV) {
		j->recv_posted = false;
		if (cqe->res <= 0) {
			job_fail(j, MCW_EXIT_UNAVAILABLE, "connection to the destination lost: ",
				 cqe->res == 0 ? "closed by the server" : strerror(-cqe->res));
			return;
		}
		j->wr += (size_t)cqe->res;
		parse_answers(j);
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
	bool awaiting = mgpipe_awaiting(&j->src) || j->b_answered < j->b_sent || j->send_busy;
	int64_t ws = mgpipe_wake_ns(&j->src), wd = j->wake_ns;
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
	atomic_fetch_add(&st->items, j->sent);
	atomic_fetch_add(&st->s_present, j->present);
	atomic_fetch_add(&st->s_expired, j->expired);
	atomic_fetch_add(&st->s_too_large, j->too_large);
	atomic_fetch_add(&st->server_errors, j->server_errors + j->src.server_errors);
	atomic_fetch_add(&st->keys_fetched, j->src.fetched);
	atomic_fetch_add(&st->misses, j->src.misses);
	j->sent = j->present = j->expired = j->too_large = j->server_errors = 0;
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
			close_batch(j); /* the job's last items go now */
		mgpipe_kick(&j->src);
		kick_send(j);
		post_recv(j);
		if (fetched && j->b_answered == j->b_open && !j->has_open)
			break;
		if (!pump(j))
			return;
	}
	flush_counts(j);
	atomic_fetch_add(&j->c->st.jobs_done, 1);
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
	j->fd = w->dst_fd;
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
	/* the disk area: key input, then the batch slots, then the answers */
	uint8_t *area = w->disk_buf + keyin;
	size_t avail = w->disk_bytes - keyin - MCW_STREAM_RECV_BYTES;
	j->slot_cap = avail / MCW_STREAM_SLOTS / MCW_ALIGN_BYTES * MCW_ALIGN_BYTES;
	ASSERT(j->slot_cap >= c->src.item_size_max + MCW_REPLY_OVERHEAD_MAX);
	for (unsigned i = 0; i < MCW_STREAM_SLOTS; i++)
		j->slot[i].buf = area + i * j->slot_cap;
	j->rbuf = area + MCW_STREAM_SLOTS * j->slot_cap;
	rate_bucket_init(&j->bucket, limits);
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
	net_close(w->dst_fd);
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
