/*
 * dump_worker.c: a value worker. One thread, pinned, with its own io_uring, its own
 * connection to the source, and its two budget buffers:
 *
 *   net  = [ send slot 0 | ... | send slot D-1 | receive area ]
 *   disk = [ key offsets | key chunk input | writer staging ]
 *
 * A job is one key chunk. Keys go out as pipelined `mg <key> k f t v u q O<i>` batches
 * closed by `mn`, up to MCW_BATCHES_INFLIGHT batches in flight and one send in flight
 * at a time. Replies are parsed in place in the receive area; each hit is handed to the
 * chunk writer; misses are silent and counted per batch at its MN.
 *
 * Invariants:
 *  1. The receive area is only compacted while no recv is in flight (the kernel writes
 *     at a fixed address) and, in writev mode, while the writer holds no references.
 *  2. Replies arrive in request order: a VA's opaque must lie in the oldest unanswered
 *     batch and grow; anything else means the stream is out of sync and the job fails.
 *  3. A reply is consumed only after the writer accepted its record (-EAGAIN leaves it
 *     in place and parsing resumes after a write completes).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "dump_private.h"
#include "keyspool.h"
#include "mcw_limits.h"

#define W_UD_RECV	    (1ull << 60)
#define W_UD_SEND(slot)	    ((2ull << 60) | (slot))
#define W_UD_KIND(ud)	    ((ud) >> 60)
#define W_MG_FLAGS	    "k f t v u q"
#define W_ERRORS_LOGGED_MAX 5

struct batch {
	bool sent;     /* its send completed */
	bool answered; /* its MN arrived */
	uint32_t first_key, nkeys, hits;
	size_t req_len;
};

struct wjob {
	struct dump_worker *w;
	struct dump_ctx *c;
	/* keys of the job */
	struct keychunk_view kv;
	uint32_t *key_off;
	uint32_t nkeys, next_key;
	/* batches: monotonic counters, slot = counter % D */
	struct batch b[MCW_BATCHES_INFLIGHT];
	uint8_t *send_slots;
	size_t slot_bytes;
	uint64_t b_alloc, b_sent, b_answered;
	bool send_busy;
	uint32_t expect_key;
	/* receive area: bytes [rd, wr) are unparsed */
	uint8_t *rbuf;
	size_t rcap, rd, wr;
	bool recv_posted;
	size_t need;  /* bytes the reply at rd needs, once parse saw its start */
	bool blocked; /* the writer had no room for the reply at rd */
	int64_t now_ms;
	unsigned errors_logged;
};

static void job_fail(struct wjob *j, int code, const char *what)
{
	dump_fail(j->c, code, "worker %u, key chunk %u: %s", j->w->id, j->kv.seq, what);
}

/* ---- sending ----------------------------------------------------------------------- */

static const uint8_t *key_at(const struct wjob *j, uint32_t i, uint16_t *len, uint8_t *flags)
{
	const uint8_t *p = j->kv.payload + j->key_off[i];
	memcpy(len, p, 2);
	*flags = p[2];
	return p + MCW_KEY_RECORD_HEADER;
}

static void fill_batches(struct wjob *j)
{
	while (j->next_key < j->nkeys && j->b_alloc - j->b_answered < MCW_BATCHES_INFLIGHT) {
		unsigned slot = (unsigned)(j->b_alloc % MCW_BATCHES_INFLIGHT);
		struct batch *b = &j->b[slot];
		if (j->b_alloc >= MCW_BATCHES_INFLIGHT && !b->sent)
			return; /* its previous use is answered but the send CQE is not reaped */
		char *out = (char *)j->send_slots + slot * j->slot_bytes;
		size_t len = 0;
		b->first_key = j->next_key;
		b->nkeys = 0;
		b->hits = 0;
		while (j->next_key < j->nkeys && b->nkeys < MCW_BATCH_KEYS) {
			uint16_t klen;
			uint8_t kflags;
			const uint8_t *key = key_at(j, j->next_key, &klen, &kflags);
			size_t n = mcp_mg_encode(out + len, j->slot_bytes - len - 4, key, klen,
						 kflags & KEYCHUNK_F_B64, W_MG_FLAGS, j->next_key);
			ASSERT(n > 0); /* the key reader only spools sendable keys */
			len += n;
			j->next_key++;
			b->nkeys++;
		}
		memcpy(out + len, "mn\r\n", 4);
		b->req_len = len + 4;
		b->sent = b->answered = false;
		j->b_alloc++;
	}
}

static void kick_send(struct wjob *j)
{
	if (j->send_busy || j->b_sent == j->b_alloc)
		return;
	unsigned slot = (unsigned)(j->b_sent % MCW_BATCHES_INFLIGHT);
	int ret = ur_prep_send(j->w->ring, j->w->fd, j->send_slots + slot * j->slot_bytes,
			       j->b[slot].req_len, W_UD_SEND(slot));
	if (ret < 0) {
		job_fail(j, MCW_EXIT_SOFTWARE, "cannot queue a send");
		return;
	}
	j->send_busy = true;
	j->b_sent++;
}

/* ---- receiving and parsing ------------------------------------------------------------ */

static void post_recv(struct wjob *j)
{
	if (j->recv_posted)
		return;
	bool writev_refs = chunk_writer_holds_refs(&j->w->cw);
	/* invariant 1: compact only with no recv in flight and nothing referenced */
	if (j->rd == j->wr && !writev_refs) {
		j->rd = j->wr = 0;
	} else if (j->rd > 0 && (j->rcap - j->wr < j->rcap / 4 || j->rcap - j->rd < j->need)) {
		if (writev_refs) {
			chunk_writer_flush(&j->w->cw);
		} else {
			memmove(j->rbuf, j->rbuf + j->rd, j->wr - j->rd);
			j->wr -= j->rd;
			j->rd = 0;
		}
	}
	if (j->wr == j->rcap)
		return; /* full: parsing or the writer must make room first */
	int ret = ur_prep_recv(j->w->ring, j->w->fd, j->rbuf + j->wr, j->rcap - j->wr, W_UD_RECV);
	if (ret < 0) {
		job_fail(j, MCW_EXIT_SOFTWARE, "cannot queue a receive");
		return;
	}
	j->recv_posted = true;
}

static bool key_echo_matches(const struct mcp_meta_reply *rep, const uint8_t *key, uint16_t len)
{
	if (!rep->has_key)
		return true;
	if (!rep->key_b64)
		return rep->key_len == len && memcmp(rep->key, key, len) == 0;
	uint8_t raw[MCP_KEY_MAX];
	long n = mcp_b64_decode(raw, sizeof(raw), rep->key, rep->key_len);
	return n == (long)len && memcmp(raw, key, len) == 0;
}

/* 0: consumed; -EAGAIN: the writer is full, keep the reply; other: failed. */
static int on_value(struct wjob *j, const struct mcp_meta_reply *rep)
{
	struct batch *b = &j->b[j->b_answered % MCW_BATCHES_INFLIGHT];
	if (j->b_answered == j->b_sent || !rep->has_opaque || rep->opaque < j->expect_key ||
	    rep->opaque >= b->first_key + b->nkeys || !rep->has_client_flags || !rep->has_ttl) {
		char msg[300];
		snprintf(msg, sizeof(msg),
			 "value reply out of order or without the flags asked for (the "
			 "connection is out of sync): reply for key #%lld, expected #%u to #%u, "
			 "batches sent %llu answered %llu: \"%.60s\"",
			 rep->has_opaque ? (long long)rep->opaque : -1LL, j->expect_key,
			 b->first_key + b->nkeys - 1, (unsigned long long)j->b_sent,
			 (unsigned long long)j->b_answered, (const char *)j->rbuf + j->rd);
		job_fail(j, MCW_EXIT_PROTOCOL, msg);
		return -EPROTO;
	}
	uint16_t klen;
	uint8_t kflags; /* not needed here: the reply's b flag says how the source stores it */
	const uint8_t *key = key_at(j, (uint32_t)rep->opaque, &klen, &kflags);
	if (!key_echo_matches(rep, key, klen)) {
		job_fail(j, MCW_EXIT_PROTOCOL, "a reply names another key than the one asked for");
		return -EPROTO;
	}
	if (rep->ttl >= 0 && rep->ttl < j->c->o.min_ttl_s) {
		atomic_fetch_add_explicit(&j->c->st.ttl_filtered, 1, memory_order_relaxed);
		b->hits++; /* present, deliberately not kept: not a miss */
		j->expect_key = (uint32_t)rep->opaque + 1;
		return 0;
	}
	struct chunk_rec rec = {
		.key = key,
		.key_len = klen,
		.flags = rep->key_b64 ? CHUNK_REC_F_BINARY_KEY : 0, /* as the source stores it */
		.client_flags = rep->client_flags,
		.expires_at_ms = rep->ttl < 0 ? 0 : j->now_ms + rep->ttl * 1000,
		.value = (const uint8_t *)rep->value,
		.value_len = (uint32_t)rep->value_len,
	};
	int ret = chunk_writer_add(&j->w->cw, &rec);
	if (ret == -EAGAIN)
		return ret; /* invariant 3: nothing about this reply is recorded yet */
	if (ret < 0) {
		dump_fail(j->c, MCW_EXIT_IO, "%s", j->w->cw.error_msg);
		return ret;
	}
	j->expect_key = (uint32_t)rep->opaque + 1;
	b->hits++;
	atomic_fetch_add_explicit(&j->c->st.items, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->c->st.value_bytes, rep->value_len, memory_order_relaxed);
	return 0;
}

static void on_batch_end(struct wjob *j)
{
	struct batch *b = &j->b[j->b_answered % MCW_BATCHES_INFLIGHT];
	b->answered = true;
	j->b_answered++;
	j->expect_key = j->b_answered < j->b_alloc
			    ? j->b[j->b_answered % MCW_BATCHES_INFLIGHT].first_key
			    : j->next_key;
	atomic_fetch_add_explicit(&j->c->st.keys_fetched, b->nkeys, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->c->st.misses, b->nkeys - b->hits, memory_order_relaxed);
}

static void log_server_error(struct wjob *j, const struct mcp_meta_reply *rep)
{
	atomic_fetch_add(&j->c->st.server_errors, 1);
	if (j->errors_logged++ < W_ERRORS_LOGGED_MAX)
		log_warn("source %s answered an mg with: %.*s", j->c->o.source.text,
			 (int)rep->msg_len, rep->msg);
}

static void parse(struct wjob *j)
{
	size_t value_max = j->c->src.item_size_max;
	while (!j->blocked && j->rd < j->wr) {
		struct mcp_meta_reply rep;
		const char *p = (const char *)j->rbuf + j->rd;
		enum mcp_status st = mcp_meta_reply_parse(p, j->wr - j->rd, value_max, &rep);
		if (st == MCP_NEED_MORE) {
			j->need = rep.total_len > 0 ? rep.total_len : MCP_META_LINE_MAX;
			ASSERT(j->need <= j->rcap); /* the plan sized rcap for the largest reply */
			return;
		}
		j->need = 0;
		if (st != MCP_OK) {
			char msg[200];
			snprintf(msg, sizeof(msg),
				 "malformed reply from the source (%s): \"%.60s\"",
				 mcp_status_name(st), p);
			job_fail(j, MCW_EXIT_PROTOCOL, msg);
			return;
		}
		switch (rep.code) {
		case MCP_RC_VA: {
			int ret = on_value(j, &rep);
			if (ret == -EAGAIN) {
				j->blocked = true;
				return;
			}
			if (ret < 0)
				return;
			break;
		}
		case MCP_RC_MN:
			if (j->b_answered == j->b_sent) {
				job_fail(j, MCW_EXIT_PROTOCOL, "MN without a batch in flight");
				return;
			}
			on_batch_end(j);
			break;
		case MCP_RC_EN: /* a miss the q flag did not hide: still a miss */
			break;
		case MCP_RC_CLIENT_ERROR:
		case MCP_RC_SERVER_ERROR:
			log_server_error(j, &rep);
			break;
		default:
			job_fail(j, MCW_EXIT_PROTOCOL, "unexpected reply code to mg");
			return;
		}
		j->rd += rep.total_len;
	}
}

/* ---- the job loop ---------------------------------------------------------------------- */

static void on_cqe(struct wjob *j, const struct ur_cqe *cqe)
{
	if (chunk_writer_owns(cqe->user_data)) {
		if (chunk_writer_complete(&j->w->cw, cqe) < 0)
			dump_fail(j->c, MCW_EXIT_IO, "%s", j->w->cw.error_msg);
		j->blocked = false;
		return;
	}
	if (W_UD_KIND(cqe->user_data) == W_UD_KIND(W_UD_RECV)) {
		j->recv_posted = false;
		if (cqe->res <= 0) {
			char msg[160];
			snprintf(msg, sizeof(msg), "connection to the source lost: %s",
				 cqe->res == 0 ? "closed by the server" : strerror(-cqe->res));
			job_fail(j, MCW_EXIT_UNAVAILABLE, msg);
			return;
		}
		j->wr += (size_t)cqe->res;
		j->now_ms = wall_ns() / 1000000;
		return;
	}
	unsigned slot = (unsigned)(cqe->user_data & 0xff);
	ASSERT(slot < MCW_BATCHES_INFLIGHT && j->send_busy);
	j->send_busy = false;
	if (cqe->res < 0 || (size_t)cqe->res != j->b[slot].req_len) {
		char msg[160];
		snprintf(msg, sizeof(msg), "sending to the source failed: %s",
			 cqe->res < 0 ? strerror(-cqe->res) : "short send");
		job_fail(j, MCW_EXIT_UNAVAILABLE, msg);
		return;
	}
	j->b[slot].sent = true;
}

/* Waits for and handles completions. false when the dump has failed. */
static bool pump(struct wjob *j, bool expecting_server)
{
	struct ur_cqe cqes[MCW_RING_ENTRIES];
	int ret = ur_submit_wait(j->w->ring, 1, j->c->o.io_timeout_ms);
	if (ret == -ETIME) {
		if (expecting_server) {
			char msg[160];
			snprintf(msg, sizeof(msg), "no reply from the source for %d s",
				 j->c->o.io_timeout_ms / 1000);
			job_fail(j, MCW_EXIT_UNAVAILABLE, msg);
			return false;
		}
		return !dump_failed(j->c);
	}
	if (ret < 0) {
		job_fail(j, MCW_EXIT_SOFTWARE, "io_uring wait failed");
		return false;
	}
	unsigned n = ur_reap(j->w->ring, cqes, ARRAY_LEN(cqes));
	for (unsigned i = 0; i < n; i++)
		on_cqe(j, &cqes[i]);
	return !dump_failed(j->c);
}

static bool load_keys(struct wjob *j, uint32_t seq)
{
	struct dump_worker *w = j->w;
	size_t off_bytes = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES);
	char err[256];
	j->key_off = (uint32_t *)w->disk_buf;
	int ret = keychunk_load(j->c->spool_fd, seq, j->c->id.dump_id, w->disk_buf + off_bytes,
				MCW_KEYCHUNK_BYTES, &j->kv, err, sizeof(err));
	if (ret < 0) {
		dump_fail(j->c, MCW_EXIT_IO, "%s", err);
		return false;
	}
	uint32_t pos = 0, n = 0;
	const uint8_t *key;
	uint16_t klen;
	uint8_t flags;
	for (uint32_t at = 0; keychunk_next(&j->kv, &pos, &key, &klen, &flags); at = pos)
		j->key_off[n++] = at;
	j->nkeys = n;
	return true;
}

static void run_job(struct wjob *j, uint32_t seq)
{
	if (!load_keys(j, seq))
		return;
	j->next_key = 0;
	j->b_alloc = j->b_sent = j->b_answered = 0;
	j->expect_key = 0;
	memset(j->b, 0, sizeof(j->b));
	if (chunk_writer_begin(&j->w->cw, seq) < 0)
		return;
	for (;;) {
		/* parse first: an MN frees a batch slot that fill_batches can use right away */
		parse(j);
		if (dump_failed(j->c))
			return;
		fill_batches(j);
		kick_send(j);
		post_recv(j);
		if (j->next_key == j->nkeys && j->b_answered == j->b_alloc && !j->send_busy)
			break;
		if (!pump(j, j->b_answered < j->b_sent))
			return;
	}
	if (chunk_writer_end(&j->w->cw) < 0)
		dump_fail(j->c, MCW_EXIT_IO, "%s", j->w->cw.error_msg);
	atomic_fetch_add(&j->c->st.jobs_done, 1);
}

/* ---- thread --------------------------------------------------------------------------- */

static void on_file_done(void *arg, const struct chunk_file_done *d)
{
	struct dump_ctx *c = arg;
	atomic_fetch_add(&c->st.files, 1);
	atomic_fetch_add(&c->st.file_bytes, d->file_bytes);
}

/* Next key chunk, or -1 when there is none left (or the dump failed). */
static int64_t take_job(struct dump_ctx *c, bool wait)
{
	int64_t job = -1;
	pthread_mutex_lock(&c->mu);
	while (wait && !c->failed && c->next_job >= c->chunks_ready && !c->keys_done)
		pthread_cond_wait(&c->cv, &c->mu);
	if (!c->failed && c->next_job < c->chunks_ready)
		job = c->next_job++;
	else if (!wait && !c->failed && !c->keys_done)
		job = -2; /* none yet, more to come */
	pthread_mutex_unlock(&c->mu);
	return job;
}

static int worker_setup(struct dump_worker *w, struct wjob *j)
{
	struct dump_ctx *c = w->ctx;
	char name[16];
	snprintf(name, sizeof(name), "mcw-worker-%u", w->id);
	pthread_setname_np(pthread_self(), name);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */

	struct ur_ring_opts ro = { .sq_entries = MCW_RING_ENTRIES,
				   .iowq_workers_max = MCW_IOWQ_WORKERS_MAX };
	int ret = ur_ring_create(&ro, &w->ring);
	if (ret < 0)
		return ret;
	size_t off_bytes = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES);
	size_t in_bytes = off_bytes + MCW_KEYCHUNK_BYTES;
	struct iovec iov = { w->disk_buf + in_bytes, w->disk_bytes - in_bytes };
	ret = ur_buffers_register(w->ring, &iov, 1);
	if (ret < 0)
		return ret;
	struct chunk_writer_opts wo = {
		.mode = c->o.write_mode,
		.ring = w->ring,
		.buf_index = 0,
		.dir_fd = c->out_fd,
		.dir_path = c->o.out_dir,
		.id = &c->id,
		.staging = iov.iov_base,
		.staging_bytes = iov.iov_len,
		.chunk_bytes_max = c->o.chunk_bytes,
		.record_value_max = (uint32_t)c->src.item_size_max,
		.direct = c->o.direct,
		.on_file_done = on_file_done,
		.arg = c,
	};
	ret = chunk_writer_init(&w->cw, &wo);
	if (ret < 0)
		return ret;
	memset(j, 0, sizeof(*j));
	j->w = w;
	j->c = c;
	j->slot_bytes = MCW_BATCH_REQ_BYTES;
	j->send_slots = w->net_buf;
	j->rbuf = w->net_buf + MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES;
	j->rcap = w->net_bytes - MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES;
	return 0;
}

void *dump_worker_main(void *arg)
{
	struct dump_worker *w = arg;
	struct dump_ctx *c = w->ctx;
	struct wjob j;
	int ret = worker_setup(w, &j);
	if (ret < 0) {
		dump_fail(c, MCW_EXIT_SOFTWARE, "worker %u cannot start: %s", w->id,
			  strerror(-ret));
		goto out;
	}
	for (;;) {
		int64_t job = take_job(c, false);
		if (job == -2) {
			/* nothing to fetch yet: finish background file work, then sleep */
			while (!chunk_writer_idle(&w->cw) && pump(&j, false))
				;
			job = take_job(c, true);
		}
		if (job < 0)
			break;
		run_job(&j, (uint32_t)job);
	}
	while (!dump_failed(c) && !chunk_writer_idle(&w->cw) && pump(&j, false))
		;
out:
	if (dump_failed(c))
		chunk_writer_abandon(&w->cw);
	chunk_writer_release(&w->cw);
	ur_ring_destroy(w->ring);
	w->ring = NULL;
	close(w->fd);
	w->fd = -1;
	pthread_mutex_lock(&c->mu);
	c->threads_running--;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}
