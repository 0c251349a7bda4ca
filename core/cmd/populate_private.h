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
#include "run.h"
#include "server.h"
#include "uring.h"

/* populate's limits (POP_*) are in mcw_limits.h */

struct pop_opts {
	struct cli_common co; /* memory, threads, io-timeout, json, quiet */
	struct hostport dest;
	const char *from_dir;
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
	uint32_t job, part, crc;
};

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
	bool dump_finished;	/* DONE was there when this pass began */
	bool manifest_checked;	/* the destination's capacity against the MANIFEST */
	bool complete;		/* the MANIFEST is fully applied */
	struct cap_watch watch; /* the destination's evictions */
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

/* populate_check.c. The first final chunk file's valid header in the directory. */
bool pop_first_header(int dir_fd, struct chunk_header *h);
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
