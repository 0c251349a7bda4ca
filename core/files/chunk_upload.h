/*
 * chunk_upload.h: the object backend of the chunk writer (dump --out s3://, issue 15).
 * A chunk file becomes one multipart upload, fed from the writer's staging units without
 * a file on disk. One uploader per worker: the worker copies finished staging units into
 * part buffers (MCW_S3_PART_BUFS of MCW_S3_PART_BYTES, lent from the budget) and hands a
 * full buffer to the uploader's own thread, which does the blocking HTTP (libcurl) so the
 * worker's ring loop never waits on the network. Hand-offs and answers go through two
 * bounded queues (MCW_S3_JOBS_MAX); the thread wakes the worker's ring through an eventfd
 * that the writer keeps a read armed on.
 *
 * Object names under the prefix (docs/format.md): a file is uploaded to
 * PREFIX.mcwarm/tmp/<temporary chunk name>, completed, copied server-side to
 * PREFIX<final chunk name> (the name carries the file crc, known only at the end) and the
 * temporary object deleted. Every upload begun is journaled (journal_fd: crc lines
 * "upload KEY ID", then "done ID" once completed) so that a later run can end the ones a
 * killed run left (chunk_upload_discard).
 *
 * Threads: chunk_upload_open/_write/_close/_reap/_stop are the worker's; the rest of the
 * struct is the uploader thread's, but for the queues (mutex) and the stats (atomics).
 */
#ifndef MCW_CHUNK_UPLOAD_H
#define MCW_CHUNK_UPLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_format.h"
#include "objstore.h"
#include "ratelimit.h"

enum { CHUNK_UPLOAD_SLOTS = 2 }; /* = CHUNK_WRITER_FILES: files open at once per writer */

struct chunk_upload_opts {
	const struct objs_config *cfg;
	const char *bucket;
	const char *prefix;	    /* "" or ending in '/' */
	uint8_t *part_mem;	    /* MCW_S3_PART_BUFS * MCW_S3_PART_BYTES, lent */
	struct rate_limits *limits; /* --max-bytes paces the parts too; NULL: none */
	int journal_fd;		    /* this uploader's journal of uploads begun */
	unsigned id;		    /* worker number, for the thread's name */
};

enum cu_kind { CU_CREATE, CU_PART, CU_FINISH };

struct cu_job {
	enum cu_kind kind;
	unsigned slot, buf;
	size_t len;
	char name[CHUNK_NAME_MAX]; /* CREATE: temporary name; FINISH: final name */
	int res;		   /* in an answer: 0 or -errno */
};

/* What the worker learns from chunk_upload_reap: an object finished (res 0) or failed. */
struct chunk_upload_event {
	unsigned slot;
	int res;
};

struct chunk_upload {
	struct chunk_upload_opts o;
	int efd; /* eventfd: the thread's answers are waiting */
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cu_job todo[MCW_S3_JOBS_MAX], done[MCW_S3_JOBS_MAX];
	unsigned todo_head, todo_n, done_head, done_n;
	bool stop, discard;

	/* the worker's side */
	bool buf_busy[MCW_S3_PART_BUFS];
	int fill; /* buffer being filled, -1: none */
	size_t fill_len;
	unsigned fill_slot;

	/* the thread's side: one upload per slot */
	struct cu_slot {
		char key[OBJS_KEY_MAX_BYTES + 1];
		char upload_id[OBJS_UPLOAD_ID_MAX_BYTES];
		bool open; /* created, not completed */
		unsigned nparts;
		struct objs_part parts[MCW_S3_FILE_PARTS_MAX];
	} slots[CHUNK_UPLOAD_SLOTS];
	struct objs_client client;
	char *scratch;
	struct rate_bucket bucket;

	/* the first failure, for the worker (under mu) */
	enum objs_class err_cls;
	bool err_local; /* the upload journal failed, not the store */
	char err_text[1200];

	struct chunk_upload_stats {
		atomic_uint_fast64_t parts, bytes, retries, rate_wait_ns;
	} st;
};

/* Sets up the uploader (its client, eventfd and thread). Worker thread, after the main
 * thread made its own objs_client (libcurl's global init). 0 or -errno (err_text says). */
int chunk_upload_start(struct chunk_upload *u, const struct chunk_upload_opts *o);

/* The eventfd to keep a read armed on. */
int chunk_upload_fd(const struct chunk_upload *u);

/* Worker: begins the object of a file in slot (temp_name: chunk_name_temp). */
void chunk_upload_open(struct chunk_upload *u, unsigned slot, const char *temp_name);
/* Worker: appends bytes of the slot's file. Returns how many were taken (copied): fewer
 * than n when both part buffers are on their way up (wait for an event, call again). */
size_t chunk_upload_write(struct chunk_upload *u, unsigned slot, const void *p, size_t n);
/* Worker: the slot's file is whole: its last part goes up, the upload is completed and
 * the object gets final_name. An event tells when. */
void chunk_upload_close(struct chunk_upload *u, unsigned slot, const char *final_name);
/* Worker: takes the thread's answers (frees part buffers); fills at most max events
 * (ends and failures of files). Returns the count. */
unsigned chunk_upload_reap(struct chunk_upload *u, struct chunk_upload_event *ev, unsigned max);
/* The first failure's class and text (OBJS_OK when none); *local (may be NULL): a local
 * file failed (the upload journal), not the store. */
enum objs_class chunk_upload_error(struct chunk_upload *u, char *text, size_t cap, bool *local);

/* Stops the thread; discard: the unfinished uploads are ended first (best effort;
 * the journal keeps what could not be). Safe on a never-started uploader (zeroed). */
void chunk_upload_stop(struct chunk_upload *u, bool discard);

/* Ends an unfinished upload so that nothing is left to bill: abort, or where the store
 * cannot abort (s3rver), complete it with one empty part and delete the object. An upload
 * that no longer exists is fine. 0 or -errno (c's last error says). */
int chunk_upload_discard(struct objs_client *c, const char *bucket, const char *key,
			 const char *upload_id);

#endif
