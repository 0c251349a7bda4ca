/*
 * chunk_writer.c: record layout into blocks, file lifecycle, and the two write strategies.
 *
 * File states (one cw_file each, CHUNK_WRITER_FILES of them):
 *
 *   FREE --file_open--> FILLING --file_finish--> DRAINING --(inflight==0) file_sync-->
 *   SYNCING --(fsync done) file_publish--> FREE
 *
 * Invariants:
 *  1. Blocks of a file close in order; the file crc is chained in that order, so it
 *     equals the crc32c of the bytes on disk before the footer.
 *  2. A record's header and key never cross a block; only values above the span
 *     threshold start in a block they do not fit in.
 *  3. Stage mode: a staging unit is either being filled (by the current file), in flight
 *     (busy), or free. A record is only laid out once every block it needs is free, so an
 *     add either happens whole or not at all (-EAGAIN).
 *  4. Writev mode: iovecs point into caller memory until the epoch's writes complete;
 *     chunk_writer_holds_refs() tells the caller when that memory is free again.
 *  5. Nothing gets a final name before it is complete and synced.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "chunk_writer.h"
#include "crc.h"

enum cw_file_state { CWF_FREE, CWF_FILLING, CWF_DRAINING, CWF_SYNCING };

enum cw_op { CW_OP_UNIT = 1, CW_OP_HEADER, CW_OP_FOOTER, CW_OP_FSYNC, CW_OP_WRITEV, CW_OP_UPLOAD };

static_assert((int)CHUNK_WRITER_FILES == (int)CHUNK_UPLOAD_SLOTS, "an upload per open file");

/* user_data (uring.h's scheme): the instance bits carry the operation, the payload the
 * file slot (8 bits) and an index or byte count (48 bits) */
#define CW_UD(op, slot, i) ur_ud(UR_OWNER_CHUNK_WRITER, (op), (uint64_t)(slot) << 48 | (i))
#define CW_UD_OP(ud)	   ur_ud_id(ud)
#define CW_UD_SLOT(ud)	   ((unsigned)((ur_ud_payload(ud) >> 48) & 0xff))
#define CW_UD_INDEX(ud)	   ((ud)&0xffffffffffffull)
#define CW_PAGES_BYTES	   (CHUNK_WRITER_FILES * 2 * MCW_ALIGN_BYTES)

/* Zero bytes for padding in writev mode (untouched .bss: costs no memory). */
static const uint8_t cw_zeros[MCW_BLOCK_BYTES];

static unsigned slot_of(const struct chunk_writer *w, const struct cw_file *f)
{
	return (unsigned)(f - w->files);
}

static int fail(struct chunk_writer *w, int err, const char *what, const struct cw_file *f)
{
	if (w->error == 0) {
		w->error = err;
		snprintf(w->error_msg, sizeof(w->error_msg), "%s %s/%s: %s%s", what,
			 f ? f->dir_path : w->o.dir_path, f ? f->temp_name : "", strerror(-err),
			 err == -ENOSPC || err == -EDQUOT
			     ? " (the volume is full: free space, then run again; the dump "
			       "continues where it stopped)"
			     : "");
	}
	return w->error;
}

static int obj_init(struct chunk_writer *w);

size_t chunk_writer_staging_min(enum chunk_write_mode mode, uint32_t value_max)
{
	size_t payload = CHUNK_PAYLOAD_MAX(MCW_BLOCK_BYTES);
	size_t rec_max = MCW_RECORD_HEADER_BYTES + MCP_KEY_MAX + (size_t)value_max;
	size_t rec_blocks = (rec_max + payload - 1) / payload + 1;
	if (mode == CHUNK_WRITE_WRITEV) /* iovecs and metadata for one epoch */
		return CW_PAGES_BYTES + 2 * MIB;
	size_t units = (rec_blocks + MCW_WRITE_UNIT_BLOCKS - 1) / MCW_WRITE_UNIT_BLOCKS + 2;
	return CW_PAGES_BYTES + units * MCW_WRITE_UNIT_BLOCKS * (size_t)MCW_BLOCK_BYTES;
}

int chunk_writer_init(struct chunk_writer *w, const struct chunk_writer_opts *o)
{
	memset(w, 0, sizeof(*w));
	w->o = *o;
	w->direct_ok = o->direct && o->mode == CHUNK_WRITE_STAGE;
	w->payload_max = CHUNK_PAYLOAD_MAX(MCW_BLOCK_BYTES);
	w->span_threshold = CHUNK_SPAN_THRESHOLD(MCW_BLOCK_BYTES);
	if (o->staging_bytes < chunk_writer_staging_min(o->mode, o->record_value_max))
		return -EINVAL;
	ASSERT(((uintptr_t)o->staging % MCW_ALIGN_BYTES) == 0);
	for (unsigned i = 0; i < CHUNK_WRITER_FILES; i++) {
		w->files[i].fd = -1;
		w->files[i].header_page = o->staging + (2 * i) * MCW_ALIGN_BYTES;
		w->files[i].footer_page = o->staging + (2 * i + 1) * MCW_ALIGN_BYTES;
	}
	uint8_t *rest = o->staging + CW_PAGES_BYTES;
	size_t rest_bytes = o->staging_bytes - CW_PAGES_BYTES;
	if (o->mode == CHUNK_WRITE_STAGE) {
		w->nunits = (uint32_t)(rest_bytes / (MCW_WRITE_UNIT_BLOCKS * MCW_BLOCK_BYTES));
		w->nblocks = w->nunits * MCW_WRITE_UNIT_BLOCKS;
		w->blocks_base = rest;
		w->units = calloc(w->nunits, sizeof(*w->units)); /* start-up only */
		if (w->units == NULL)
			return -ENOMEM;
		if (o->upload != NULL)
			return obj_init(w);
	} else {
		size_t iov_bytes = rest_bytes / 8;
		w->iov = (struct iovec *)rest;
		w->iov_cap = (uint32_t)(iov_bytes / sizeof(struct iovec));
		w->meta = rest + ROUND_UP(iov_bytes, 64);
		w->meta_cap = rest_bytes - ROUND_UP(iov_bytes, 64);
	}
	return 0;
}

/* ---- object backend ------------------------------------------------------------------ */

static int obj_arm(struct chunk_writer *w)
{
	int ret = ur_prep_read(w->o.ring, chunk_upload_fd(w->o.upload), &w->obj_wake,
			       sizeof(w->obj_wake), 0, CW_UD(CW_OP_UPLOAD, 0, 0));
	w->obj_armed = ret == 0;
	return ret;
}

static int obj_init(struct chunk_writer *w)
{
	/* every unit, and a header and a footer per file, can wait at once */
	w->obj_cap = w->nunits + 2 * CHUNK_WRITER_FILES;
	w->obj_ops = calloc(w->obj_cap, sizeof(*w->obj_ops)); /* start-up only */
	if (w->obj_ops == NULL)
		return -ENOMEM;
	return obj_arm(w);
}

static void obj_queue(struct chunk_writer *w, const void *p, size_t len, unsigned slot, uint64_t ud)
{
	ASSERT(w->obj_n < w->obj_cap && len <= UINT32_MAX);
	w->obj_ops[(w->obj_head + w->obj_n++) % w->obj_cap] =
	    (struct cw_obj_op){ p, (uint32_t)len, slot, ud };
}

/* Copies waiting writes into part buffers while there is room; each write taken whole
 * completes as its ring write would have. */
static void obj_pump(struct chunk_writer *w)
{
	while (w->obj_n > 0 && w->error == 0) {
		struct cw_obj_op *op = &w->obj_ops[w->obj_head];
		w->obj_off += (uint32_t)chunk_upload_write(
		    w->o.upload, op->slot, op->p + w->obj_off, op->len - w->obj_off);
		if (w->obj_off < op->len)
			return; /* both part buffers are on their way up: an event follows */
		struct ur_cqe c = { .user_data = op->ud, .res = (int32_t)op->len };
		w->obj_head = (w->obj_head + 1) % w->obj_cap;
		w->obj_n--;
		w->obj_off = 0;
		chunk_writer_complete(w, &c);
	}
}

/* A write of the file's bytes at offset: to the file through the ring, or to its object. */
static int queue_write(struct chunk_writer *w, struct cw_file *f, const void *p, size_t len,
		       uint64_t offset, uint64_t ud)
{
	if (w->o.upload != NULL) {
		obj_queue(w, p, len, slot_of(w, f), ud);
		return 0;
	}
	return ur_prep_write_fixed(w->o.ring, f->fd, p, len, offset, w->o.buf_index, ud);
}

/* ---- file lifecycle ------------------------------------------------------------------ */

static void header_fill(struct chunk_writer *w, struct cw_file *f)
{
	struct chunk_header *h = (struct chunk_header *)f->header_page;
	memset(h, 0, sizeof(*h));
	memcpy(h->f.magic, CHUNK_MAGIC, 8);
	h->f.version_major = CHUNK_VERSION_MAJOR;
	h->f.version_minor = CHUNK_VERSION_MINOR;
	h->f.header_bytes = MCW_HEADER_BYTES;
	h->f.block_bytes = MCW_BLOCK_BYTES;
	memcpy(h->f.dump_id, w->o.id->dump_id, 16);
	h->f.job = f->job;
	h->f.part = f->part;
	h->f.created_unix_ns = wall_ns();
	h->f.dump_started_unix_ns = w->o.id->dump_started_unix_ns;
	h->f.source_time_s = w->o.id->source_time_s;
	h->f.source_started_s = w->o.id->source_started_s;
	h->f.source_pid = w->o.id->source_pid;
	memcpy(h->f.source_addr, w->o.id->source_addr, sizeof(h->f.source_addr));
	memcpy(h->f.source_version, w->o.id->source_version, sizeof(h->f.source_version));
	h->crc = mcw_crc32c(0, h, offsetof(struct chunk_header, crc));
}

static int open_temp(struct chunk_writer *w, struct cw_file *f)
{
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
	int fd = -1;
	if (w->direct_ok) {
		fd = openat(f->dir_fd, f->temp_name, flags | O_DIRECT, 0644);
		if (fd < 0 && errno == EINVAL) {
			log_warn("the filesystem of %s refuses O_DIRECT: writing through the page "
				 "cache instead (slower, more CPU)",
				 w->o.dir_path);
			w->direct_ok = false;
		}
	}
	if (fd < 0)
		fd = openat(f->dir_fd, f->temp_name, flags, 0644);
	if (fd < 0)
		return -errno;
	/* Preallocation keeps O_DIRECT writes off io-wq threads; without it they still work. */
	uint64_t prealloc =
	    MCW_HEADER_BYTES + w->o.chunk_bytes_max + MCW_BLOCK_BYTES + MCW_FOOTER_BYTES;
	if (w->direct_ok && fallocate(fd, 0, 0, (off_t)prealloc) < 0 && errno != EOPNOTSUPP &&
	    errno != ENOSPC)
		log_debug("fallocate %s: %s", f->temp_name, strerror(errno));
	return fd;
}

static int file_open(struct chunk_writer *w)
{
	struct cw_file *f = NULL;
	for (unsigned i = 0; i < CHUNK_WRITER_FILES; i++) {
		if (w->files[i].state == CWF_FREE) {
			f = &w->files[i];
			break;
		}
	}
	if (f == NULL)
		return -EAGAIN;
	if (w->next_part > MCW_PARTS_PER_JOB_MAX)
		return fail(w, -EFBIG, "too many parts for one key chunk in", NULL);
	f->job = w->job;
	f->part = w->next_part;
	f->ends_job = false;
	f->dir_fd = w->o.dir_fd; /* the job's directory, even if the next job has another */
	f->dir_path = w->o.dir_path;
	f->blocks = 0;
	f->records = f->key_bytes = f->value_bytes = 0;
	f->inflight = 0;
	chunk_name_temp(f->temp_name, f->job, f->part);
	if (w->o.upload != NULL) {
		f->fd = -1;
		chunk_upload_open(w->o.upload, slot_of(w, f), f->temp_name);
	} else {
		int fd = open_temp(w, f);
		if (fd < 0)
			return fail(w, fd, "cannot create chunk file", f);
		f->fd = fd;
	}
	header_fill(w, f);
	f->crc = mcw_crc32c(0, f->header_page, MCW_HEADER_BYTES);
	/* Header and footer pages live in the registered staging region in both modes. */
	int ret = queue_write(w, f, f->header_page, MCW_HEADER_BYTES, 0,
			      CW_UD(CW_OP_HEADER, slot_of(w, f), 0));
	if (ret < 0)
		return fail(w, ret, "cannot queue write of", f);
	f->inflight++;
	f->state = CWF_FILLING;
	w->next_part++;
	w->cur = f;
	w->blk_open = false;
	if (w->o.mode == CHUNK_WRITE_WRITEV) {
		w->epoch_file = f;
		w->epoch_file_off = MCW_HEADER_BYTES;
	}
	return 0;
}

static uint64_t block_offset(uint32_t index)
{
	return MCW_HEADER_BYTES + (uint64_t)index * MCW_BLOCK_BYTES;
}

static void file_sync(struct chunk_writer *w, struct cw_file *f);
static void stage_submit_unit(struct chunk_writer *w, uint64_t unit_abs);
static int writev_submit(struct chunk_writer *w);
static void block_close(struct chunk_writer *w, bool last);

static int file_finish(struct chunk_writer *w)
{
	struct cw_file *f = w->cur;
	ASSERT(f != NULL && f->state == CWF_FILLING);
	if (w->blk_open)
		block_close(w, true);
	if (w->o.mode == CHUNK_WRITE_STAGE) {
		if (w->blk_abs % MCW_WRITE_UNIT_BLOCKS != 0) {
			stage_submit_unit(w, w->blk_abs / MCW_WRITE_UNIT_BLOCKS);
			w->blk_abs = ROUND_UP(w->blk_abs, MCW_WRITE_UNIT_BLOCKS);
		}
	} else {
		writev_submit(w);
	}
	f->end_offset =
	    f->blocks == 0 ? MCW_HEADER_BYTES : block_offset(f->blocks - 1) + f->last_block_bytes;
	struct chunk_footer *ft = (struct chunk_footer *)f->footer_page;
	memset(ft, 0, sizeof(*ft));
	memcpy(ft->f.magic, CHUNK_FOOTER_MAGIC, 8);
	ft->f.record_count = f->records;
	ft->f.block_count = f->blocks;
	ft->f.key_bytes = f->key_bytes;
	ft->f.value_bytes = f->value_bytes;
	ft->f.file_bytes = f->end_offset + MCW_FOOTER_BYTES;
	ft->f.file_crc = f->crc;
	ft->f.last_block_bytes = f->last_block_bytes;
	memcpy(ft->f.dump_id, w->o.id->dump_id, 16);
	ft->f.job = f->job;
	ft->f.part = f->part;
	ft->crc = mcw_crc32c(0, ft, offsetof(struct chunk_footer, crc));
	int ret = queue_write(w, f, ft, MCW_FOOTER_BYTES, f->end_offset,
			      CW_UD(CW_OP_FOOTER, slot_of(w, f), 0));
	if (ret < 0)
		return fail(w, ret, "cannot queue footer write of", f);
	f->inflight++;
	f->state = CWF_DRAINING;
	w->cur = NULL;
	return 0;
}

static void file_sync(struct chunk_writer *w, struct cw_file *f)
{
	ASSERT(f->state == CWF_DRAINING && f->inflight == 0);
	if (w->o.upload != NULL) { /* the upload's end stands for the sync */
		char final[CHUNK_NAME_MAX];
		chunk_name_final(final, f->job, f->part, f->crc);
		chunk_upload_close(w->o.upload, slot_of(w, f), final);
		f->inflight++;
		f->state = CWF_SYNCING;
		return;
	}
	if (ftruncate(f->fd, (off_t)(f->end_offset + MCW_FOOTER_BYTES)) < 0) {
		fail(w, -errno, "cannot set the size of", f);
		return;
	}
	int ret = ur_prep_fsync(w->o.ring, f->fd, true, CW_UD(CW_OP_FSYNC, slot_of(w, f), 0));
	if (ret < 0) {
		fail(w, ret, "cannot queue fsync of", f);
		return;
	}
	f->inflight++;
	f->state = CWF_SYNCING;
}

static void file_publish(struct chunk_writer *w, struct cw_file *f)
{
	struct chunk_file_done done = {
		.job = f->job,
		.part = f->part,
		.records = f->records,
		.file_bytes = f->end_offset + MCW_FOOTER_BYTES,
		.value_bytes = f->value_bytes,
		.crc = f->crc,
	};
	chunk_name_final(done.name, f->job, f->part, f->crc);
	if (w->o.upload == NULL && renameat(f->dir_fd, f->temp_name, f->dir_fd, done.name) < 0) {
		fail(w, -errno, "cannot rename", f);
		return;
	}
	if (w->o.upload == NULL && fsync(f->dir_fd) < 0) {
		fail(w, -errno, "cannot sync the directory of", f);
		return;
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->state = CWF_FREE;
	if (f->ends_job) { /* the job is complete once none of its files is still finishing */
		f->ends_job = false;
		done.job_end = true;
		for (unsigned i = 0; i < CHUNK_WRITER_FILES; i++) {
			struct cw_file *o = &w->files[i];
			if (o->state != CWF_FREE && o->job == f->job && o != w->cur) {
				o->ends_job = true;
				done.job_end = false;
				break;
			}
		}
	}
	if (w->o.on_file_done != NULL)
		w->o.on_file_done(w->o.arg, &done);
}

/* ---- blocks -------------------------------------------------------------------------- */

static uint8_t *stage_block_mem(const struct chunk_writer *w, uint64_t blk_abs)
{
	return w->blocks_base + (blk_abs % w->nblocks) * (size_t)MCW_BLOCK_BYTES;
}

static struct cw_unit *stage_unit(const struct chunk_writer *w, uint64_t blk_abs)
{
	return &w->units[(blk_abs / MCW_WRITE_UNIT_BLOCKS) % w->nunits];
}

static void block_open(struct chunk_writer *w, uint32_t cont_bytes)
{
	ASSERT(!w->blk_open && w->cur != NULL);
	w->blk_used = 0;
	w->blk_cont = cont_bytes;
	w->blk_count = 0;
	w->blk_flags = 0;
	w->blk_crc = 0;
	w->blk_open = true;
	if (w->o.mode == CHUNK_WRITE_STAGE) {
		struct cw_unit *u = stage_unit(w, w->blk_abs);
		if (w->blk_abs % MCW_WRITE_UNIT_BLOCKS == 0) {
			ASSERT(!u->busy);
			u->file = w->cur;
			u->first_block = w->cur->blocks;
			u->nblocks = 0;
			u->len = 0;
		}
		ASSERT(u->file == w->cur);
	} else {
		/* the block header is written into meta at close; reserve it now */
		ASSERT(w->meta_used + MCW_BLOCK_HEADER_BYTES <= w->meta_cap);
		ASSERT(w->iov_used < w->iov_cap);
		w->iov_block_first = w->iov_used;
		w->iov[w->iov_used++] =
		    (struct iovec){ w->meta + w->meta_used, MCW_BLOCK_HEADER_BYTES };
		w->meta_used += MCW_BLOCK_HEADER_BYTES;
	}
}

/* Appends payload bytes to the open block. copy=false (writev mode) keeps a reference. */
static void block_emit(struct chunk_writer *w, const void *p, size_t n, bool copy)
{
	ASSERT_HOT(w->blk_open && w->blk_used + n <= w->payload_max);
	if (n == 0)
		return;
	if (w->o.mode == CHUNK_WRITE_STAGE) {
		memcpy(stage_block_mem(w, w->blk_abs) + MCW_BLOCK_HEADER_BYTES + w->blk_used, p, n);
	} else {
		w->blk_crc = mcw_crc32c(w->blk_crc, p, n);
		struct iovec *last = &w->iov[w->iov_used - 1];
		if (copy) {
			uint8_t *dst = w->meta + w->meta_used;
			memcpy(dst, p, n);
			w->meta_used += n;
			if ((uint8_t *)last->iov_base + last->iov_len == dst) {
				last->iov_len += n;
				w->blk_used += (uint32_t)n;
				return;
			}
			p = dst;
		}
		ASSERT_HOT(w->iov_used < w->iov_cap);
		w->iov[w->iov_used++] = (struct iovec){ (void *)p, n };
	}
	w->blk_used += (uint32_t)n;
}

static void block_close(struct chunk_writer *w, bool last)
{
	struct cw_file *f = w->cur;
	ASSERT(w->blk_open);
	struct chunk_block_header h = {
		.magic = CHUNK_BLOCK_MAGIC,
		.index = f->blocks,
		.payload_bytes = w->blk_used,
		.cont_bytes = w->blk_cont,
		.record_count = w->blk_count,
		.flags = w->blk_flags,
	};
	uint32_t disk_bytes =
	    last ? (uint32_t)ROUND_UP(MCW_BLOCK_HEADER_BYTES + w->blk_used, MCW_ALIGN_BYTES)
		 : MCW_BLOCK_BYTES;
	uint32_t pad = disk_bytes - MCW_BLOCK_HEADER_BYTES - w->blk_used;
	uint8_t *hdr_dst;

	if (w->o.mode == CHUNK_WRITE_STAGE) {
		uint8_t *mem = stage_block_mem(w, w->blk_abs);
		w->blk_crc = mcw_crc32c(0, mem + MCW_BLOCK_HEADER_BYTES, w->blk_used);
		memset(mem + MCW_BLOCK_HEADER_BYTES + w->blk_used, 0, pad);
		hdr_dst = mem;
	} else {
		hdr_dst = w->iov[w->iov_block_first].iov_base;
		if (pad > 0)
			w->iov[w->iov_used++] = (struct iovec){ (void *)cw_zeros, pad };
	}
	h.crc = mcw_crc32c(w->blk_crc, &h, offsetof(struct chunk_block_header, crc));
	memcpy(hdr_dst, &h, sizeof(h));

	/* invariant 1: chain the file crc over header, payload and padding, in order */
	f->crc = mcw_crc32c(f->crc, &h, sizeof(h));
	f->crc = mcw_crc32c_combine(f->crc, w->blk_crc, w->blk_used);
	f->crc = mcw_crc32c(f->crc, cw_zeros, pad);
	f->blocks++;
	f->last_block_bytes = disk_bytes;
	w->blk_open = false;

	if (w->o.mode == CHUNK_WRITE_STAGE) {
		struct cw_unit *u = stage_unit(w, w->blk_abs);
		u->nblocks++;
		u->len += disk_bytes;
		w->blk_abs++;
		if (w->blk_abs % MCW_WRITE_UNIT_BLOCKS == 0)
			stage_submit_unit(w, w->blk_abs / MCW_WRITE_UNIT_BLOCKS - 1);
	}
}

/* ---- stage mode I/O ------------------------------------------------------------------ */

static void stage_submit_unit(struct chunk_writer *w, uint64_t unit_abs)
{
	struct cw_unit *u = &w->units[unit_abs % w->nunits];
	ASSERT(!u->busy && u->nblocks > 0);
	uint8_t *mem = stage_block_mem(w, unit_abs * MCW_WRITE_UNIT_BLOCKS);
	int ret = queue_write(w, u->file, mem, u->len, block_offset(u->first_block),
			      CW_UD(CW_OP_UNIT, slot_of(w, u->file), unit_abs % w->nunits));
	if (ret < 0) {
		fail(w, ret, "cannot queue write of", u->file);
		return;
	}
	u->busy = true;
	u->file->inflight++;
}

/* Are the n blocks from blk_abs on free for filling? */
static bool stage_has_room(const struct chunk_writer *w, uint64_t first, uint32_t n)
{
	for (uint64_t b = first; b < first + n; b++) {
		if (b % MCW_WRITE_UNIT_BLOCKS == 0 && stage_unit(w, b)->busy)
			return false;
	}
	return true;
}

/* ---- writev mode I/O ----------------------------------------------------------------- */

/* Submits the iovecs of every closed block of the epoch, at most 1024 per writev. */
static int writev_submit(struct chunk_writer *w)
{
	uint32_t end = w->blk_open ? w->iov_block_first : w->iov_used;
	struct cw_file *f = w->epoch_file;
	while (w->epoch_first_iov < end) {
		uint32_t n = MIN(end - w->epoch_first_iov, (uint32_t)CW_WRITEV_IOV_MAX);
		uint64_t len = 0;
		for (uint32_t i = 0; i < n; i++)
			len += w->iov[w->epoch_first_iov + i].iov_len;
		int ret =
		    ur_prep_writev(w->o.ring, f->fd, &w->iov[w->epoch_first_iov], n,
				   w->epoch_file_off, CW_UD(CW_OP_WRITEV, slot_of(w, f), len));
		if (ret < 0)
			return fail(w, ret, "cannot queue write of", f);
		f->inflight++;
		w->writev_inflight++;
		w->epoch_first_iov += n;
		w->epoch_file_off += len;
	}
	return 0;
}

static void writev_epoch_reset(struct chunk_writer *w)
{
	if (w->writev_inflight == 0 && !w->blk_open && w->epoch_first_iov == w->iov_used) {
		w->iov_used = w->epoch_first_iov = 0;
		w->meta_used = 0;
	}
}

static bool writev_has_room(const struct chunk_writer *w, uint32_t new_blocks, size_t meta)
{
	uint32_t iovs = 3 + 3 * new_blocks;
	size_t meta_need = meta + (size_t)(new_blocks + 1) * MCW_BLOCK_HEADER_BYTES;
	return w->iov_used + iovs <= w->iov_cap && w->meta_used + meta_need <= w->meta_cap;
}

int chunk_writer_flush(struct chunk_writer *w)
{
	if (w->o.mode != CHUNK_WRITE_WRITEV || w->error)
		return w->error;
	if (w->blk_open)
		block_close(w, false);
	int ret = writev_submit(w);
	writev_epoch_reset(w);
	return ret;
}

bool chunk_writer_holds_refs(const struct chunk_writer *w)
{
	return w->o.mode == CHUNK_WRITE_WRITEV && w->iov_used > 0;
}

/* ---- records ------------------------------------------------------------------------- */

static int add_record(struct chunk_writer *w, const struct chunk_rec *r);

/* Blocks this record opens, given the open block's state (invariant 2). */
static uint32_t record_new_blocks(const struct chunk_writer *w, size_t rec, size_t head)
{
	size_t avail = w->blk_open ? w->payload_max - w->blk_used : 0;
	if (rec <= avail)
		return 0;
	if (rec <= w->span_threshold)
		return 1;
	if (avail > head)
		return (uint32_t)((rec - avail + w->payload_max - 1) / w->payload_max);
	return (uint32_t)((rec + w->payload_max - 1) / w->payload_max);
}

static bool has_room(struct chunk_writer *w, uint32_t new_blocks, size_t head)
{
	if (w->o.mode == CHUNK_WRITE_STAGE)
		return stage_has_room(w, w->blk_open ? w->blk_abs + 1 : w->blk_abs, new_blocks);
	writev_epoch_reset(w);
	if (writev_has_room(w, new_blocks, head))
		return true;
	chunk_writer_flush(w); /* release what the epoch holds; the caller waits */
	return false;
}

static void next_block(struct chunk_writer *w, uint32_t cont_bytes, bool continues)
{
	if (w->blk_open) {
		if (continues)
			w->blk_flags |= CHUNK_BLOCK_F_CONTINUES;
		block_close(w, false);
		if (w->o.mode == CHUNK_WRITE_WRITEV)
			writev_submit(w);
	}
	block_open(w, cont_bytes);
}

int chunk_writer_add(struct chunk_writer *w, const struct chunk_rec *r)
{
	int ret = add_record(w, r);
	if (w->o.upload != NULL)
		obj_pump(w);
	return ret == 0 ? w->error : ret;
}

static int add_record(struct chunk_writer *w, const struct chunk_rec *r)
{
	if (w->o.upload != NULL)
		obj_pump(w); /* units copied free room for this record */
	if (w->error)
		return w->error;
	ASSERT(r->key_len >= 1 && r->key_len <= MCP_KEY_MAX);
	ASSERT(r->value_len <= w->o.record_value_max);
	if (w->cur != NULL &&
	    (uint64_t)(w->cur->blocks + w->blk_open) * MCW_BLOCK_BYTES >= w->o.chunk_bytes_max) {
		int ret = file_finish(w);
		if (ret < 0)
			return ret;
	}
	if (w->cur == NULL) {
		int ret = file_open(w);
		if (ret < 0)
			return ret;
	}

	size_t head = MCW_RECORD_HEADER_BYTES + r->key_len;
	size_t rec = head + r->value_len;
	uint32_t new_blocks = record_new_blocks(w, rec, head);
	ASSERT(w->o.mode != CHUNK_WRITE_STAGE || new_blocks + MCW_WRITE_UNIT_BLOCKS <= w->nblocks);
	if (!has_room(w, new_blocks, head))
		return w->error ? w->error : -EAGAIN;

	struct chunk_record_header rh = {
		.key_len = r->key_len,
		.flags = r->flags,
		.client_flags = r->client_flags,
		.expires_at_ms = r->expires_at_ms,
		.value_len = r->value_len,
	};
	if (new_blocks > 0 &&
	    !(rec > w->span_threshold && w->blk_open && w->payload_max - w->blk_used > head))
		next_block(w, 0, false);
	block_emit(w, &rh, sizeof(rh), true);
	block_emit(w, r->key, r->key_len, true);
	w->blk_count++;

	size_t done = 0;
	for (;;) {
		size_t piece = MIN((size_t)r->value_len - done, w->payload_max - w->blk_used);
		block_emit(w, r->value + done, piece, false);
		done += piece;
		if (done == r->value_len)
			break;
		size_t left = r->value_len - done;
		next_block(w, (uint32_t)MIN(left, (size_t)w->payload_max), true);
	}
	w->cur->records++;
	w->cur->key_bytes += r->key_len;
	w->cur->value_bytes += r->value_len;
	return w->error;
}

/* ---- jobs and completions ------------------------------------------------------------ */

void chunk_writer_set_dir(struct chunk_writer *w, int dir_fd, const char *dir_path)
{
	ASSERT(w->cur == NULL);
	w->o.dir_fd = dir_fd;
	w->o.dir_path = dir_path;
}

int chunk_writer_begin(struct chunk_writer *w, uint32_t job)
{
	ASSERT(w->cur == NULL);
	w->job = job;
	w->next_part = 0;
	return w->error;
}

int chunk_writer_end(struct chunk_writer *w)
{
	if (w->error)
		return w->error;
	if (w->cur == NULL)
		return 1; /* no record arrived for this job: no file */
	w->cur->ends_job = true;
	int ret = file_finish(w);
	if (ret == 0 && w->o.upload != NULL)
		obj_pump(w);
	return ret < 0 ? ret : w->error;
}

bool chunk_writer_owns(uint64_t user_data)
{
	return ur_ud_owner(user_data) == UR_OWNER_CHUNK_WRITER;
}

static int unit_done(struct chunk_writer *w, struct cw_unit *u, const struct ur_cqe *c)
{
	if (c->res < 0)
		return fail(w, c->res, "cannot write", u->file);
	if ((uint64_t)c->res != u->len)
		return fail(w, short_write_errno(u->file->fd, u->len - (uint64_t)c->res),
			    "short write to", u->file);
	u->busy = false;
	return 0;
}

/* The uploader's answers: ends of objects (the syncs of the object backend) and failures;
 * freed part buffers let the waiting writes go on. */
static int obj_events(struct chunk_writer *w, const struct ur_cqe *c)
{
	struct chunk_upload_event ev[MCW_S3_JOBS_MAX];
	unsigned n;
	w->obj_armed = false;
	if (c->res < 0 && c->res != -EAGAIN && c->res != -EINTR)
		log_debug("uploader wake-up read: %s", strerror(-c->res));
	while ((n = chunk_upload_reap(w->o.upload, ev, ARRAY_LEN(ev))) > 0) {
		for (unsigned i = 0; i < n; i++) {
			if (ev[i].res < 0 && w->error == 0) {
				w->error = ev[i].res;
				chunk_upload_error(w->o.upload, w->error_msg, sizeof(w->error_msg),
						   NULL);
			}
			struct ur_cqe done = { .user_data = CW_UD(CW_OP_FSYNC, ev[i].slot, 0),
					       .res = ev[i].res };
			if (ev[i].res == 0)
				chunk_writer_complete(w, &done);
		}
	}
	int ret = obj_arm(w);
	if (ret < 0)
		return fail(w, ret, "cannot wait for the uploader of", NULL);
	obj_pump(w);
	return w->error;
}

int chunk_writer_complete(struct chunk_writer *w, const struct ur_cqe *c)
{
	ASSERT(chunk_writer_owns(c->user_data));
	if (CW_UD_OP(c->user_data) == CW_OP_UPLOAD)
		return obj_events(w, c);
	unsigned slot = CW_UD_SLOT(c->user_data);
	ASSERT(slot < CHUNK_WRITER_FILES);
	struct cw_file *f = &w->files[slot];
	ASSERT(f->inflight > 0);
	f->inflight--;

	switch (CW_UD_OP(c->user_data)) {
	case CW_OP_UNIT:
		unit_done(w, &w->units[CW_UD_INDEX(c->user_data)], c);
		break;
	case CW_OP_HEADER:
	case CW_OP_FOOTER:
		if (c->res != MCW_HEADER_BYTES)
			fail(w, c->res < 0 ? c->res : short_write_errno(f->fd, MCW_HEADER_BYTES),
			     "cannot write", f);
		break;
	case CW_OP_WRITEV:
		w->writev_inflight--;
		if (c->res < 0 || (uint64_t)c->res != CW_UD_INDEX(c->user_data))
			fail(w,
			     c->res < 0 ? c->res
					: short_write_errno(f->fd, CW_UD_INDEX(c->user_data) -
								       (uint64_t)c->res),
			     "cannot write", f);
		writev_epoch_reset(w);
		break;
	case CW_OP_FSYNC:
		if (c->res < 0)
			fail(w, c->res, "cannot sync", f);
		else if (w->error == 0)
			file_publish(w, f);
		return w->error;
	default:
		ASSERT(!"unknown writer op");
	}
	if (w->error == 0 && f->state == CWF_DRAINING && f->inflight == 0)
		file_sync(w, f);
	return w->error;
}

bool chunk_writer_idle(const struct chunk_writer *w)
{
	for (unsigned i = 0; i < CHUNK_WRITER_FILES; i++) {
		const struct cw_file *f = &w->files[i];
		if (f->inflight > 0 || f->state == CWF_DRAINING || f->state == CWF_SYNCING)
			return false;
	}
	return w->cur == NULL;
}

void chunk_writer_abandon(struct chunk_writer *w)
{
	for (unsigned i = 0; i < CHUNK_WRITER_FILES; i++) {
		struct cw_file *f = &w->files[i];
		if (f->state != CWF_FREE && f->fd >= 0) {
			close(f->fd);
			f->fd = -1;
			unlinkat(f->dir_fd, f->temp_name, 0);
		}
		f->state = CWF_FREE;
	}
	w->cur = NULL;
}

void chunk_writer_release(struct chunk_writer *w)
{
	free(w->units);
	w->units = NULL;
	free(w->obj_ops);
	w->obj_ops = NULL;
}
