/*
 * populate_private.h: state shared by `mcwarm populate`'s orchestrator (populate.c) and
 * its workers (populate_worker.c).
 *
 * The orchestrator runs passes: it lists the dump directory, queues the chunk files the
 * journal does not mark done (in job/part order), and waits until the workers have taken
 * and finished them all. Workers persist across passes; each owns an io_uring, a
 * connection to the destination and two read buffers.
 */
#ifndef MCW_POPULATE_PRIVATE_H
#define MCW_POPULATE_PRIVATE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "budget.h"
#include "capacity.h"
#include "cli.h"
#include "core.h"
#include "journal.h"
#include "metrics.h"
#include "ratelimit.h"
#include "mcproto.h"
#include "net.h"
#include "objstore.h"
#include "run.h"
#include "server.h"
#include "uring.h"

/* populate's limits (POP_*) are in mcw_limits.h */

struct pop_opts {
	struct cli_common co; /* memory, threads, io-timeout, json, quiet */
	struct hostport dest;
	const char *from_dir; /* as given: a directory or s3://BUCKET/PREFIX */
	bool from_s3;
	struct objs_url url; /* from_s3: the bucket, and the prefix ending in '/' (or empty) */
	uint32_t shard_i, shard_n; /* --shard I/N; N 1: every file */
	const char *state_dir;
	bool follow;
	enum mcp_ms_mode mode;
	int64_t min_ttl_s;
	int reconnect_timeout_ms;
	int idle_timeout_s;
	bool direct;
	struct mcw_copy_allow allow; /* --allow-shrink, --allow-smaller-items */
};

struct pop_stats {
	atomic_uint_fast64_t files_done;
	atomic_uint_fast64_t files_partial;   /* applied except damaged or missing blocks */
	atomic_uint_fast64_t blocks_bad;      /* checksum or structure */
	atomic_uint_fast64_t blocks_missing;  /* cut off (truncated file) */
	atomic_uint_fast64_t records_lost;    /* in or across damaged blocks */
	atomic_uint_fast64_t records_sent;    /* ms sent and answered */
	atomic_uint_fast64_t already_present; /* NS: live data won (add mode) */
	atomic_uint_fast64_t expired;	      /* expired before it could be sent */
	atomic_uint_fast64_t too_large;	      /* over the destination's item size */
	atomic_uint_fast64_t server_errors;   /* SERVER_ERROR answers: not stored */
	atomic_uint_fast64_t out_of_memory;   /* of those, "out of memory" */
	atomic_uint_fast64_t reconnects;
	atomic_uint_fast64_t value_bytes;
	atomic_uint_fast64_t files_skipped;   /* unusable: another dump, not a regular file */
	atomic_uint_fast64_t files_not_whole; /* no valid footer before DONE: next pass */
};

struct pop_task {
	uint32_t job, part, crc; /* 12 bytes: POP_QUEUE_MAX of them are in the budget */
};

/* --shard: the file's number j (its job plus its part) modulo N. Both are in the chunk's
 * name from the moment it exists, so a file's shard never changes as the listing grows,
 * and a job's consecutive parts go to consecutive populators. */
static inline bool pop_in_shard(const struct pop_opts *o, uint32_t job, uint32_t part)
{
	return ((uint64_t)job + part) % o->shard_n == o->shard_i;
}

/* populate_fetch.c: a worker's fetch thread (--from s3://). */
enum pop_fetch_kind { POP_FETCH_ENDS, POP_FETCH_RANGE };
enum pop_fetch_state { POP_FETCH_FREE, POP_FETCH_QUEUED, POP_FETCH_RUNNING, POP_FETCH_DONE };

struct pop_fetch_req {
	enum pop_fetch_state state;
	enum pop_fetch_kind kind;
	unsigned tag; /* the worker's: a read buffer, or a file slot */
	uint64_t seq; /* order of submission: answers are taken in it */
	char key[OBJS_KEY_MAX_BYTES + 1];
	uint64_t size; /* ENDS: the object's size (a HEAD first), the footer page at its end */
	uint64_t off;  /* RANGE: the window's offset */
	void *buf;     /* RANGE: the window; ENDS: the header page */
	size_t len;    /* RANGE */
	void *foot;    /* ENDS: the footer page */
	/* the answer */
	int64_t res, res2; /* bytes (of buf, of foot) or -errno */
	enum objs_class cls;
	char err[1024];
};

struct pop_fetch {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool running, stop;
	uint64_t seq;
	int efd; /* written once per answer; the worker's ring reads it */
	const char *bucket;
	struct objs_client cl;
	struct pop_fetch_req req[POP_S3_FETCHES_MAX];
};

/* Starts the thread with its own client (scratch lent until pop_fetch_stop). 0 or -errno. */
int pop_fetch_start(struct pop_fetch *f, const struct objs_config *cfg, const char *bucket,
		    void *scratch, size_t scratch_bytes);
/* FREE: a slot to fill, then move to QUEUED (submitted); DONE: the oldest answer, then
 * move to FREE once taken. NULL: none. */
struct pop_fetch_req *pop_fetch_find(struct pop_fetch *f, enum pop_fetch_state st);
void pop_fetch_move(struct pop_fetch *f, struct pop_fetch_req *r, enum pop_fetch_state to);
/* Stops the thread (after the request under way) and frees what start took. */
void pop_fetch_stop(struct pop_fetch *f);

struct pop_worker {
	unsigned id;
	int cpu;
	struct pop_ctx *ctx;
	pthread_t thread;
	int fd;
	uint8_t *read_buf[2];
	size_t read_bytes;
	uint8_t *send_area; /* batches: records, pieces, headers, iovecs */
	size_t send_bytes;
	uint8_t *recv_area; /* answers (then, for TLS, the ms pipe's MSPIPE_TLS_BYTES) */
	size_t recv_bytes;
	uint8_t *fetch_scratch; /* from_s3: the footer page, then its fetch thread's client's */
};

struct pop_ctx {
	struct pop_opts o;
	struct server_info dst; /* refreshed by workers on reconnect (under run.mu) */
	int from_fd;
	struct journal journal; /* appended by workers under run.mu */
	struct budget budget;
	char dump_id_hex[33];
	uint8_t dump_id[16];
	bool dump_id_known;
	bool dump_finished;	  /* DONE was there when this pass began */
	bool manifest_checked;	  /* the destination's capacity against the MANIFEST */
	bool complete;		  /* the MANIFEST is fully applied */
	struct cap_watch watch;	  /* the destination's evictions */
	struct objs_config s3cfg; /* from_s3: the AWS configuration */
	struct objs_client s3;	  /* from_s3: the orchestrator's (listings, DONE, MANIFEST) */
	/* the backlog (chunks of this shard listed, not applied yet), from each pass's listing
	 * less the files applied since; under run.mu */
	uint64_t chunks_listed, backlog;
	bool done_listed; /* DONE was there when this pass listed */
	int64_t backlog_written_ns;
	struct metrics metrics; /* --metrics-file */

	struct pop_worker workers[64];
	unsigned nworkers;

	struct run_state run; /* mutex, condition, first failure, threads running */
	struct pop_task *queue;
	uint32_t qlen, qnext;
	uint32_t busy; /* workers inside a file */
	bool stop;
	uint64_t progress;   /* bumped whenever a file finishes: --follow's idle clock */
	bool dest_restarted; /* a worker reconnected to a new destination process */

	struct rate_limits limits; /* --max-ops, --max-bytes, --limits-file */
	struct pop_stats st;
	int64_t start_mono_ns;
};

struct chunk_header;
struct manifest_info;
struct manifest_entry;

/* populate_check.c. The first final chunk file's valid header in the dump. */
bool pop_first_header(struct pop_ctx *c, struct chunk_header *h);
/* The dump's DONE and MANIFEST (manifest_load's contract), from the directory or store. */
long pop_manifest_load(struct pop_ctx *c, struct manifest_info *mi, struct manifest_entry **e,
		       char *err, size_t cap);

/* populate_s3.c: the store's side of the orchestrator (--from s3://). */
/* Reads the configuration and starts the orchestrator's client (scratch from the budget).
 * 0 or a cause (logged): mcw_store_cause of the configuration's class, or -errno. */
int pop_s3_open(struct pop_ctx *c, void *scratch, size_t scratch_bytes);
/* PREFIX/NAME, the key of a dump's object (NAME a chunk name, MANIFEST or DONE). */
void pop_s3_key(const struct pop_opts *o, const char *name, char key[OBJS_KEY_MAX_BYTES + 1]);
/* Lists the prefix: cb for every final chunk object, *done_out whether DONE is there.
 * 0, or the cause of a failure (mcw_store_cause, recorded with pop_fail). */
typedef void (*pop_s3_chunk_cb)(struct pop_ctx *c, const char *name, uint64_t size,
				const char *etag, void *arg);
int pop_s3_list(struct pop_ctx *c, pop_s3_chunk_cb cb, void *arg, bool *done_out);
long pop_s3_manifest_load(struct pop_ctx *c, struct manifest_info *mi, struct manifest_entry **e,
			  char *err, size_t cap);
bool pop_s3_first_header(struct pop_ctx *c, struct chunk_header *h);
/* Before sending: not the dump's source process; the MANIFEST's checks if it is there.
 * 0, or the refusal's cause (-EINVAL, -EOPNOTSUPP, -MCW_ETOOSMALL; recorded with
 * pop_fail). */
int pop_preflight(struct pop_ctx *c);
/* The destination's memory and item size limit against the MANIFEST (once): 0 or the
 * refusal's cause, recorded with pop_fail. */
int pop_check_manifest(struct pop_ctx *c, const struct manifest_info *mi);

#define pop_fail(c, ...) run_fail(&(c)->run, __VA_ARGS__)
#define pop_failed(c)	 run_failed(&(c)->run)
void *pop_worker_main(void *arg);
/* Bytes of one worker's send area (its batches). */
size_t pop_send_area_bytes(void);

#endif
