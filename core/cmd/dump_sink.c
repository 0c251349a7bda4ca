/*
 * dump_sink.c: the chunk sink of `mcwarm dump`: every value the engine's worker fetches
 * becomes a record for that worker's chunk writer (chunk_writer.c). The worker's disk
 * buffer part is the writer's staging area:
 *
 *   disk = [ key offsets | key chunk input | writer staging ]   (engine_layout)
 *
 * A reply is taken only once the writer accepted its record: when the writer is full,
 * on_value says -EAGAIN and the engine offers the reply again after a write completes.
 * A job's files all have their final names when the writer says so (on_file_done, or at
 * job end when the job wrote no file): then the job is recorded in the checkpoint.
 */
#include <errno.h>
#include <string.h>

#include "base.h"
#include "dump.h"
#include "mcw_limits.h"

static struct dump_worker *dw(struct engine_worker *w)
{
	return w->sink;
}

void dump_sink_need(enum chunk_write_mode mode, uint64_t item_size_max, bool upload,
		    struct engine_sink_need *need)
{
	*need = (struct engine_sink_need){
		.nparts = upload ? 2 : 1,
		.part[0] = { "staging", chunk_writer_staging_min(mode, (uint32_t)item_size_max),
			     true },
		.part[1] = { "upload parts", MCW_S3_PART_BUFS * (size_t)MCW_S3_PART_BYTES, false },
	};
}

int dump_sink_worker_open(struct engine *e, struct engine_worker *w)
{
	struct dump_cmd *d = e->sink_ctx;
	w->sink = &d->workers[w->id];
	d->workers[w->id].d = d;
	return 0;
}

/* The worker's chunk writer failed: its sticky -errno, or the upload's cause (dump_s3.c),
 * and its message fail the run. */
static void writer_failed(struct engine_worker *w)
{
	struct dump_worker *x = dw(w);
	int err = x->d->s3.on ? dump_s3_worker_cause(x) : x->cw.error;
	engine_fail(&x->d->e, err, "%s", x->cw.error_msg);
}

static void on_file_done(void *arg, const struct chunk_file_done *done)
{
	struct dump_cmd *d = arg;
	atomic_fetch_add(&d->st.files, 1);
	atomic_fetch_add(&d->st.file_bytes, done->file_bytes);
	if (done->job_end)
		engine_job_done(&d->e, done->job);
}

int dump_sink_worker_init(struct engine_worker *w)
{
	struct dump_cmd *d = dw(w)->d;
	struct engine *e = &d->e;
	struct iovec iov = { w->sink_part[0], w->sink_part_bytes[0] };
	int ret = ur_buffers_register(w->ring, &iov, 1);
	if (ret < 0)
		return ret;
	struct chunk_writer_opts wo = {
		.mode = d->o.write_mode,
		.ring = w->ring,
		.buf_index = 0,
		.dir_fd = e->dir_fd,
		.dir_path = e->o.dir,
		.id = &e->id,
		.staging = iov.iov_base,
		.staging_bytes = iov.iov_len,
		.chunk_bytes_max = d->o.chunk_bytes,
		.record_value_max = (uint32_t)e->src.item_size_max,
		.direct = d->o.direct,
		.on_file_done = on_file_done,
		.arg = d,
	};
	if (d->s3.on) {
		ret = dump_s3_worker_init(d, dw(w), w);
		if (ret < 0)
			return ret;
		wo.upload = &dw(w)->up;
	}
	ret = chunk_writer_init(&dw(w)->cw, &wo);
	dw(w)->cw_ready = ret == 0;
	return ret;
}

/* writev mode: the receive area is referenced until the writer's writes complete. */
bool dump_sink_recv_reusable(void *sink_worker)
{
	struct chunk_writer *cw = &((struct dump_worker *)sink_worker)->cw;
	if (!chunk_writer_holds_refs(cw))
		return true;
	chunk_writer_flush(cw);
	return false;
}

/* Adds the worker's unflushed counts to the shared ones (of its job's group). */
static void counts_flush(struct dump_worker *x)
{
	struct dump_cmd *d = x->d;
	if (x->items_unflushed == 0)
		return;
	atomic_fetch_add_explicit(&d->e.st.items, x->items_unflushed, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->st.group_items[x->group], x->items_unflushed,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&d->e.st.value_bytes, x->bytes_unflushed, memory_order_relaxed);
	x->items_unflushed = x->bytes_unflushed = 0;
}

bool dump_sink_job_begin(struct engine_worker *w, uint32_t seq, unsigned group)
{
	struct dump_cmd *d = dw(w)->d;
	counts_flush(dw(w)); /* they belong to the group of the job before */
	dw(w)->group = group;
	chunk_writer_set_dir(&dw(w)->cw, d->group_fd[group], d->group_path[group]);
	return chunk_writer_begin(&dw(w)->cw, seq) >= 0;
}

/* 0: consumed; -EAGAIN: the writer is full, keep the reply; other: failed. */
int dump_sink_on_value(struct engine_worker *w, enum mgpipe_next kind,
		       const struct mcp_meta_reply *rep, uint32_t index)
{
	struct dump_cmd *d = dw(w)->d;
	uint16_t klen;
	uint8_t kflags;
	ASSERT(kind == MGPIPE_VALUE); /* quiet: misses are silent */
	const uint8_t *key = mgpipe_key(&w->pipe, index, &klen, &kflags);
	if (rep->ttl >= 0 && rep->ttl < d->e.o.min_ttl_s) {
		atomic_fetch_add_explicit(&d->st.ttl_filtered, 1, memory_order_relaxed);
		return 0; /* present, deliberately not kept: not a miss */
	}
	struct chunk_rec rec = {
		.key = key,
		.key_len = klen,
		.flags = rep->key_b64 ? CHUNK_REC_F_BINARY_KEY : 0, /* as the source stores it */
		.client_flags = rep->client_flags,
		.expires_at_ms = rep->ttl < 0 ? 0 : w->pipe.recv_ms + rep->ttl * 1000,
		.value = (const uint8_t *)rep->value,
		.value_len = (uint32_t)rep->value_len,
	};
	int ret = chunk_writer_add(&dw(w)->cw, &rec);
	if (ret == -EAGAIN)
		return ret; /* nothing about this reply is recorded yet */
	if (ret < 0) {
		writer_failed(w);
		return ret;
	}
	dw(w)->items_unflushed++;
	dw(w)->bytes_unflushed += rep->value_len;
	if (dw(w)->items_unflushed == DUMP_COUNTS_FLUSH_ITEMS)
		counts_flush(dw(w));
	return 0;
}

void dump_sink_on_cqe(struct engine_worker *w, const struct ur_cqe *cqe)
{
	ASSERT(chunk_writer_owns(cqe->user_data));
	if (chunk_writer_complete(&dw(w)->cw, cqe) < 0)
		writer_failed(w);
}

void dump_sink_job_end(struct engine_worker *w, uint32_t seq)
{
	struct engine *e = &dw(w)->d->e;
	counts_flush(dw(w)); /* before the job can count as done */
	int end = chunk_writer_end(&dw(w)->cw);
	if (end < 0)
		writer_failed(w);
	else if (end == 1) /* no file: complete now */
		engine_job_done(e, seq);
}

bool dump_sink_idle(struct engine_worker *w)
{
	return !dw(w)->cw_ready || chunk_writer_idle(&dw(w)->cw);
}

void dump_sink_worker_fini(struct engine_worker *w, bool failed)
{
	counts_flush(dw(w));
	dump_s3_worker_fini(dw(w), failed);
	if (!dw(w)->cw_ready)
		return;
	if (failed)
		chunk_writer_abandon(&dw(w)->cw);
	chunk_writer_release(&dw(w)->cw);
	dw(w)->cw_ready = false;
}
