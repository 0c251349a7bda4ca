/*
 * chunk_writer.h: turns records into chunk files (chunk_format.h) through a worker's
 * io_uring. One writer per worker; the worker's ring, staging memory and output
 * directory are lent to it at init.
 *
 * Two strategies behind this one interface (docs/architecture.md, "Writer strategies"):
 *   CHUNK_WRITE_STAGE   copy each record into 4096-aligned staging blocks, O_DIRECT
 *                       write_fixed of whole units (default: measured faster)
 *   CHUNK_WRITE_WRITEV  no copy of values: iovecs point into the caller's receive buffer,
 *                       buffered writev; the caller must not reuse that memory until
 *                       chunk_writer_holds_refs() is false (see chunk_writer_flush)
 *
 * Files are written under a temporary name, fdatasync'ed, renamed to their final name
 * (which carries the whole-file crc32c) and the directory is fsync'ed. Up to two files per
 * writer are open at once: one being filled, one finishing.
 *
 * Two backends for stage mode: files through the ring (above), or objects (opts.upload
 * set, dump --out s3://): the same header, units and footer, in the same order, go to
 * the uploader (chunk_upload.h) instead of write_fixed; its answers come back through
 * an eventfd read kept armed in the ring, so the caller sees one kind of completion.
 */
#ifndef MCW_CHUNK_WRITER_H
#define MCW_CHUNK_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "chunk_format.h"
#include "chunk_upload.h"
#include "uring.h"

enum chunk_write_mode {
	CHUNK_WRITE_STAGE,
	CHUNK_WRITE_WRITEV,
};

/* What every file of a dump says about its origin (copied into each header). */
struct chunk_identity {
	uint8_t dump_id[16];
	int64_t dump_started_unix_ns;
	int64_t source_time_s;
	int64_t source_started_s;
	uint32_t source_pid;
	char source_addr[64];
	char source_version[32];
};

/* One record to write. key and value are read during chunk_writer_add (stage mode) or
 * until the caller sees chunk_writer_holds_refs() == false (writev mode). */
struct chunk_rec {
	const uint8_t *key;
	uint16_t key_len;
	uint8_t flags; /* CHUNK_REC_F_* */
	uint32_t client_flags;
	int64_t expires_at_ms; /* mover unix milliseconds, 0 = never */
	const uint8_t *value;
	uint32_t value_len;
};

/* Reported once per finished (renamed, synced) file. */
struct chunk_file_done {
	char name[CHUNK_NAME_MAX];
	uint32_t job, part;
	uint64_t records, file_bytes, value_bytes;
	uint32_t crc;
	bool job_end; /* the job has ended and this was its last file still finishing */
};

struct chunk_writer_opts {
	enum chunk_write_mode mode;
	struct ur_ring *ring;
	unsigned buf_index; /* registered index of staging (stage mode) */
	int dir_fd;
	const char *dir_path; /* for messages */
	const struct chunk_identity *id;
	uint8_t *staging; /* 4096-aligned; see chunk_writer_staging_min */
	size_t staging_bytes;
	uint64_t chunk_bytes_max;    /* rotate to a new part beyond this much block data */
	uint32_t record_value_max;   /* largest value that can arrive */
	bool direct;		     /* use O_DIRECT (stage mode); falls back if refused */
	struct chunk_upload *upload; /* stage mode: objects instead of files (started) */
	void (*on_file_done)(void *arg, const struct chunk_file_done *done);
	void *arg;
};

enum { CHUNK_WRITER_FILES = 2 };

struct cw_file {
	int state; /* enum cw_file_state in chunk_writer.c */
	int fd;
	uint32_t job, part;
	int dir_fd;    /* where it is written and renamed */
	bool ends_job; /* the job ended: the last of its files to finish reports it */
	const char *dir_path;
	uint32_t blocks; /* closed blocks */
	uint64_t records, key_bytes, value_bytes;
	uint32_t crc; /* running crc32c over the on-disk bytes so far */
	uint32_t inflight;
	uint64_t end_offset; /* where the footer goes, once known */
	uint32_t last_block_bytes;
	uint8_t *header_page; /* in staging; registered */
	uint8_t *footer_page;
	char temp_name[CHUNK_NAME_MAX];
};

struct chunk_writer {
	struct chunk_writer_opts o;
	int error; /* sticky -errno; nothing more is written once set */
	char error_msg[256];
	bool direct_ok;
	struct cw_file files[CHUNK_WRITER_FILES];
	struct cw_file *cur; /* file being filled, or NULL between jobs */
	uint32_t job;
	uint32_t next_part;

	/* the open block */
	bool blk_open;
	uint64_t blk_abs; /* stage: absolute staging block number */
	uint32_t blk_used, blk_cont, blk_count, blk_flags;
	uint32_t blk_crc; /* crc32c of the payload so far */
	uint32_t payload_max, span_threshold;

	/* stage mode: ring of units of MCW_WRITE_UNIT_BLOCKS blocks */
	uint8_t *blocks_base;
	uint32_t nblocks, nunits;
	uint64_t unit_submitted; /* absolute unit number of the next unit to submit */
	struct cw_unit {
		bool busy;
		struct cw_file *file;
		uint32_t first_block, nblocks;
		uint64_t len;
	} * units;

	/* object backend: the writes waiting to be copied into part buffers, in order */
	struct cw_obj_op {
		const uint8_t *p;
		uint32_t len;
		unsigned slot;
		uint64_t ud; /* the completion it stands for (CW_UD) */
	} * obj_ops;
	uint32_t obj_cap, obj_head, obj_n;
	uint32_t obj_off;  /* bytes of the first op already taken */
	uint64_t obj_wake; /* the eventfd's read lands here */
	bool obj_armed;

	/* writev mode: one epoch of iovecs and copied metadata, flushed as a whole */
	struct iovec *iov;
	uint32_t iov_cap, iov_used, iov_block_first; /* first iovec of the open block */
	uint8_t *meta;
	size_t meta_cap, meta_used;
	uint32_t writev_inflight;
	uint32_t epoch_first_iov; /* iovecs before this are submitted */
	uint64_t epoch_file_off;  /* file offset of iov[epoch_first_iov] */
	struct cw_file *epoch_file;
};

/* Staging memory the writer needs for records of up to value_max bytes. */
size_t chunk_writer_staging_min(enum chunk_write_mode mode, uint32_t value_max);

/* Sets the writer up over the lent memory. 0 or -EINVAL (staging too small). */
int chunk_writer_init(struct chunk_writer *w, const struct chunk_writer_opts *o);

/* Where the next job's files go (between jobs; a file stays where it was begun). */
void chunk_writer_set_dir(struct chunk_writer *w, int dir_fd, const char *dir_path);

/* Starts the files of a job (part 0). The previous job must have ended. */
int chunk_writer_begin(struct chunk_writer *w, uint32_t job);

/* Adds a record. 0; -EAGAIN when there is no room until writes complete (reap, call
 * chunk_writer_complete, retry); other -errno: the writer failed (see error_msg). */
int chunk_writer_add(struct chunk_writer *w, const struct chunk_rec *r);

/* Ends the job: its last file is closed and finishes in the background; the last of its
 * files to get its final name is reported with job_end. Returns 1 when the job wrote no
 * file (nothing will be reported: it is complete now), 0, or -errno. */
int chunk_writer_end(struct chunk_writer *w);

/* writev mode: submits every staged iovec (closing the open block early) so that the
 * caller's memory is released once they complete. A no-op in stage mode. */
int chunk_writer_flush(struct chunk_writer *w);
bool chunk_writer_holds_refs(const struct chunk_writer *w);

/* True if the completion belongs to a writer; then it must go to chunk_writer_complete. */
bool chunk_writer_owns(uint64_t user_data);
int chunk_writer_complete(struct chunk_writer *w, const struct ur_cqe *cqe);

/* Nothing in flight and no file finishing. */
bool chunk_writer_idle(const struct chunk_writer *w);

/* Closes and removes the temporary files of an aborted run (best effort). */
void chunk_writer_abandon(struct chunk_writer *w);

/* Frees what init allocated. Safe on a writer that init never touched (zeroed). */
void chunk_writer_release(struct chunk_writer *w);

#endif
