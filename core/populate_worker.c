/*
 * populate_worker.c: a populate worker. One thread with its own io_uring, one connection
 * to the destination, two registered read buffers and a send area of batches.
 *
 * A file is read in windows (a read buffer's worth of whole blocks) with O_DIRECT
 * read_fixed, alternating between the two buffers so the next window is read while the
 * current one is being sent. Every block of a window is checked (crc32c, structure)
 * before anything in it is used; records come out of a resumable cursor and go into
 * batches of `ms <key> <len> T F ME q O<n>` closed by `mn`, the values sent with sendmsg
 * straight from the read buffer (iovecs), never copied.
 *
 *   window: FREE --read--> READING --cqe--> READY --cursor--> PROCESSED --acks--> FREE
 *   batch:  open --full/stall/file end--> closed --encode+sendmsg--> sent --MN--> free
 *   file:   FREE --open--> READING --last window walked--> FINISHING --acks--> journal
 *
 * Two file slots: the next file is read and sent while the previous one's last batches
 * are still being answered, so the pipeline does not drain at file boundaries; window
 * numbers count on across files, so the two read buffers simply alternate.
 *
 * Invariants:
 *  1. A record goes into a batch only when all its pieces are in checked blocks.
 *  2. A read buffer is reused only when every batch that points into it is answered and
 *     no pending record (one that continues into the next window) points into it.
 *  3. Headers are encoded when a batch is (re)sent, so TTLs are computed at send time;
 *     after a reconnect every unanswered batch is re-encoded and resent (add mode makes a
 *     second add of the same item harmless: it answers NS).
 *  4. Completions of a dead connection are waited for before its buffers are reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "mcw_limits.h"
#include "pop_walk.h"
#include "populate_private.h"

#define UD_READ		 1ull
#define UD_RECV		 2ull
#define UD_SEND		 3ull
#define UD(kind, gen, x) ((kind) << 60 | (uint64_t)((gen)&0xffff) << 40 | (x))
#define UD_KIND(ud)	 ((ud) >> 60)
#define UD_GEN(ud)	 ((uint32_t)(((ud) >> 40) & 0xffff))
#define UD_X(ud)	 ((ud)&0xffffffffffull)
#define SENDMSG_IOV_MAX	 1024
static_assert(POP_REC_PIECES_MAX <= POP_BATCH_PIECES, "a whole record fits in an empty batch");

enum buf_state { BUF_FREE, BUF_READING, BUF_READY, BUF_PROCESSED };

struct prec {
	struct chunk_record_header hdr;
	const uint8_t *key;
	uint32_t piece0, npieces;
};

struct pbatch {
	struct prec *recs;
	uint32_t nrec;
	struct iovec *pieces;
	uint32_t npieces;
	char *hdr;
	struct iovec *iov;
	uint32_t niov, iov_done, iov_chunk;
	size_t chunk_bytes;
	bool encoded;
	uint32_t encoded_records;
	uint64_t opaque_base;
	uint32_t present; /* NS answers */
	uint32_t expired; /* skipped at the last encoding: expired in transit */
	uint64_t value_bytes;
	bool charged; /* its rate-limit tokens are taken (not again when resent) */
};

struct rbuf {
	enum buf_state state;
	uint64_t window;     /* global window number (windows count on across files) */
	unsigned file;	     /* slot of the file it holds a window of */
	size_t len;	     /* bytes read */
	size_t want;	     /* bytes the file held there when it was opened */
	uint64_t last_batch; /* highest batch number pointing into it (if has_ref) */
	bool has_ref;
	bool pend_hold; /* a record in assembly points into it */
};

enum file_state { FILE_FREE, FILE_READING, FILE_FINISHING };

struct pfile {
	enum file_state state;
	int fd;
	uint64_t first_window; /* global number of its window 0 */
	bool has_batches;
	uint64_t last_batch; /* its last batch, once has_batches */
	uint32_t job, part, crc;
	bool complete;		 /* valid footer and name */
	uint64_t footer_records; /* what the footer says it holds */
	uint32_t block_bytes, nblocks, nwindows, window_blocks;
	uint64_t blocks_end;
	uint8_t good[JOURNAL_BLOCKS_MAX / 8]; /* the walk's, once it is over */
	uint32_t bad, missing, records;
	char name[CHUNK_NAME_MAX];
};

struct pw {
	struct pop_worker *w;
	struct pop_ctx *c;
	struct ur_ring *ring;
	int fd;
	uint32_t gen;
	uint32_t stale; /* completions still due from dead connections */
	bool lost;	/* the connection died; reconnect_if_lost takes over */
	/* batches */
	struct pbatch b[POP_BATCHES_INFLIGHT];
	uint64_t b_alloc, b_sent, b_answered;
	bool has_open, send_busy;
	struct msghdr msg;
	uint64_t opaque_next;
	/* replies */
	uint8_t *rbuf;
	size_t rd, wr;
	bool recv_posted;
	/* files: one being read and sent (rf), one finishing (waiting for answers) */
	struct pfile files[2];
	int rf;		  /* slot being read, or -1 */
	struct pfile *pf; /* the file of the window being processed */
	uint8_t *page;	  /* 4096 aligned bytes for header and footer reads */
	struct rbuf bufs[2];
	uint64_t read_window, proc_window;
	bool in_window;
	struct pop_walk walk; /* of the file being read (rf) */
	bool rec_ready;	      /* walk.rec is whole and waits for room in a batch */
	int64_t last_io_ms;
	unsigned errors_logged;
	struct rate_bucket bucket;
	int64_t wake_ns; /* a batch held back by the rate limit until then, 0 if none */
};

static int64_t now_ms(void)
{
	return wall_ns() / 1000000;
}

uint64_t pop_value_max(uint64_t item_size_max, bool cas_enabled, size_t key_len,
		       uint32_t client_flags)
{
	uint64_t overhead = 48 + key_len + 1 + (client_flags ? 4 : 0) + (cas_enabled ? 8 : 0) + 2;
	return item_size_max > overhead ? item_size_max - overhead : 0;
}

int64_t pop_exptime(int64_t expires_at_ms, int64_t now, int64_t min_ttl_s, int64_t dest_now_s)
{
	if (expires_at_ms == 0)
		return 0;
	int64_t left_s = (expires_at_ms - now) / 1000; /* rounds down: never extends */
	if (expires_at_ms - now < 0 || left_s < MAX(min_ttl_s, 1))
		return -1;
	if (left_s <= 30 * 86400)
		return left_s;
	return dest_now_s + left_s;
}

/* ---- connection ----------------------------------------------------------------------- */

static void post_recv(struct pw *p)
{
	if (p->recv_posted || p->fd < 0)
		return;
	if (p->rd == p->wr) {
		p->rd = p->wr = 0;
	} else if (p->rd > 0 && POP_RECV_BYTES - p->wr < MCP_META_LINE_MAX) {
		memmove(p->rbuf, p->rbuf + p->rd, p->wr - p->rd);
		p->wr -= p->rd;
		p->rd = 0;
	}
	if (ur_prep_recv(p->ring, p->fd, p->rbuf + p->wr, POP_RECV_BYTES - p->wr,
			 UD(UD_RECV, p->gen, 0)) == 0)
		p->recv_posted = true;
}

static bool connect_dest(struct pw *p)
{
	struct pop_ctx *c = p->c;
	char err[512];
	int64_t deadline = mono_ns() + (int64_t)c->o.reconnect_timeout_ms * 1000000;
	unsigned delay_ms = POP_RECONNECT_MIN_MS;
	for (;;) {
		int fd = net_connect(&c->o.dest, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
		if (fd >= 0) {
			struct server_info si;
			net_set_recv_timeout(fd, c->o.co.io_timeout_ms);
			if (server_probe(fd, c->o.dest.text, &si, err, sizeof(err)) == 0) {
				pthread_mutex_lock(&c->run.mu);
				/* a restarted server has a new clock, and none of our items */
				if (!journal_same_instance(&c->journal, si.time_s - si.uptime_s,
							   si.pid))
					c->dest_restarted = true;
				c->dst = si;
				pthread_mutex_unlock(&c->run.mu);
				p->fd = fd;
				return true;
			}
			close(fd);
		}
		if (mono_ns() + (int64_t)delay_ms * 1000000 > deadline || pop_failed(c)) {
			pop_fail(c, MCW_EXIT_UNAVAILABLE,
				 "the destination stayed unreachable for %d s: %s",
				 c->o.reconnect_timeout_ms / 1000, err);
			return false;
		}
		log_warn("worker %u: destination unreachable (%s); retrying in %u ms", p->w->id,
			 err, delay_ms);
		struct timespec ts = { delay_ms / 1000, (long)(delay_ms % 1000) * 1000000 };
		nanosleep(&ts, NULL);
		delay_ms = MIN(delay_ms * 2, (unsigned)POP_RECONNECT_MAX_MS);
	}
}

static bool pump(struct pw *p);

/* The connection broke: close it now; completions still due from it are counted as stale
 * and ignored when they come. The reconnect happens in the loop (reconnect_if_lost), after
 * every completion already reaped has been handled (one reap can hold both the failed send
 * and the failed receive). */
static void connection_lost(struct pw *p, const char *why)
{
	if (p->lost)
		return;
	log_warn("worker %u: connection to %s lost (%s): reconnecting, then resending %llu "
		 "unanswered batch(es)",
		 p->w->id, p->c->o.dest.text, why,
		 (unsigned long long)(p->b_alloc - p->b_answered - p->has_open));
	atomic_fetch_add(&p->c->st.reconnects, 1);
	if (p->fd >= 0) {
		shutdown(p->fd, SHUT_RDWR);
		close(p->fd);
		p->fd = -1;
	}
	p->stale += p->recv_posted + p->send_busy;
	p->recv_posted = p->send_busy = false;
	p->gen++;
	p->lost = true;
}

/* Waits out the dead connection (invariant 4), reconnects, and queues every unanswered
 * batch again (invariant 3). false if the run failed. */
static bool reconnect_if_lost(struct pw *p)
{
	if (!p->lost)
		return true;
	while (p->stale > 0)
		if (!pump(p))
			return false;
	p->rd = p->wr = 0;
	p->b_sent = p->b_answered;
	for (uint64_t i = p->b_answered; i < p->b_alloc; i++) {
		struct pbatch *b = &p->b[i % POP_BATCHES_INFLIGHT];
		b->encoded = false;
		b->iov_done = 0;
		b->present = 0;
	}
	if (!connect_dest(p))
		return false;
	p->lost = false;
	return true;
}

/* ---- batches -------------------------------------------------------------------------- */

static struct pbatch *batch_at(struct pw *p, uint64_t n)
{
	return &p->b[n % POP_BATCHES_INFLIGHT];
}

static bool batch_open(struct pw *p)
{
	if (p->has_open)
		return true;
	if (p->b_alloc - p->b_answered == POP_BATCHES_INFLIGHT)
		return false;
	struct pbatch *b = batch_at(p, p->b_alloc++);
	b->nrec = b->npieces = b->niov = b->iov_done = 0;
	b->encoded = b->charged = false;
	b->present = 0;
	b->value_bytes = 0;
	p->has_open = true;
	return true;
}

static void batch_close(struct pw *p)
{
	if (p->has_open && batch_at(p, p->b_alloc - 1)->nrec == 0)
		p->b_alloc--; /* nothing in it: give the slot back */
	p->has_open = false;
}

static void encode(struct pw *p, struct pbatch *b)
{
	static const char crlf[] = "\r\n", mn[] = "mn\r\n";
	struct pop_ctx *c = p->c;
	pthread_mutex_lock(&c->run.mu);
	int64_t dest_now = server_now_s(&c->dst);
	pthread_mutex_unlock(&c->run.mu);
	int64_t now = now_ms();
	size_t hdr_used = 0;
	b->niov = 0;
	b->encoded_records = b->expired = 0;
	b->opaque_base = p->opaque_next;
	p->opaque_next += b->nrec;
	for (uint32_t i = 0; i < b->nrec; i++) {
		struct prec *r = &b->recs[i];
		int64_t t = pop_exptime(r->hdr.expires_at_ms, now, c->o.min_ttl_s, dest_now);
		if (t < 0) {
			b->expired++; /* counted once, when the batch is answered */
			continue;
		}
		bool b64 = (r->hdr.flags & CHUNK_REC_F_BINARY_KEY) ||
			   mcp_key_needs_b64(r->key, r->hdr.key_len);
		size_t n = mcp_ms_encode(b->hdr + hdr_used, POP_BATCH_HDR_BYTES - hdr_used, r->key,
					 r->hdr.key_len, b64, r->hdr.value_len, t,
					 r->hdr.client_flags, c->o.mode, b->opaque_base + i);
		ASSERT(n > 0); /* lengths were checked when the record was read */
		b->iov[b->niov++] = (struct iovec){ b->hdr + hdr_used, n };
		hdr_used += n;
		for (uint32_t k = 0; k < r->npieces; k++)
			b->iov[b->niov++] = b->pieces[r->piece0 + k];
		b->iov[b->niov++] = (struct iovec){ (void *)crlf, 2 };
		b->encoded_records++;
	}
	b->iov[b->niov++] = (struct iovec){ (void *)mn, 4 };
	b->encoded = true;
	b->iov_done = 0;
}

static void kick_send(struct pw *p)
{
	p->wake_ns = 0;
	if (p->send_busy || p->fd < 0)
		return;
	uint64_t closed = p->b_alloc - p->has_open;
	if (p->b_sent == closed)
		return;
	struct pbatch *b = batch_at(p, p->b_sent);
	if (!b->charged) {
		int64_t now = mono_ns();
		int64_t wait = rate_bucket_take(&p->bucket, b->nrec, b->value_bytes, now);
		if (wait > 0) {
			p->wake_ns = now + wait;
			return;
		}
		b->charged = true;
	}
	if (!b->encoded)
		encode(p, b);
	b->iov_chunk = MIN(b->niov - b->iov_done, (uint32_t)SENDMSG_IOV_MAX);
	b->chunk_bytes = 0;
	for (uint32_t i = 0; i < b->iov_chunk; i++)
		b->chunk_bytes += b->iov[b->iov_done + i].iov_len;
	memset(&p->msg, 0, sizeof(p->msg));
	p->msg.msg_iov = &b->iov[b->iov_done];
	p->msg.msg_iovlen = b->iov_chunk;
	if (ur_prep_sendmsg(p->ring, p->fd, &p->msg, UD(UD_SEND, p->gen, 0)) == 0)
		p->send_busy = true;
}

static void on_send(struct pw *p, int res)
{
	struct pbatch *b = batch_at(p, p->b_sent);
	p->send_busy = false;
	if (res < 0 || (size_t)res != b->chunk_bytes) {
		connection_lost(p, res < 0 ? strerror(-res) : "short send");
		return;
	}
	b->iov_done += b->iov_chunk;
	p->last_io_ms = now_ms(); /* silence is counted from the last send or receive */
	if (b->iov_done == b->niov)
		p->b_sent++;
}

/* ---- read buffers --------------------------------------------------------------------- */

static void buf_try_release(struct pw *p, struct rbuf *rb)
{
	if (rb->state == BUF_PROCESSED && !rb->pend_hold &&
	    (!rb->has_ref || p->b_answered > rb->last_batch))
		rb->state = BUF_FREE;
}

static void schedule_reads(struct pw *p)
{
	if (p->rf < 0)
		return;
	struct pfile *f = &p->files[p->rf];
	while (p->read_window < f->first_window + f->nwindows) {
		unsigned which = (unsigned)(p->read_window % 2);
		struct rbuf *rb = &p->bufs[which];
		buf_try_release(p, rb);
		if (rb->state != BUF_FREE)
			return;
		uint64_t fw = p->read_window - f->first_window;
		uint64_t off = MCW_HEADER_BYTES + fw * f->window_blocks * f->block_bytes;
		uint64_t len =
		    MIN((uint64_t)f->window_blocks * f->block_bytes, f->blocks_end - off);
		len = ROUND_UP(len, MCW_ALIGN_BYTES); /* a truncated file ends unaligned */
		if (ur_prep_read_fixed(p->ring, f->fd, p->w->read_buf[which], len, off, which,
				       UD(UD_READ, p->gen, which)) < 0)
			return;
		rb->state = BUF_READING;
		rb->want =
		    (size_t)MIN((uint64_t)f->window_blocks * f->block_bytes, f->blocks_end - off);
		rb->window = p->read_window++;
		rb->file = (unsigned)p->rf;
		rb->has_ref = rb->pend_hold = false;
	}
}

static void on_read(struct pw *p, unsigned which, int res)
{
	struct rbuf *rb = &p->bufs[which];
	ASSERT(rb->state == BUF_READING);
	if (res < 0) {
		pop_fail(p->c, MCW_EXIT_IO, "cannot read %s/%s: %s", p->c->o.from_dir,
			 p->files[rb->file].name, strerror(-res));
		return;
	}
	if ((size_t)res < rb->want) { /* the file shrank under us, or the device failed */
		pop_fail(p->c, MCW_EXIT_IO,
			 "short read of %s/%s: %d of %zu bytes (the file changed while it was "
			 "read, or the device failed); run again",
			 p->c->o.from_dir, p->files[rb->file].name, res, rb->want);
		return;
	}
	rb->len = (size_t)res; /* beyond want: the aligned tail of a truncated file */
	rb->state = BUF_READY;
}

/* ---- records ------------------------------------------------------------------------- */

/* The record in assembly no longer points into the read buffers. */
static void pend_release(struct pw *p)
{
	for (unsigned i = 0; i < 2; i++) {
		if (p->bufs[i].pend_hold) {
			p->bufs[i].pend_hold = false;
			buf_try_release(p, &p->bufs[i]);
		}
	}
}

/* Puts the whole record of the walk into the open batch; false if no batch has room. */
static bool place_record(struct pw *p)
{
	const struct pop_walk_record *wr = &p->walk.rec;
	for (;;) {
		if (!batch_open(p))
			return false;
		struct pbatch *b = batch_at(p, p->b_alloc - 1);
		if (b->nrec < rate_bucket_batch(&p->bucket, POP_BATCH_RECORDS) &&
		    b->npieces + wr->npieces <= POP_BATCH_PIECES)
			break;
		batch_close(p);
	}
	uint64_t n = p->b_alloc - 1;
	struct pbatch *b = batch_at(p, n);
	struct prec *r = &b->recs[b->nrec++];
	*r = (struct prec){
		.hdr = wr->hdr, .key = wr->key, .piece0 = b->npieces, .npieces = wr->npieces
	};
	for (uint32_t i = 0; i < wr->npieces; i++) /* mostly one: no memcpy call */
		b->pieces[b->npieces + i] = wr->pieces[i];
	b->npieces += wr->npieces;
	b->value_bytes += r->hdr.value_len;
	p->pf->records++;
	p->pf->has_batches = true;
	p->pf->last_batch = n;
	atomic_fetch_add_explicit(&p->c->st.value_bytes, r->hdr.value_len, memory_order_relaxed);
	/* invariant 2: both windows the record touches now wait for this batch */
	for (uint64_t w = p->pf->first_window + wr->window0; w <= p->proc_window; w++) {
		struct rbuf *rb = &p->bufs[w % 2];
		rb->has_ref = true;
		rb->last_batch = n;
	}
	p->rec_ready = false;
	pend_release(p);
	return true;
}

/* Counts and reports what the walk says of a block or record (not a record to send). */
static void on_walk_problem(struct pw *p, enum pop_walk_event ev)
{
	struct pop_ctx *c = p->c;
	struct pfile *f = p->pf;
	const struct pop_walk *w = &p->walk;
	unsigned long long off = (unsigned long long)pop_walk_block_offset(w, w->ev_block);
	atomic_fetch_add(&c->st.records_lost, ev == POP_WALK_RECORD_BAD ? 1 : w->ev_lost);
	bool list = f->bad + f->missing < POP_FILE_WARNINGS_MAX;
	if (f->bad + f->missing == POP_FILE_WARNINGS_MAX && ev != POP_WALK_TOO_LARGE)
		log_warn("%s/%s: more damaged blocks: counted, not listed", c->o.from_dir, f->name);
	switch (ev) {
	case POP_WALK_BLOCK_MISSING:
		f->missing++;
		atomic_fetch_add(&c->st.blocks_missing, 1);
		break;
	case POP_WALK_BLOCK_BAD:
		f->bad++;
		atomic_fetch_add(&c->st.blocks_bad, 1);
		if (list)
			log_warn("%s/%s: block %u at offset %llu: %s; skipped, every other block "
				 "is applied",
				 c->o.from_dir, f->name, w->ev_block, off,
				 chunk_status_name(w->ev_status));
		break;
	case POP_WALK_RECORD_BAD:
		f->bad++;
		atomic_fetch_add(&c->st.blocks_bad, 1);
		if (list)
			log_warn("%s/%s: block %u at offset %llu: a record dropped: %s (damaged "
				 "or crafted); every other record is applied",
				 c->o.from_dir, f->name, w->ev_block, off, w->ev_why);
		break;
	case POP_WALK_TOO_LARGE:
		atomic_fetch_add_explicit(&c->st.too_large, 1, memory_order_relaxed);
		break;
	case POP_WALK_RECORD:
	case POP_WALK_WINDOW_DONE:
		ASSERT(false);
	}
}

/* Walks ready windows in order until they are done or no batch has room. */
static void process(struct pw *p)
{
	while (!pop_failed(p->c)) {
		if (p->rec_ready && !place_record(p))
			return;
		struct rbuf *rb = &p->bufs[p->proc_window % 2];
		if (!p->in_window) {
			if (p->proc_window == p->read_window || rb->state != BUF_READY ||
			    rb->window != p->proc_window)
				return; /* the next window is not read yet */
			p->in_window = true;
			p->pf = &p->files[rb->file];
			pop_walk_window(&p->walk, (uint32_t)(p->proc_window - p->pf->first_window),
					p->w->read_buf[p->proc_window % 2], rb->len);
		}
		enum pop_walk_event ev = pop_walk_next(&p->walk);
		if (ev == POP_WALK_RECORD) {
			p->rec_ready = true;
		} else if (ev == POP_WALK_WINDOW_DONE) {
			rb->state = BUF_PROCESSED;
			p->in_window = false;
			p->proc_window++;
			rb->pend_hold = pop_walk_holds(&p->walk);
			buf_try_release(p, rb);
		} else {
			on_walk_problem(p, ev);
			if (!pop_walk_holds(&p->walk))
				pend_release(p);
		}
	}
}

/* ---- replies ------------------------------------------------------------------------- */

static void on_ns(struct pw *p, const struct mcp_meta_reply *rep)
{
	struct pbatch *b = batch_at(p, p->b_answered);
	if (!rep->has_opaque || rep->opaque < b->opaque_base ||
	    rep->opaque >= b->opaque_base + b->nrec) {
		pop_fail(p->c, MCW_EXIT_PROTOCOL,
			 "an NS from the destination names no request in flight (out of sync)");
		return;
	}
	b->present++;
}

static void on_batch_end(struct pw *p)
{
	struct pbatch *b = batch_at(p, p->b_answered);
	atomic_fetch_add_explicit(&p->c->st.records_sent, b->encoded_records, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->c->st.already_present, b->present, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->c->st.expired, b->expired, memory_order_relaxed);
	p->b_answered++;
	for (unsigned i = 0; i < 2; i++)
		buf_try_release(p, &p->bufs[i]);
}

static void parse_replies(struct pw *p)
{
	while (p->rd < p->wr && !pop_failed(p->c)) {
		struct mcp_meta_reply rep;
		const char *at = (const char *)p->rbuf + p->rd;
		enum mcp_status st = mcp_meta_reply_parse(at, p->wr - p->rd, 0, &rep);
		if (st == MCP_NEED_MORE)
			return;
		/* a batch answers from its first bytes on, even while the rest is being sent */
		bool sending = p->send_busy ||
			       (p->b_sent < p->b_alloc && batch_at(p, p->b_sent)->iov_done > 0);
		if (st != MCP_OK || p->b_answered == p->b_sent + (sending ? 1 : 0)) {
			pop_fail(p->c, MCW_EXIT_PROTOCOL,
				 "unexpected reply from the destination: "
				 "\"%.60s\"",
				 at);
			return;
		}
		switch (rep.code) {
		case MCP_RC_NS:
			on_ns(p, &rep);
			break;
		case MCP_RC_MN:
			on_batch_end(p);
			break;
		case MCP_RC_HD: /* stored (a server that ignores q) */
			break;
		case MCP_RC_SERVER_ERROR:
			pop_server_error(p->c, &rep, &p->errors_logged);
			break;
		default:
			pop_fail(p->c, MCW_EXIT_PROTOCOL,
				 "the destination refused a request: \"%.80s\" (please report it)",
				 at);
			return;
		}
		p->rd += rep.total_len;
	}
}

/* ---- the loop ------------------------------------------------------------------------ */

static void on_cqe(struct pw *p, const struct ur_cqe *c)
{
	uint64_t kind = UD_KIND(c->user_data);
	if (kind == UD_READ) {
		on_read(p, (unsigned)UD_X(c->user_data), c->res);
		return;
	}
	if (UD_GEN(c->user_data) != (p->gen & 0xffff)) { /* a dead connection's */
		ASSERT(p->stale > 0);
		p->stale--;
		return;
	}
	if (kind == UD_SEND) {
		on_send(p, c->res);
		return;
	}
	p->recv_posted = false;
	if (c->res <= 0) {
		connection_lost(p, c->res == 0 ? "closed by the server" : strerror(-c->res));
		return;
	}
	p->wr += (size_t)c->res;
	p->last_io_ms = now_ms();
	parse_replies(p);
}

static bool pump(struct pw *p)
{
	struct ur_cqe cqes[32];
	bool awaiting = p->b_answered < p->b_sent || p->send_busy;
	int timeout_ms = p->c->o.co.io_timeout_ms;
	if (p->wake_ns != 0) /* a rate-limited batch may go then */
		timeout_ms = (int)MAX(
		    1, MIN((p->wake_ns - mono_ns() + 999999) / 1000000, (int64_t)timeout_ms));
	int ret = ur_submit_wait(p->ring, 1, timeout_ms);
	if (ret == -ETIME) {
		if (awaiting && !p->lost && now_ms() - p->last_io_ms >= p->c->o.co.io_timeout_ms)
			connection_lost(p, "no reply within --io-timeout");
		return !pop_failed(p->c);
	}
	if (ret < 0) {
		pop_fail(p->c, MCW_EXIT_SOFTWARE, "io_uring wait failed: %s", strerror(-ret));
		return false;
	}
	unsigned n = ur_reap(p->ring, cqes, ARRAY_LEN(cqes));
	for (unsigned i = 0; i < n; i++)
		on_cqe(p, &cqes[i]);
	return !pop_failed(p->c);
}

/* ---- files --------------------------------------------------------------------------- */

/* Opens and checks a chunk file into slot. false: skipped (reported) or failed. */
static bool file_open(struct pw *p, int slot, const struct pop_task *t)
{
	struct pop_ctx *c = p->c;
	struct pfile *f = &p->files[slot];
	struct stat sb;
	memset(f, 0, sizeof(*f));
	f->job = t->job;
	f->part = t->part;
	f->crc = t->crc;
	chunk_name_final(f->name, t->job, t->part, t->crc);
	int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
	f->fd = openat(c->from_fd, f->name, flags | (c->o.direct ? O_DIRECT : 0));
	if (f->fd < 0 && errno == EINVAL)
		f->fd = openat(c->from_fd, f->name, flags);
	if (f->fd < 0 || fstat(f->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int e = f->fd < 0 || errno != 0 ? errno : EINVAL;
		if (e == EBADMSG || e == EUCLEAN || e == EIO)
			/* EBADMSG is ext4's metadata checksum error */
			log_warn("%s/%s: %s: a read-only view of a volume that is being written "
				 "can show metadata mid-update; skipped, looked at again next pass",
				 c->o.from_dir, f->name, strerror(e));
		else if (e != ENOENT) /* a file that vanished is looked for again next pass */
			log_warn("%s/%s: %s; skipped", c->o.from_dir, f->name,
				 f->fd < 0 ? strerror(e) : "not a regular file (refused)");
		if (e != ENOENT)
			atomic_fetch_add(&c->st.files_skipped, 1);
		if (f->fd >= 0)
			close(f->fd);
		return false;
	}
	struct chunk_header h;
	struct chunk_footer ft;
	ssize_t n = pread(f->fd, p->page, MCW_HEADER_BYTES, 0);
	enum chunk_status st = chunk_header_check(p->page, n < 0 ? 0 : (size_t)n, &h);
	if (st != CHUNK_OK || memcmp(h.f.dump_id, c->dump_id, 16) != 0 ||
	    h.f.block_bytes > p->w->read_bytes / 4) {
		log_warn("%s/%s: %s; skipped", c->o.from_dir, f->name,
			 st != CHUNK_OK
			     ? "header unreadable (not a chunk file, or damaged)"
			     : "belongs to another dump or has an unsupported block size");
		atomic_fetch_add(&c->st.files_skipped, 1);
		close(f->fd);
		return false;
	}
	uint64_t size = (uint64_t)sb.st_size;
	n = size >= 2 * MCW_ALIGN_BYTES
		? pread(f->fd, p->page, MCW_FOOTER_BYTES, (off_t)(size - MCW_FOOTER_BYTES))
		: 0;
	bool footer = chunk_footer_check(p->page, n < 0 ? 0 : (size_t)n, &ft) == CHUNK_OK &&
		      ft.f.file_bytes == size && memcmp(ft.f.dump_id, h.f.dump_id, 16) == 0;
	f->complete = footer && ft.f.file_crc == t->crc;
	if (!f->complete && !c->dump_finished) {
		/* still being written, or not yet wholly visible to a read-only mount: a
		 * file is applied only once it is whole (or once DONE says it never will be) */
		atomic_fetch_add(&c->st.files_not_whole, 1);
		close(f->fd);
		return false;
	}
	f->block_bytes = h.f.block_bytes;
	f->window_blocks = (uint32_t)(p->w->read_bytes / f->block_bytes);
	f->blocks_end = footer ? size - MCW_FOOTER_BYTES : size;
	/* the blocks are what the file holds, whatever the footer says */
	uint64_t region = f->blocks_end > MCW_HEADER_BYTES ? f->blocks_end - MCW_HEADER_BYTES : 0;
	uint64_t nblocks = (region + f->block_bytes - 1) / f->block_bytes;
	f->footer_records = footer ? ft.f.record_count : 0;
	if (size < MCW_HEADER_BYTES || nblocks > JOURNAL_BLOCKS_MAX) {
		log_warn("%s/%s: %llu blocks, more than %d: skipped", c->o.from_dir, f->name,
			 (unsigned long long)nblocks, JOURNAL_BLOCKS_MAX);
		atomic_fetch_add(&c->st.files_skipped, 1);
		close(f->fd);
		return false;
	}
	f->nblocks = (uint32_t)nblocks;
	f->nwindows = (f->nblocks + f->window_blocks - 1) / f->window_blocks;
	if (!f->complete)
		log_warn("%s/%s: %s: the dump is finished, so it stays damaged: applying its "
			 "good blocks",
			 c->o.from_dir, f->name,
			 footer ? "the name's checksum does not match the footer's"
				: "no valid footer (truncated, or damaged)");
	else if (ft.f.block_count != nblocks ||
		 (nblocks > 0 &&
		  region - (nblocks - 1) * f->block_bytes != ft.f.last_block_bytes)) {
		log_warn("%s/%s: the footer says %llu blocks (the last of %u bytes), the file "
			 "holds %llu: applying its good blocks as a damaged file",
			 c->o.from_dir, f->name, (unsigned long long)ft.f.block_count,
			 ft.f.last_block_bytes, (unsigned long long)nblocks);
		f->complete = false;
		atomic_fetch_add(&c->st.blocks_bad, 1);
	}
	struct pop_walk_file wf = {
		.block_bytes = f->block_bytes,
		.nblocks = f->nblocks,
		.window_blocks = f->window_blocks,
	};
	pthread_mutex_lock(&c->run.mu);
	const struct journal_entry *e = journal_find(&c->journal, f->job, f->part);
	wf.applied_before = e ? journal_applied(&c->journal, e) : NULL;
	wf.item_size_max = c->dst.item_size_max;
	wf.cas_enabled = c->dst.cas_enabled;
	pthread_mutex_unlock(&c->run.mu);
	pop_walk_begin(&p->walk, &wf);
	f->first_window = p->read_window;
	f->state = FILE_READING;
	return true;
}

/* Records the file in the journal: done if every block is applied and it is whole. */
static void file_finish(struct pw *p, struct pfile *f)
{
	struct pop_ctx *c = p->c;
	bool all = f->complete;
	for (uint32_t i = 0; i < f->nblocks; i++)
		all &= bitmap_get(f->good, i);
	pthread_mutex_lock(&c->run.mu);
	int ret = all ? journal_done(&c->journal, f->job, f->part, f->crc, f->records)
		      : journal_partial(&c->journal, f->job, f->part, f->crc, f->nblocks, f->good);
	c->progress++;
	pthread_mutex_unlock(&c->run.mu);
	if (ret < 0)
		pop_fail(c, MCW_EXIT_IO, "cannot update the journal %s: %s", c->journal.path,
			 strerror(-ret));
	atomic_fetch_add(all ? &c->st.files_done : &c->st.files_partial, 1);
	if (!all)
		log_warn("%s/%s: applied except %u damaged and %u missing block(s); a later pass "
			 "completes it once the file is repaired",
			 c->o.from_dir, f->name, f->bad, f->missing);
	close(f->fd);
	f->state = FILE_FREE;
}

static bool take_task(struct pop_ctx *c, struct pop_task *t, bool wait)
{
	pthread_mutex_lock(&c->run.mu);
	while (wait && !c->stop && !c->run.failed && c->qnext == c->qlen)
		pthread_cond_wait(&c->run.cv, &c->run.mu);
	bool got = !c->stop && !c->run.failed && c->qnext < c->qlen;
	if (got) {
		*t = c->queue[c->qnext++];
		c->busy++;
	}
	pthread_mutex_unlock(&c->run.mu);
	return got;
}

static void task_done(struct pop_ctx *c)
{
	pthread_mutex_lock(&c->run.mu);
	c->busy--;
	pthread_cond_broadcast(&c->run.cv);
	pthread_mutex_unlock(&c->run.mu);
}

/* The file being read is read and walked to its end: it finishes in the background. */
static void end_of_reading(struct pw *p)
{
	if (p->rf < 0)
		return;
	struct pfile *f = &p->files[p->rf];
	if (p->proc_window < f->first_window + f->nwindows || p->in_window || p->rec_ready)
		return;
	ASSERT(!pop_walk_holds(&p->walk));
	if (f->complete && f->bad + f->missing == 0 && p->walk.records_begun != f->footer_records) {
		log_warn("%s/%s: the footer counts %llu records, the blocks hold %u: applied "
			 "them, but the file is not what its writer wrote",
			 p->c->o.from_dir, f->name, (unsigned long long)f->footer_records,
			 p->walk.records_begun);
		f->complete = false;
		atomic_fetch_add(&p->c->st.blocks_bad, 1);
	}
	/* blocks applied by an earlier pass count as applied */
	const uint8_t *before = p->walk.f.applied_before;
	for (uint32_t i = 0; i < f->nblocks; i++)
		if (pop_walk_block_good(&p->walk, i) || (before && bitmap_get(before, i)))
			bitmap_set(f->good, i);
	batch_close(p); /* the next file's records start a new batch */
	f->state = FILE_FINISHING;
	p->rf = -1;
}

/* Journals every finishing file whose batches are all answered. */
static void finish_files(struct pw *p)
{
	for (unsigned i = 0; i < 2; i++) {
		struct pfile *f = &p->files[i];
		if (f->state == FILE_FINISHING &&
		    (!f->has_batches || p->b_answered > f->last_batch)) {
			file_finish(p, f);
			task_done(p->c);
		}
	}
}

static int free_slot(const struct pw *p)
{
	for (int i = 0; i < 2; i++)
		if (p->files[i].state == FILE_FREE)
			return i;
	return -1;
}

static bool idle(const struct pw *p)
{
	return free_slot(p) >= 0 && p->files[0].state == FILE_FREE &&
	       p->files[1].state == FILE_FREE && p->b_answered == p->b_alloc && !p->has_open;
}

/* Files overlap: the next one is read and sent while the last batches of the previous
 * one are still being answered, so the pipeline never drains between files. */
static void worker_loop(struct pw *p)
{
	struct pop_ctx *c = p->c;
	while (!pop_failed(c)) {
		int slot = free_slot(p);
		if (p->rf < 0 && slot >= 0) {
			struct pop_task t;
			bool wait = idle(p);
			if (take_task(c, &t, wait)) {
				if (file_open(p, slot, &t))
					p->rf = slot;
				else
					task_done(c);
				continue;
			}
			if (wait)
				return; /* stopped */
		}
		process(p);
		end_of_reading(p);
		finish_files(p);
		if (!p->rec_ready)
			batch_close(p); /* nothing more to add now: send what there is */
		schedule_reads(p);
		kick_send(p);
		post_recv(p);
		if (idle(p))
			continue;
		if (!pump(p) || !reconnect_if_lost(p))
			return;
	}
}

/* ---- thread -------------------------------------------------------------------------- */

static int worker_setup(struct pw *p, struct pop_worker *w)
{
	char name[16];
	snprintf(name, sizeof(name), "mcw-pop-%u", w->id);
	memset(p, 0, sizeof(*p));
	p->w = w;
	p->c = w->ctx;
	p->fd = w->fd;
	rate_bucket_init(&p->bucket, rate_limits_active(&p->c->limits) ? &p->c->limits : NULL);
	p->last_io_ms = now_ms();
	p->rbuf = w->recv_area;
	int ret = run_thread_setup(name, w->cpu, &p->ring);
	if (ret < 0)
		return ret;
	struct iovec iov[2] = { { w->read_buf[0], w->read_bytes },
				{ w->read_buf[1], w->read_bytes } };
	ret = ur_buffers_register(p->ring, iov, 2);
	if (ret < 0)
		return ret;
	/* carve the send area: the header/footer page, then the batches */
	p->page = w->send_area;
	p->rf = -1;
	uint8_t *m = w->send_area + MCW_ALIGN_BYTES;
	for (unsigned i = 0; i < POP_BATCHES_INFLIGHT; i++) {
		struct pbatch *b = &p->b[i];
		b->recs = (struct prec *)m;
		m += POP_BATCH_RECORDS * sizeof(struct prec);
		b->pieces = (struct iovec *)m;
		m += POP_BATCH_PIECES * sizeof(struct iovec);
		b->iov = (struct iovec *)m;
		m += (2 * POP_BATCH_RECORDS + POP_BATCH_PIECES + 1) * sizeof(struct iovec);
		b->hdr = (char *)m;
		m += POP_BATCH_HDR_BYTES;
	}
	ASSERT((size_t)(m - w->send_area) <= w->send_bytes);
	return 0;
}

size_t pop_send_area_bytes(void)
{
	return MCW_ALIGN_BYTES + /* the header/footer page */
	       POP_BATCHES_INFLIGHT *
		   (POP_BATCH_RECORDS * sizeof(struct prec) +
		    POP_BATCH_PIECES * sizeof(struct iovec) +
		    (2 * POP_BATCH_RECORDS + POP_BATCH_PIECES + 1) * sizeof(struct iovec) +
		    POP_BATCH_HDR_BYTES);
}

void *pop_worker_main(void *arg)
{
	struct pop_worker *w = arg;
	struct pop_ctx *c = w->ctx;
	static __thread struct pw p;
	int ret = worker_setup(&p, w);
	if (ret < 0)
		pop_fail(c, MCW_EXIT_SOFTWARE, "worker %u cannot start: %s", w->id, strerror(-ret));
	else
		worker_loop(&p);
	for (unsigned i = 0; i < 2; i++) { /* stopped by a failure midway */
		if (p.files[i].state != FILE_FREE) {
			close(p.files[i].fd);
			p.files[i].state = FILE_FREE;
			task_done(c);
		}
	}
	if (p.fd >= 0)
		close(p.fd);
	ur_ring_destroy(p.ring);
	run_thread_done(&c->run);
	return NULL;
}
