/*
 * engine_worker.c: a value worker of the engine and the job queue it takes from. One
 * thread, pinned, with its own io_uring, its own connection to the source (an mgpipe)
 * and its slices of two budget buffers (engine.h: struct engine_layout).
 *
 * A job is one key chunk: the pipe fetches its values with pipelined mg (mgpipe.c) and
 * hands every reply to the sink (on_value). A reply is consumed only once the sink took
 * it; when the sink has no room (-EAGAIN) the reply stays where it is and is offered again
 * after one of the sink's own completions (w->blocked). The job ends when the source side
 * is done and the sink says its last item is through (job_idle).
 *
 *   take job -> load keys -> job_begin -> [ replies -> on_value | kicks | wait, reap ]*
 *            -> job_end -> take job ... -> (no job left) finish sink background work
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "engine.h"
#include "mcw_limits.h"

/* ---- the job queue ---------------------------------------------------------------------- */

int64_t engine_take_job(struct engine *e, bool wait)
{
	int64_t job = -1;
	pthread_mutex_lock(&e->run.mu);
	for (;;) {
		/* a resumed run skips the jobs an earlier run finished */
		while (e->resuming && e->next_job < e->chunks_ready &&
		       checkpoint_job_is_done(&e->ckpt, e->next_job))
			e->next_job++;
		if (!wait || e->run.fault.err || e->next_job < e->chunks_ready || e->keys_done)
			break;
		pthread_cond_wait(&e->run.cv, &e->run.mu);
	}
	if (!e->run.fault.err && e->next_job < e->chunks_ready)
		job = e->next_job++;
	else if (!wait && !e->run.fault.err && !e->keys_done)
		job = -2; /* none yet, more to come */
	pthread_mutex_unlock(&e->run.mu);
	return job;
}

void engine_job_done(struct engine *e, uint32_t job)
{
	if (!e->ckpt_on)
		return;
	int ret = checkpoint_job_done(&e->ckpt, job);
	if (ret < 0)
		engine_fail(e, ret, "cannot write the checkpoint in %s: %s", e->spool_path,
			    strerror(-ret));
}

int engine_wait_ms(const struct engine *e, int64_t wake_ns)
{
	int timeout_ms = e->o.co.io_timeout_ms;
	if (wake_ns == 0)
		return timeout_ms;
	int64_t ms = (wake_ns - mono_ns() + 999999) / 1000000;
	return (int)MAX(1, MIN(ms, (int64_t)timeout_ms));
}

bool engine_load_keys(struct engine *e, struct engine_worker *w, uint32_t seq,
		      struct keychunk_view *kv, uint32_t *nkeys)
{
	char err[256];
	if (keychunk_load(e->spool_fd, seq, e->id.dump_id, w->key_in, MCW_KEYCHUNK_BYTES, kv, err,
			  sizeof(err)) < 0) {
		engine_fail(e, -EIO, "%s", err); /* our own spool: a local I/O error */
		return false;
	}
	uint32_t pos = 0, n = 0;
	const uint8_t *key;
	uint16_t klen;
	uint8_t flags;
	for (uint32_t at = 0; keychunk_next(kv, &pos, &key, &klen, &flags); at = pos)
		w->key_off[n++] = at;
	*nkeys = n;
	return true;
}

/* ---- one job ------------------------------------------------------------------------------ */

static void job_fail(struct engine_worker *w, int err, const char *what)
{
	engine_fail(w->e, err, "worker %u, key chunk %u: %s", w->id, w->kv.seq, what);
}

static void check_pipe(struct engine_worker *w)
{
	if (w->pipe.fault.err)
		job_fail(w, w->pipe.fault.err, w->pipe.fault.msg);
}

/* Hands every complete reply to the sink until it keeps one. */
static void take_replies(struct engine_worker *w)
{
	const struct engine_sink_ops *s = w->e->sink;
	struct mcp_meta_reply rep;
	uint32_t index;
	enum mgpipe_next n;
	while (!w->blocked &&
	       ((n = mgpipe_next(&w->pipe, &rep, &index)) == MGPIPE_VALUE || n == MGPIPE_MISS)) {
		int ret = s->on_value(w, n, &rep, index);
		if (ret == -EAGAIN)
			w->blocked = true;
		else if (ret < 0)
			return;
		else
			mgpipe_consume(&w->pipe, &rep);
	}
	check_pipe(w);
}

/* The pipe's counts since the last call, into the shared stats. */
static void flush_counts(struct engine_worker *w)
{
	struct mgpipe *p = &w->pipe;
	struct engine_stats *st = &w->e->st;
	atomic_fetch_add_explicit(&st->keys_fetched, p->fetched, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->misses, p->misses, memory_order_relaxed);
	atomic_fetch_add_explicit(&st->server_errors, p->server_errors, memory_order_relaxed);
	p->fetched = p->misses = p->server_errors = p->values = 0;
}

static void on_cqe(struct engine_worker *w, const struct ur_cqe *cqe)
{
	if (mgpipe_owns(&w->pipe, cqe->user_data)) {
		mgpipe_on_cqe(&w->pipe, cqe);
		check_pipe(w);
		return;
	}
	ASSERT(w->e->sink->on_cqe != NULL);
	w->e->sink->on_cqe(w, cqe);
	w->blocked = false; /* the sink may have room now */
}

static int64_t wake_ns(struct engine_worker *w)
{
	int64_t ws = mgpipe_wake_ns(&w->pipe);
	int64_t wd = w->e->sink->wake_ns ? w->e->sink->wake_ns(w) : 0;
	return ws && wd ? MIN(ws, wd) : MAX(ws, wd);
}

/* Waits for and handles completions (or until the rate limit lets the next batch go).
 * false when the run has failed. */
static bool pump(struct engine_worker *w, bool expecting_server)
{
	struct engine *e = w->e;
	struct ur_cqe cqes[MCW_RING_ENTRIES];
	int ret = ur_submit_wait_gather(w->ring, MCW_GATHER_CQES, MCW_GATHER_US,
					engine_wait_ms(e, wake_ns(w)));
	if (ret == -ETIME) {
		if (expecting_server &&
		    mono_ns() - w->last_io_ns >= (int64_t)e->o.co.io_timeout_ms * 1000000) {
			char msg[160];
			bool src = mgpipe_awaiting(&w->pipe) || e->sink->peer == NULL;
			snprintf(msg, sizeof(msg), "no reply from %s for %d s",
				 src ? "the source" : e->sink->peer, e->o.co.io_timeout_ms / 1000);
			job_fail(w, -ETIMEDOUT, msg);
			return false;
		}
		return !engine_failed(e);
	}
	if (ret < 0) {
		char msg[80];
		snprintf(msg, sizeof(msg), "io_uring wait failed: %s", strerror(-ret));
		job_fail(w, -MCW_EBUG, msg);
		return false;
	}
	unsigned n = ur_reap(w->ring, cqes, ARRAY_LEN(cqes));
	if (n > 0)
		w->last_io_ns = mono_ns();
	for (unsigned i = 0; i < n; i++)
		on_cqe(w, &cqes[i]);
	return !engine_failed(e);
}

static bool awaiting(struct engine_worker *w)
{
	const struct engine_sink_ops *s = w->e->sink;
	return mgpipe_awaiting(&w->pipe) || (s->awaiting && s->awaiting(w));
}

static bool job_begin(struct engine_worker *w, uint32_t seq)
{
	struct engine *e = w->e;
	uint32_t n;
	if (!engine_load_keys(e, w, seq, &w->kv, &n))
		return false;
	mgpipe_job(&w->pipe, &w->kv, w->key_off, n);
	unsigned g = w->kv.group;
	if (g >= e->kf.ngroups) {
		job_fail(w, -MCW_EBUG, "the key chunk names an output group that does not exist");
		return false;
	}
	w->last_io_ns = mono_ns();
	w->blocked = false;
	return e->sink->job_begin ? e->sink->job_begin(w, seq, g) : true;
}

static void run_job(struct engine_worker *w, uint32_t seq)
{
	const struct engine_sink_ops *s = w->e->sink;
	if (!job_begin(w, seq))
		return;
	for (;;) {
		/* replies first: an MN frees a batch slot that mgpipe_kick can use right away */
		take_replies(w);
		if (engine_failed(w->e))
			return;
		bool fetched = mgpipe_done(&w->pipe) && !w->pipe.send_busy;
		mgpipe_kick(&w->pipe);
		if (s->kick)
			s->kick(w, fetched);
		if (fetched && (!s->job_idle || s->job_idle(w)))
			break;
		if (!pump(w, awaiting(w)))
			return;
	}
	flush_counts(w);
	if (s->job_end)
		s->job_end(w, seq);
	atomic_fetch_add(&w->e->st.jobs_done, 1);
}

/* ---- the thread --------------------------------------------------------------------------- */

static int worker_setup(struct engine_worker *w)
{
	struct engine *e = w->e;
	const struct engine_layout *l = &e->plan.worker;
	char name[16];
	snprintf(name, sizeof(name), "%s-%u", e->sink->thread_name, w->id);
	int ret = run_thread_setup(name, w->cpu, e->o.co.nice, &w->ring);
	if (ret < 0)
		return ret;
	ret = e->sink->worker_init ? e->sink->worker_init(w) : 0;
	if (ret < 0)
		return ret;
	struct mgpipe_opts po = {
		.ring = w->ring,
		.fd = w->fd,
		.id = 0,
		.what = "the source",
		.send_area = w->net_buf + l->send_slots.off,
		.send_bytes = l->send_slots.bytes,
		.recv_area = w->net_buf + l->recv.off,
		.recv_bytes = l->recv.bytes,
		.quiet = e->sink->src_quiet,
		.value_max = e->src.item_size_max,
		.recv_reusable = e->sink->recv_reusable,
		.arg = w->sink,
		.limits = rate_limits_active(&e->limits) ? &e->limits : NULL,
	};
	mgpipe_init(&w->pipe, &po);
	return 0;
}

static bool sink_idle(struct engine_worker *w)
{
	return w->e->sink->idle == NULL || w->e->sink->idle(w);
}

void *engine_worker_main(void *arg)
{
	struct engine_worker *w = arg;
	struct engine *e = w->e;
	int ret = worker_setup(w);
	if (ret < 0) {
		engine_fail(e, -MCW_EBUG, "worker %u cannot start: %s", w->id, strerror(-ret));
		goto out;
	}
	for (;;) {
		int64_t job = engine_take_job(e, false);
		if (job == -2) {
			/* nothing to fetch yet: finish background work, then sleep */
			while (!sink_idle(w) && pump(w, false))
				;
			job = engine_take_job(e, true);
		}
		if (job < 0)
			break;
		run_job(w, (uint32_t)job);
	}
	while (!engine_failed(e) && !sink_idle(w) && pump(w, false))
		;
	flush_counts(w);
out:
	if (e->sink->worker_fini)
		e->sink->worker_fini(w, engine_failed(e));
	ur_ring_destroy(w->ring);
	w->ring = NULL;
	net_close(w->fd);
	w->fd = -1;
	run_thread_done(&e->run);
	return NULL;
}
