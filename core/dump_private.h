/*
 * dump_private.h: state shared by the parts of `mcwarm dump`: the orchestrator (dump.c),
 * the key reader thread (keyreader.c) and the value workers (dump_worker.c).
 *
 * Coordination is one mutex and one condition variable: the key reader publishes key
 * chunks in order (chunks_ready), workers take them in order (next_job), the first
 * failure wins (dump_fail) and wakes everyone. Counters are atomics, read by the progress
 * display without the lock.
 */
#ifndef MCW_DUMP_PRIVATE_H
#define MCW_DUMP_PRIVATE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "budget.h"
#include "chunk_writer.h"
#include "core.h"
#include "dedupe.h"
#include "net.h"
#include "server.h"

enum key_dump_kind { KEYS_HASH, KEYS_ALL };

struct dump_opts {
	struct hostport source;
	const char *out_dir;
	uint64_t memory_bytes;
	unsigned threads;
	enum key_dump_kind crawl;
	bool try_mgdump;
	int64_t min_ttl_s;
	enum chunk_write_mode write_mode;
	bool direct;
	uint64_t chunk_bytes;
	int io_timeout_ms;
	bool json;
	bool quiet;
	bool keep_spool;
};

struct dump_stats {
	atomic_uint_fast64_t keys_listed;     /* lines the key dump produced */
	atomic_uint_fast64_t keys_duplicate;  /* listed again, dropped */
	atomic_uint_fast64_t keys_unchecked;  /* kept without a duplicate check (table full) */
	atomic_uint_fast64_t keys_expired;    /* expired or below --min-ttl at listing */
	atomic_uint_fast64_t keys_unsendable; /* cannot be named in a meta request */
	atomic_uint_fast64_t keys_queued;     /* written to key chunks */
	atomic_uint_fast64_t keys_fetched;    /* asked for with mg, answered */
	atomic_uint_fast64_t items;	      /* records written */
	atomic_uint_fast64_t misses;	      /* gone since the key dump */
	atomic_uint_fast64_t ttl_filtered;    /* below --min-ttl at fetch */
	atomic_uint_fast64_t value_bytes;
	atomic_uint_fast64_t file_bytes;
	atomic_uint_fast64_t files;
	atomic_uint_fast64_t server_errors; /* CLIENT_ERROR/SERVER_ERROR to an mg */
	atomic_uint_fast64_t busy_retries;
	atomic_uint_fast64_t jobs_done;
};

struct dump_worker {
	unsigned id;
	int cpu;
	struct dump_ctx *ctx;
	pthread_t thread;
	int fd; /* connection to the source */
	struct ur_ring *ring;
	struct chunk_writer cw;
	uint8_t *net_buf; /* send slots, then the receive area */
	size_t net_bytes;
	uint8_t *disk_buf; /* key chunk input, then writer staging */
	size_t disk_bytes;
};

struct dump_ctx {
	struct dump_opts o;
	struct server_info src;
	struct chunk_identity id;
	char dump_id_hex[33];
	int out_fd;
	int spool_fd;
	char spool_path[PATH_MAX];
	struct budget budget;

	/* key reader */
	pthread_t keys_thread;
	int keys_fd;
	uint8_t *kr_recv;
	size_t kr_recv_bytes;
	uint8_t *kr_stage[2];
	struct dedupe dedupe;
	const char *key_dump_cmd; /* what was actually run, for the summary */

	struct dump_worker workers[MCW_THREADS_MAX];
	unsigned nworkers;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint32_t chunks_ready; /* key chunks [0, chunks_ready) are on disk */
	uint32_t next_job;     /* next key chunk to hand to a worker */
	bool keys_done;	       /* the key dump ended and its last chunk is published */
	bool failed;
	int exit_code;
	char error[1024];
	unsigned threads_running;

	struct dump_stats st;
	int64_t start_mono_ns;
	int64_t keys_done_mono_ns;
};

/* Records the first failure (later ones are dropped), sets the exit code and wakes every
 * thread so it can stop. */
void dump_fail(struct dump_ctx *c, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool dump_failed(struct dump_ctx *c);

/* Thread bodies. */
void *keyreader_main(void *arg);
void *dump_worker_main(void *arg);

/* Budget split for `threads` workers (dump.c); exposed for tests. */
struct dump_plan {
	size_t worker_net_bytes;  /* send slots + receive */
	size_t worker_disk_bytes; /* key input + staging */
	size_t kr_recv_bytes;
	size_t dedupe_bytes;
	size_t total_bytes;
};
int dump_plan_compute(uint64_t budget_bytes, unsigned threads, uint64_t item_size_max,
		      enum chunk_write_mode mode, struct dump_plan *out, char *err, size_t cap);

#endif
