/*
 * populate_worker.c: a populate worker. One thread with its own io_uring, one connection
 * to the destination, two registered read buffers and a send area of batches.
 *
 * A file is read in windows (a read buffer's worth of whole blocks) with O_DIRECT
 * read_fixed, alternating between the two buffers so the next window is read while the
 * current one is being sent. From s3:// the same windows (and a chunk's header and footer
 * pages) come from ranged GETs made by the worker's fetch thread (populate_fetch.c), whose
 * answers wake the ring through an eventfd read kept queued in it: libcurl never blocks
 * this loop. Every block of a window is checked (crc32c, structure)
 * before anything in it is used; records come out of a resumable cursor (pop_walk) and go
 * into the ms pipe (mspipe: batches, encoding, replies, reconnect and resend), the values
 * lent to it as iovecs straight into the read buffer, never copied.
 *
 *   window: FREE --read--> READING --cqe--> READY --cursor--> PROCESSED --acks--> FREE
 *   file:   FREE --open--> [OPENING --header/footer fetched-->] READING
 *           --last window walked--> FINISHING --acks--> journal
 *
 * Two file slots: the next file is read and sent while the previous one's last batches
 * are still being answered, so the pipeline does not drain at file boundaries; window
 * numbers count on across files, so the two read buffers simply alternate.
 *
 * Invariants:
 *  1. A record goes into a batch only when all its pieces are in checked blocks.
 *  2. A read buffer is reused only when every batch that points into it is answered and
 *     no pending record (one that continues into the next window) points into it.
 *  3. A file is journaled only once every batch holding its records is answered.
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
#include "mspipe.h"
#include "populate_private.h"

#define UD_READ(which) ur_ud(UR_OWNER_FILE_READ, 0, (which)) /* the ms pipe tags its own */
#define UD_FETCH       ur_ud(UR_OWNER_FILE_READ, 1, 0)	     /* the fetch thread's eventfd */

enum buf_state { BUF_FREE, BUF_READING, BUF_READY, BUF_PROCESSED };

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

enum file_state { FILE_FREE, FILE_OPENING, FILE_READING, FILE_FINISHING };

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

/* The file slots and the two read windows. */
struct pop_reader {
	struct pfile files[2]; /* one being read and sent (rf), one finishing */
	int rf;		       /* slot being read, or -1 */
	struct pfile *pf;      /* the file of the window being processed */
	uint8_t *page;	       /* 4096 aligned bytes for the header */
	uint8_t *foot;	       /* and 4096 for the footer */
	struct rbuf bufs[2];
	uint64_t read_window, proc_window;
	bool in_window;
};

/* The record in assembly: the walk of the file being read, and its whole record that
 * waits for room in a batch. */
struct pop_pending {
	struct pop_walk walk;
	bool rec_ready;
};

struct pw {
	struct pop_worker *w;
	struct pop_ctx *c;
	struct ur_ring *ring;
	struct mspipe ms;
	struct pop_reader rd;
	struct pop_pending pend;
	struct pop_fetch fetch; /* from_s3 */
	uint64_t fetch_wake;	/* the eventfd read's target */
};

/* ---- connection ----------------------------------------------------------------------- */

static bool connect_dest(struct pw *p, int *fd_out)
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
				*fd_out = fd;
				return true;
			}
			net_close(fd);
		}
		if (mono_ns() + (int64_t)delay_ms * 1000000 > deadline || pop_failed(c)) {
			pop_fail(c, -EHOSTUNREACH,
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

/* The ms pipe's hooks: a new connection after a loss, the destination's clock and
 * whether it evicts (both refreshed on reconnects, under run.mu). */
static int reconnect_hook(void *arg)
{
	int fd = -1;
	return connect_dest(arg, &fd) ? fd : -1;
}

static int64_t dest_now_hook(void *arg)
{
	struct pop_ctx *c = ((struct pw *)arg)->c;
	pthread_mutex_lock(&c->run.mu);
	int64_t now = server_now_s(&c->dst);
	pthread_mutex_unlock(&c->run.mu);
	return now;
}

static bool dest_evicts_hook(void *arg)
{
	struct pop_ctx *c = ((struct pw *)arg)->c;
	pthread_mutex_lock(&c->run.mu);
	bool on = c->dst.evictions_on;
	pthread_mutex_unlock(&c->run.mu);
	return on;
}

/* ---- read buffers --------------------------------------------------------------------- */

static void buf_try_release(struct pw *p, struct rbuf *rb)
{
	if (rb->state == BUF_PROCESSED && !rb->pend_hold &&
	    (!rb->has_ref || mspipe_answered(&p->ms) > rb->last_batch))
		rb->state = BUF_FREE;
}

/* Queues the read of a window: an O_DIRECT read in the ring, or a ranged GET. */
static bool read_window(struct pw *p, const struct pfile *f, unsigned which, uint64_t off,
			size_t want)
{
	if (!p->c->o.from_s3) {
		size_t len = ROUND_UP(want, MCW_ALIGN_BYTES); /* a truncated file ends unaligned */
		return ur_prep_read_fixed(p->ring, f->fd, p->w->read_buf[which], len, off, which,
					  UD_READ(which)) == 0;
	}
	struct pop_fetch_req *r = pop_fetch_find(&p->fetch, POP_FETCH_FREE);
	if (r == NULL)
		return false;
	r->kind = POP_FETCH_RANGE;
	r->tag = which;
	pop_s3_key(&p->c->o, f->name, r->key);
	r->off = off;
	r->buf = p->w->read_buf[which];
	r->len = want;
	pop_fetch_move(&p->fetch, r, POP_FETCH_QUEUED);
	return true;
}

static void schedule_reads(struct pw *p)
{
	if (p->rd.rf < 0 || p->rd.files[p->rd.rf].state != FILE_READING)
		return;
	struct pfile *f = &p->rd.files[p->rd.rf];
	while (p->rd.read_window < f->first_window + f->nwindows) {
		unsigned which = (unsigned)(p->rd.read_window % 2);
		struct rbuf *rb = &p->rd.bufs[which];
		buf_try_release(p, rb);
		if (rb->state != BUF_FREE)
			return;
		uint64_t fw = p->rd.read_window - f->first_window;
		uint64_t off = MCW_HEADER_BYTES + fw * f->window_blocks * f->block_bytes;
		size_t want =
		    (size_t)MIN((uint64_t)f->window_blocks * f->block_bytes, f->blocks_end - off);
		if (!read_window(p, f, which, off, want))
			return;
		rb->state = BUF_READING;
		rb->want = want;
		rb->window = p->rd.read_window++;
		rb->file = (unsigned)p->rd.rf;
		rb->has_ref = rb->pend_hold = false;
	}
}

static void on_read(struct pw *p, unsigned which, int res)
{
	struct rbuf *rb = &p->rd.bufs[which];
	ASSERT(rb->state == BUF_READING);
	if (res < 0) {
		pop_fail(p->c, res, "cannot read %s/%s: %s", p->c->o.from_dir,
			 p->rd.files[rb->file].name, strerror(-res));
		return;
	}
	if ((size_t)res < rb->want) { /* the file shrank under us, or the device failed */
		pop_fail(p->c, -EIO,
			 "short read of %s/%s: %d of %zu bytes (the file changed while it was "
			 "read, or the device failed); run again",
			 p->c->o.from_dir, p->rd.files[rb->file].name, res, rb->want);
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
		if (p->rd.bufs[i].pend_hold) {
			p->rd.bufs[i].pend_hold = false;
			buf_try_release(p, &p->rd.bufs[i]);
		}
	}
}

/* Puts the whole record of the walk into the open batch; false if no batch has room. */
static bool place_record(struct pw *p)
{
	const struct pop_walk_record *wr = &p->pend.walk.rec;
	const struct mspipe_item it = {
		.key = wr->key,
		.key_len = wr->hdr.key_len,
		.key_b64 = (wr->hdr.flags & CHUNK_REC_F_BINARY_KEY) != 0,
		.client_flags = wr->hdr.client_flags,
		.value_len = wr->hdr.value_len,
		.expires_at_ms = wr->hdr.expires_at_ms,
		.pieces = wr->pieces,
		.npieces = wr->npieces,
	};
	int64_t n = mspipe_add(&p->ms, &it);
	if (n < 0)
		return false;
	struct pfile *f = p->rd.pf;
	f->records++;
	f->has_batches = true;
	f->last_batch = (uint64_t)n;
	atomic_fetch_add_explicit(&p->c->st.value_bytes, it.value_len, memory_order_relaxed);
	/* invariant 2: both windows the record touches now wait for this batch */
	for (uint64_t w = f->first_window + wr->window0; w <= p->rd.proc_window; w++) {
		struct rbuf *rb = &p->rd.bufs[w % 2];
		rb->has_ref = true;
		rb->last_batch = (uint64_t)n;
	}
	p->pend.rec_ready = false;
	pend_release(p);
	return true;
}

/* Counts and reports what the walk says of a block or record (not a record to send). */
static void on_walk_problem(struct pw *p, enum pop_walk_event ev)
{
	struct pop_ctx *c = p->c;
	struct pfile *f = p->rd.pf;
	const struct pop_walk *w = &p->pend.walk;
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
		if (p->pend.rec_ready && !place_record(p))
			return;
		struct rbuf *rb = &p->rd.bufs[p->rd.proc_window % 2];
		if (!p->rd.in_window) {
			if (p->rd.proc_window == p->rd.read_window || rb->state != BUF_READY ||
			    rb->window != p->rd.proc_window)
				return; /* the next window is not read yet */
			p->rd.in_window = true;
			p->rd.pf = &p->rd.files[rb->file];
			pop_walk_window(&p->pend.walk,
					(uint32_t)(p->rd.proc_window - p->rd.pf->first_window),
					p->w->read_buf[p->rd.proc_window % 2], rb->len);
		}
		enum pop_walk_event ev = pop_walk_next(&p->pend.walk);
		if (ev == POP_WALK_RECORD) {
			p->pend.rec_ready = true;
		} else if (ev == POP_WALK_WINDOW_DONE) {
			rb->state = BUF_PROCESSED;
			p->rd.in_window = false;
			p->rd.proc_window++;
			rb->pend_hold = pop_walk_holds(&p->pend.walk);
			buf_try_release(p, rb);
		} else {
			on_walk_problem(p, ev);
			if (!pop_walk_holds(&p->pend.walk))
				pend_release(p);
		}
	}
}

/* ---- the loop ------------------------------------------------------------------------ */

/* The pipe's counts into the run's stats, and its failure into the run's. */
static void flush_pipe(struct pw *p)
{
	struct pop_stats *st = &p->c->st;
	struct mspipe_counts n;
	mspipe_take_counts(&p->ms, &n);
	atomic_fetch_add_explicit(&st->records_sent, n.sent, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->already_present, n.present, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->expired, n.expired, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->server_errors, n.server_errors, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->reconnects, n.reconnects, memory_order_relaxed);
	if (p->ms.fault.err)
		pop_fail(p->c, p->ms.fault.err, "%s", p->ms.fault.msg);
}

static void on_fetched(struct pw *p, int res);

static void on_cqe(struct pw *p, const struct ur_cqe *c)
{
	if (mspipe_owns(&p->ms, c->user_data)) {
		mspipe_on_cqe(&p->ms, c);
		return;
	}
	ASSERT(ur_ud_owner(c->user_data) == UR_OWNER_FILE_READ);
	if (c->user_data == UD_FETCH)
		on_fetched(p, c->res);
	else
		on_read(p, (unsigned)(c->user_data & 0xf), c->res);
}

static bool pump(struct pw *p)
{
	struct ur_cqe cqes[32];
	int timeout_ms = p->c->o.co.io_timeout_ms;
	int64_t wake_ns = mspipe_wake_ns(&p->ms);
	if (wake_ns != 0) /* a rate-limited batch may go then */
		timeout_ms =
		    (int)MAX(1, MIN((wake_ns - mono_ns() + 999999) / 1000000, (int64_t)timeout_ms));
	int ret = ur_submit_wait(p->ring, 1, timeout_ms);
	if (ret == -ETIME) {
		mspipe_check_silence(&p->ms, mono_ns());
	} else if (ret < 0) {
		pop_fail(p->c, -MCW_EBUG, "io_uring wait failed: %s", strerror(-ret));
		return false;
	} else {
		unsigned n = ur_reap(p->ring, cqes, ARRAY_LEN(cqes));
		for (unsigned i = 0; i < n; i++)
			on_cqe(p, &cqes[i]);
	}
	flush_pipe(p);
	return !pop_failed(p->c);
}

/* ---- files --------------------------------------------------------------------------- */

/* A file skipped at its opening (reported by the caller). */
static bool file_skip(struct pfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->state = FILE_FREE;
	return false;
}

/* Checks a chunk file (size bytes) whose header was checked (st, h) and whose footer page
 * is read (foot_n bytes into foot), and starts its walk. false: skipped (reported). */
static bool file_check(struct pw *p, struct pfile *f, uint64_t size, enum chunk_status st,
		       const struct chunk_header *h, size_t foot_n)
{
	struct pop_ctx *c = p->c;
	struct chunk_footer ft;
	if (st != CHUNK_OK || memcmp(h->f.dump_id, c->dump_id, 16) != 0 ||
	    h->f.block_bytes > p->w->read_bytes / 4) {
		log_warn("%s/%s: %s; skipped", c->o.from_dir, f->name,
			 st != CHUNK_OK
			     ? "header unreadable (not a chunk file, or damaged)"
			     : "belongs to another dump or has an unsupported block size");
		atomic_fetch_add(&c->st.files_skipped, 1);
		return file_skip(f);
	}
	bool footer = chunk_footer_check(p->rd.foot, foot_n, &ft) == CHUNK_OK &&
		      ft.f.file_bytes == size && memcmp(ft.f.dump_id, h->f.dump_id, 16) == 0;
	f->complete = footer && ft.f.file_crc == f->crc;
	if (!f->complete && !c->dump_finished) {
		/* still being written, or not yet wholly visible to a read-only mount: a
		 * file is applied only once it is whole (or once DONE says it never will be) */
		atomic_fetch_add(&c->st.files_not_whole, 1);
		return file_skip(f);
	}
	f->block_bytes = h->f.block_bytes;
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
		return file_skip(f);
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
	pop_walk_begin(&p->pend.walk, &wf);
	f->first_window = p->rd.read_window;
	f->state = FILE_READING;
	return true;
}

/* A slot for the task's file. */
static struct pfile *file_init(struct pw *p, int slot, const struct pop_task *t)
{
	struct pfile *f = &p->rd.files[slot];
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->job = t->job;
	f->part = t->part;
	f->crc = t->crc;
	chunk_name_final(f->name, t->job, t->part, t->crc);
	return f;
}

/* Opens a chunk file of the directory into slot, reads its header and footer and checks
 * it. false: skipped (reported). */
static bool file_open_dir(struct pw *p, int slot, const struct pop_task *t)
{
	struct pop_ctx *c = p->c;
	struct pfile *f = file_init(p, slot, t);
	struct stat sb;
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
		return file_skip(f);
	}
	uint64_t size = (uint64_t)sb.st_size;
	struct chunk_header h;
	ssize_t n = pread(f->fd, p->rd.page, MCW_HEADER_BYTES, 0);
	enum chunk_status st = chunk_header_check(p->rd.page, n < 0 ? 0 : (size_t)n, &h);
	/* on a volume the footer is read into the same page, after the header's check */
	n = size >= 2 * MCW_ALIGN_BYTES
		? pread(f->fd, p->rd.foot, MCW_FOOTER_BYTES, (off_t)(size - MCW_FOOTER_BYTES))
		: 0;
	return file_check(p, f, size, st, &h, n < 0 ? 0 : (size_t)n);
}

/* Asks the fetch thread for the size and the header and footer pages of a chunk object;
 * the file is OPENING until the answer (on_answer). Always true. */
static bool file_open_s3(struct pw *p, int slot, const struct pop_task *t)
{
	struct pfile *f = file_init(p, slot, t);
	struct pop_fetch_req *r = pop_fetch_find(&p->fetch, POP_FETCH_FREE);
	ASSERT(r != NULL); /* one file opens at a time, and its reads wait for it */
	r->kind = POP_FETCH_ENDS;
	r->tag = (unsigned)slot;
	pop_s3_key(&p->c->o, f->name, r->key);
	r->buf = p->rd.page;
	r->foot = p->rd.foot;
	pop_fetch_move(&p->fetch, r, POP_FETCH_QUEUED);
	f->state = FILE_OPENING;
	return true;
}

static bool file_open(struct pw *p, int slot, const struct pop_task *t)
{
	return p->c->o.from_s3 ? file_open_s3(p, slot, t) : file_open_dir(p, slot, t);
}

static void task_done(struct pop_ctx *c);

/* The fetch thread's eventfd read stays queued in the ring while the worker runs. */
static bool arm_fetch_wake(struct pw *p)
{
	if (ur_prep_read(p->ring, p->fetch.efd, &p->fetch_wake, sizeof(p->fetch_wake), 0,
			 UD_FETCH) == 0)
		return true;
	pop_fail(p->c, -MCW_EBUG, "worker %u: cannot queue the fetch thread's wake-up", p->w->id);
	return false;
}

/* One answer of the fetch thread: a window (as a file read's completion), or a chunk's
 * header and footer (its check, then its walk). */
static void on_answer(struct pw *p, const struct pop_fetch_req *r)
{
	struct pop_ctx *c = p->c;
	struct pfile *f =
	    &p->rd.files[r->kind == POP_FETCH_ENDS ? r->tag : p->rd.bufs[r->tag].file];
	if (r->res < 0 && !(r->kind == POP_FETCH_ENDS && r->cls == OBJS_ERR_NO_KEY)) {
		pop_fail(c, r->cls != OBJS_OK ? mcw_store_cause(r->cls) : (int)r->res,
			 "cannot read %s/%s: %s", c->o.from_dir, f->name, r->err);
		return;
	}
	if (r->kind == POP_FETCH_RANGE) {
		on_read(p, r->tag, (int)r->res);
		return;
	}
	ASSERT(f->state == FILE_OPENING && p->rd.rf == (int)r->tag);
	/* a chunk deleted since the listing is looked for again next pass */
	struct chunk_header h;
	enum chunk_status st = chunk_header_check(p->rd.page, r->res < 0 ? 0 : (size_t)r->res, &h);
	if (r->res < 0 || !file_check(p, f, r->size, st, &h, (size_t)r->res2)) {
		file_skip(f);
		p->rd.rf = -1;
		task_done(c);
	}
}

static void on_fetched(struct pw *p, int res)
{
	if (res < 0) {
		pop_fail(p->c, -MCW_EBUG, "worker %u: fetch thread wake-up: %s", p->w->id,
			 strerror(-res));
		return;
	}
	struct pop_fetch_req *r;
	while (!pop_failed(p->c) && (r = pop_fetch_find(&p->fetch, POP_FETCH_DONE)) != NULL) {
		on_answer(p, r);
		pop_fetch_move(&p->fetch, r, POP_FETCH_FREE);
	}
	arm_fetch_wake(p);
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
	if (all && c->backlog > 0)
		c->backlog--;
	pthread_mutex_unlock(&c->run.mu);
	if (ret < 0)
		pop_fail(c, ret, "cannot update the journal %s: %s", c->journal.path,
			 strerror(-ret));
	atomic_fetch_add(all ? &c->st.files_done : &c->st.files_partial, 1);
	if (!all)
		log_warn("%s/%s: applied except %u damaged and %u missing block(s); a later pass "
			 "completes it once the file is repaired",
			 c->o.from_dir, f->name, f->bad, f->missing);
	file_skip(f); /* closes it */
}

static bool take_task(struct pop_ctx *c, struct pop_task *t, bool wait)
{
	pthread_mutex_lock(&c->run.mu);
	while (wait && !c->stop && !c->run.fault.err && c->qnext == c->qlen)
		pthread_cond_wait(&c->run.cv, &c->run.mu);
	bool got = !c->stop && !c->run.fault.err && c->qnext < c->qlen;
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
	if (p->rd.rf < 0 || p->rd.files[p->rd.rf].state != FILE_READING)
		return;
	struct pfile *f = &p->rd.files[p->rd.rf];
	if (p->rd.proc_window < f->first_window + f->nwindows || p->rd.in_window ||
	    p->pend.rec_ready)
		return;
	ASSERT(!pop_walk_holds(&p->pend.walk));
	if (f->complete && f->bad + f->missing == 0 &&
	    p->pend.walk.records_begun != f->footer_records) {
		log_warn("%s/%s: the footer counts %llu records, the blocks hold %u: applied "
			 "them, but the file is not what its writer wrote",
			 p->c->o.from_dir, f->name, (unsigned long long)f->footer_records,
			 p->pend.walk.records_begun);
		f->complete = false;
		atomic_fetch_add(&p->c->st.blocks_bad, 1);
	}
	/* blocks applied by an earlier pass count as applied */
	const uint8_t *before = p->pend.walk.f.applied_before;
	for (uint32_t i = 0; i < f->nblocks; i++)
		if (pop_walk_block_good(&p->pend.walk, i) || (before && bitmap_get(before, i)))
			bitmap_set(f->good, i);
	mspipe_close(&p->ms); /* the next file's records start a new batch */
	f->state = FILE_FINISHING;
	p->rd.rf = -1;
}

/* Journals every finishing file whose batches are all answered. */
static void finish_files(struct pw *p)
{
	for (unsigned i = 0; i < 2; i++) {
		struct pfile *f = &p->rd.files[i];
		if (f->state == FILE_FINISHING &&
		    (!f->has_batches || mspipe_answered(&p->ms) > f->last_batch)) {
			file_finish(p, f);
			task_done(p->c);
		}
	}
}

static int free_slot(const struct pw *p)
{
	for (int i = 0; i < 2; i++)
		if (p->rd.files[i].state == FILE_FREE)
			return i;
	return -1;
}

static bool idle(const struct pw *p)
{
	return free_slot(p) >= 0 && p->rd.files[0].state == FILE_FREE &&
	       p->rd.files[1].state == FILE_FREE && mspipe_idle(&p->ms);
}

/* Files overlap: the next one is read and sent while the last batches of the previous
 * one are still being answered, so the pipeline never drains between files. */
static void worker_loop(struct pw *p)
{
	struct pop_ctx *c = p->c;
	while (!pop_failed(c)) {
		int slot = free_slot(p);
		if (p->rd.rf < 0 && slot >= 0) {
			struct pop_task t;
			bool wait = idle(p);
			if (take_task(c, &t, wait)) {
				if (file_open(p, slot, &t))
					p->rd.rf = slot;
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
		if (!p->pend.rec_ready)
			mspipe_close(&p->ms); /* nothing more to add now: send what there is */
		schedule_reads(p);
		mspipe_kick(&p->ms);
		if (idle(p))
			continue;
		if (!pump(p))
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
	int ret = run_thread_setup(name, w->cpu, p->c->o.co.nice, &p->ring);
	if (ret < 0)
		return ret;
	struct iovec iov[2] = { { w->read_buf[0], w->read_bytes },
				{ w->read_buf[1], w->read_bytes } };
	ret = ur_buffers_register(p->ring, iov, 2);
	if (ret < 0)
		return ret;
	/* the send area: the header/footer page, then the pipe's batches; from a store the
	 * header and the footer are fetched at once, the footer into the fetch area's page */
	p->rd.page = w->send_area;
	p->rd.foot = p->c->o.from_s3 ? w->fetch_scratch : w->send_area;
	p->rd.rf = -1;
	p->fetch.efd = -1;
	if (p->c->o.from_s3) {
		ret =
		    pop_fetch_start(&p->fetch, &p->c->s3cfg, p->c->o.url.bucket,
				    w->fetch_scratch + MCW_ALIGN_BYTES, POP_S3_FETCH_SCRATCH_BYTES);
		if (ret < 0)
			return ret;
	}
	const struct mspipe_opts mo = {
		.ring = p->ring,
		.fd = w->fd,
		.id = 0,
		.what = p->c->o.dest.text,
		.area = w->send_area + MCW_ALIGN_BYTES,
		.area_bytes = w->send_bytes - MCW_ALIGN_BYTES,
		.batches = POP_BATCHES_INFLIGHT,
		.batch_records = POP_BATCH_RECORDS,
		.batch_pieces = POP_BATCH_PIECES,
		.recv_area = w->recv_area,
		.recv_bytes = w->recv_bytes,
		.mode = p->c->o.mode,
		.min_ttl_s = p->c->o.min_ttl_s,
		.io_timeout_ms = p->c->o.co.io_timeout_ms,
		.errors_logged_max = MCW_SERVER_ERRORS_LOGGED_MAX,
		.dest_now_s = dest_now_hook,
		.dest_evicts = dest_evicts_hook,
		.reconnect = reconnect_hook,
		.arg = p,
		.oom_answers = &p->c->st.out_of_memory,
		.limits = rate_limits_active(&p->c->limits) ? &p->c->limits : NULL,
	};
	mspipe_init(&p->ms, &mo);
	if (p->c->o.from_s3 && !arm_fetch_wake(p))
		return -EBUSY;
	return 0;
}

size_t pop_send_area_bytes(void)
{
	static_assert(MCW_HEADER_BYTES <= MCW_ALIGN_BYTES && MCW_FOOTER_BYTES <= MCW_ALIGN_BYTES,
		      "the header and the footer each fit a page");
	return MCW_ALIGN_BYTES + /* the header/footer page */
	       mspipe_area_bytes(POP_BATCHES_INFLIGHT, POP_BATCH_RECORDS, POP_BATCH_PIECES, 0);
}

void *pop_worker_main(void *arg)
{
	struct pop_worker *w = arg;
	struct pop_ctx *c = w->ctx;
	static __thread struct pw p;
	int ret = worker_setup(&p, w);
	if (ret < 0)
		pop_fail(c, -MCW_EBUG, "worker %u cannot start: %s", w->id, strerror(-ret));
	else
		worker_loop(&p);
	/* the fetch thread writes into our buffers until it is stopped */
	pop_fetch_stop(&p.fetch);
	for (unsigned i = 0; i < 2; i++) { /* stopped by a failure midway */
		if (p.rd.files[i].state != FILE_FREE) {
			file_skip(&p.rd.files[i]);
			task_done(c);
		}
	}
	if (p.ms.o.fd >= 0)
		net_close(p.ms.o.fd);
	ur_ring_destroy(p.ring);
	run_thread_done(&c->run);
	return NULL;
}
