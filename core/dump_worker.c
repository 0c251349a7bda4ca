/*
 * dump_worker.c: a value worker. One thread, pinned, with its own io_uring, its own
 * connection to the source (an mgpipe) and its two budget buffers:
 *
 *   net  = [ send slot 0 | ... | send slot D-1 | receive area ]   (lent to the mgpipe)
 *   disk = [ key offsets | key chunk input | writer staging ]
 *
 * A job is one key chunk: the pipe fetches its values with pipelined mg (mgpipe.c), every
 * value becomes a record for the chunk writer, misses are counted by the pipe. A reply is
 * consumed only once the writer accepted its record; when the writer is full the reply
 * stays where it is and is taken again after a write completes (j->blocked).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "dump_private.h"
#include "keyspool.h"
#include "mcw_limits.h"
#include "mgpipe.h"

struct wjob {
	struct dump_worker *w;
	struct dump_ctx *c;
	struct mgpipe pipe;
	struct keychunk_view kv;
	uint32_t *key_off;
	unsigned group;	    /* output group of the job's keys */
	int64_t last_io_ns; /* the last completion: silence is measured from it */
	bool blocked;	    /* the writer had no room for the reply at the front */
};

static void job_fail(struct wjob *j, int code, const char *what)
{
	dump_fail(j->c, code, "worker %u, key chunk %u: %s", j->w->id, j->kv.seq, what);
}

/* 0: consumed; -EAGAIN: the writer is full, keep the reply; other: failed. */
static int on_value(struct wjob *j, const struct mcp_meta_reply *rep, uint32_t index)
{
	uint16_t klen;
	uint8_t kflags;
	const uint8_t *key = mgpipe_key(&j->pipe, index, &klen, &kflags);
	if (rep->ttl >= 0 && rep->ttl < j->c->o.min_ttl_s) {
		atomic_fetch_add_explicit(&j->c->st.ttl_filtered, 1, memory_order_relaxed);
		return 0; /* present, deliberately not kept: not a miss */
	}
	struct chunk_rec rec = {
		.key = key,
		.key_len = klen,
		.flags = rep->key_b64 ? CHUNK_REC_F_BINARY_KEY : 0, /* as the source stores it */
		.client_flags = rep->client_flags,
		.expires_at_ms = rep->ttl < 0 ? 0 : j->pipe.recv_ms + rep->ttl * 1000,
		.value = (const uint8_t *)rep->value,
		.value_len = (uint32_t)rep->value_len,
	};
	int ret = chunk_writer_add(&j->w->cw, &rec);
	if (ret == -EAGAIN)
		return ret; /* nothing about this reply is recorded yet */
	if (ret < 0) {
		dump_fail(j->c, MCW_EXIT_IO, "%s", j->w->cw.error_msg);
		return ret;
	}
	atomic_fetch_add_explicit(&j->c->st.items, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->c->st.group_items[j->group], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->c->st.value_bytes, rep->value_len, memory_order_relaxed);
	return 0;
}

/* Hands every complete reply to the writer until one does not fit. */
static void take_replies(struct wjob *j)
{
	struct mcp_meta_reply rep;
	uint32_t index;
	enum mgpipe_next n;
	while (!j->blocked && (n = mgpipe_next(&j->pipe, &rep, &index)) == MGPIPE_VALUE) {
		int ret = on_value(j, &rep, index);
		if (ret == -EAGAIN)
			j->blocked = true;
		else if (ret < 0)
			return;
		else
			mgpipe_consume(&j->pipe, &rep);
	}
	if (j->pipe.exit_code)
		job_fail(j, j->pipe.exit_code, j->pipe.error);
}

static void flush_counts(struct wjob *j)
{
	struct mgpipe *p = &j->pipe;
	atomic_fetch_add_explicit(&j->c->st.keys_fetched, p->fetched, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->c->st.misses, p->misses, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->c->st.server_errors, p->server_errors, memory_order_relaxed);
	p->fetched = p->misses = p->server_errors = p->values = 0;
}

static void on_cqe(struct wjob *j, const struct ur_cqe *cqe)
{
	if (chunk_writer_owns(cqe->user_data)) {
		if (chunk_writer_complete(&j->w->cw, cqe) < 0)
			dump_fail(j->c, MCW_EXIT_IO, "%s", j->w->cw.error_msg);
		j->blocked = false;
		return;
	}
	ASSERT(mgpipe_owns(&j->pipe, cqe->user_data));
	mgpipe_on_cqe(&j->pipe, cqe);
	if (j->pipe.exit_code)
		job_fail(j, j->pipe.exit_code, j->pipe.error);
}

/* Waits for and handles completions (or until the rate limit lets the next batch go).
 * false when the dump has failed. */
static bool pump(struct wjob *j, bool expecting_server)
{
	struct ur_cqe cqes[MCW_RING_ENTRIES];
	int timeout_ms = engine_wait_ms(j->c, mgpipe_wake_ns(&j->pipe));
	int ret = ur_submit_wait(j->w->ring, 1, timeout_ms);
	if (ret == -ETIME) {
		if (expecting_server &&
		    mono_ns() - j->last_io_ns >= (int64_t)j->c->o.co.io_timeout_ms * 1000000) {
			char msg[160];
			snprintf(msg, sizeof(msg), "no reply from the source for %d s",
				 j->c->o.co.io_timeout_ms / 1000);
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
	if (n > 0)
		j->last_io_ns = mono_ns();
	for (unsigned i = 0; i < n; i++)
		on_cqe(j, &cqes[i]);
	return !dump_failed(j->c);
}

int engine_wait_ms(const struct dump_ctx *c, int64_t wake_ns)
{
	int timeout_ms = c->o.co.io_timeout_ms;
	if (wake_ns == 0)
		return timeout_ms;
	int64_t ms = (wake_ns - mono_ns() + 999999) / 1000000;
	return (int)MAX(1, MIN(ms, (int64_t)timeout_ms));
}

bool engine_load_keys(struct dump_ctx *c, struct dump_worker *w, uint32_t seq,
		      struct keychunk_view *kv, uint32_t **key_off, uint32_t *nkeys)
{
	size_t off_bytes = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES);
	char err[256];
	*key_off = (uint32_t *)w->disk_buf;
	if (keychunk_load(c->spool_fd, seq, c->id.dump_id, w->disk_buf + off_bytes,
			  MCW_KEYCHUNK_BYTES, kv, err, sizeof(err)) < 0) {
		dump_fail(c, MCW_EXIT_IO, "%s", err);
		return false;
	}
	uint32_t pos = 0, n = 0;
	const uint8_t *key;
	uint16_t klen;
	uint8_t flags;
	for (uint32_t at = 0; keychunk_next(kv, &pos, &key, &klen, &flags); at = pos)
		(*key_off)[n++] = at;
	*nkeys = n;
	return true;
}

static bool load_keys(struct wjob *j, uint32_t seq)
{
	uint32_t n;
	if (!engine_load_keys(j->c, j->w, seq, &j->kv, &j->key_off, &n))
		return false;
	mgpipe_job(&j->pipe, &j->kv, j->key_off, n);
	return true;
}

static void run_job(struct wjob *j, uint32_t seq)
{
	if (!load_keys(j, seq))
		return;
	unsigned g = j->kv.group;
	if (g >= j->c->kf.ngroups) {
		job_fail(j, MCW_EXIT_SOFTWARE,
			 "the key chunk names an output group that does not "
			 "exist");
		return;
	}
	j->group = g;
	j->last_io_ns = mono_ns();
	chunk_writer_set_dir(&j->w->cw, j->c->group_fd[g], j->c->group_path[g]);
	if (chunk_writer_begin(&j->w->cw, seq) < 0)
		return;
	for (;;) {
		/* replies first: an MN frees a batch slot that mgpipe_kick can use right away */
		take_replies(j);
		if (dump_failed(j->c))
			return;
		mgpipe_kick(&j->pipe);
		if (mgpipe_done(&j->pipe) && !j->pipe.send_busy)
			break;
		if (!pump(j, mgpipe_awaiting(&j->pipe)))
			return;
	}
	flush_counts(j);
	int end = chunk_writer_end(&j->w->cw);
	if (end < 0)
		dump_fail(j->c, MCW_EXIT_IO, "%s", j->w->cw.error_msg);
	else if (end == 1) /* no file: complete now */
		engine_job_done(j->c, seq);
	atomic_fetch_add(&j->c->st.jobs_done, 1);
}

/* ---- thread --------------------------------------------------------------------------- */

static void on_file_done(void *arg, const struct chunk_file_done *d)
{
	struct dump_ctx *c = arg;
	atomic_fetch_add(&c->st.files, 1);
	atomic_fetch_add(&c->st.file_bytes, d->file_bytes);
	if (d->job_end)
		engine_job_done(c, d->job);
}

void engine_job_done(struct dump_ctx *c, uint32_t job)
{
	if (!c->ckpt_on)
		return;
	int ret = checkpoint_job_done(&c->ckpt, job);
	if (ret < 0)
		dump_fail(c, MCW_EXIT_IO, "cannot write the checkpoint in %s: %s", c->spool_path,
			  strerror(-ret));
}

int64_t engine_take_job(struct dump_ctx *c, bool wait)
{
	int64_t job = -1;
	pthread_mutex_lock(&c->run.mu);
	for (;;) {
		/* a resumed dump skips the jobs an earlier run finished */
		while (c->resuming && c->next_job < c->chunks_ready &&
		       checkpoint_job_is_done(&c->ckpt, c->next_job))
			c->next_job++;
		if (!wait || c->run.failed || c->next_job < c->chunks_ready || c->keys_done)
			break;
		pthread_cond_wait(&c->run.cv, &c->run.mu);
	}
	if (!c->run.failed && c->next_job < c->chunks_ready)
		job = c->next_job++;
	else if (!wait && !c->run.failed && !c->keys_done)
		job = -2; /* none yet, more to come */
	pthread_mutex_unlock(&c->run.mu);
	return job;
}

/* writev mode: the receive area is referenced until the writer's writes complete. */
static bool recv_reusable(void *arg)
{
	struct chunk_writer *cw = arg;
	if (!chunk_writer_holds_refs(cw))
		return true;
	chunk_writer_flush(cw);
	return false;
}

static int worker_setup(struct dump_worker *w, struct wjob *j)
{
	struct dump_ctx *c = w->ctx;
	char name[16];
	snprintf(name, sizeof(name), "mcw-worker-%u", w->id);
	int ret = run_thread_setup(name, w->cpu, &w->ring);
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
	struct mgpipe_opts po = {
		.ring = w->ring,
		.fd = w->fd,
		.id = 0,
		.what = "the source",
		.send_area = w->net_buf,
		.send_bytes = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES,
		.recv_area = w->net_buf + MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES,
		.recv_bytes = w->net_bytes - MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES,
		.quiet = true,
		.value_max = c->src.item_size_max,
		.recv_reusable = recv_reusable,
		.arg = &w->cw,
		.limits = rate_limits_active(&c->limits) ? &c->limits : NULL,
	};
	mgpipe_init(&j->pipe, &po);
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
		int64_t job = engine_take_job(c, false);
		if (job == -2) {
			/* nothing to fetch yet: finish background file work, then sleep */
			while (!chunk_writer_idle(&w->cw) && pump(&j, false))
				;
			job = engine_take_job(c, true);
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
	net_close(w->fd);
	w->fd = -1;
	run_thread_done(&c->run);
	return NULL;
}
