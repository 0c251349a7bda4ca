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
#include "capacity.h"
#include "checkpoint.h"
#include "chunk_writer.h"
#include "cli.h"
#include "core.h"
#include "dedupe.h"
#include "keyfilter.h"
#include "metrics.h"
#include "keyspool.h"
#include "mcproto.h"
#include "net.h"
#include "ratelimit.h"
#include "run.h"
#include "server.h"

enum key_dump_kind { KEYS_HASH, KEYS_ALL };

/* The engine runs two kinds of job over the same key listing. */
enum run_kind {
	RUN_DUMP,   /* values into chunk files */
	RUN_VERIFY, /* values of the source compared with the destination's */
	RUN_STREAM, /* values of the source written into the destination */
};

#define VERIFY_MISMATCHES_MAX 100

struct dump_opts {
	struct cli_common co; /* memory, threads, io-timeout, json, quiet */
	enum run_kind kind;
	struct hostport source;
	struct hostport dest;	 /* verify */
	uint64_t sample;	 /* verify: about this many keys (0: all) */
	int64_t ttl_slack_s;	 /* verify */
	double min_ratio;	 /* verify */
	unsigned mismatches_max; /* verify: listed in the report */
	const char *out_dir;
	enum key_dump_kind crawl;
	bool try_mgdump;
	int64_t min_ttl_s;
	enum chunk_write_mode write_mode;
	bool direct;
	uint64_t chunk_bytes;
	bool keep_spool;
	unsigned syncfs_interval_s; /* 0: never */
	struct keyfilter_opts filter;
	enum mcp_ms_mode ms_mode;    /* stream */
	struct mcw_copy_allow allow; /* stream: --allow-shrink, --allow-smaller-items */
};

struct dump_stats {
	atomic_uint_fast64_t keys_listed;	   /* lines the key dump produced */
	atomic_uint_fast64_t keys_duplicate;	   /* listed again, dropped */
	atomic_uint_fast64_t keys_unchecked;	   /* kept without a duplicate check (table full) */
	atomic_uint_fast64_t keys_expired;	   /* expired or below --min-ttl at listing */
	atomic_uint_fast64_t keys_filtered_prefix; /* --key-include / --key-exclude */
	atomic_uint_fast64_t keys_filtered_ring;   /* another node's, or not moved */
	atomic_uint_fast64_t keys_unsendable;	   /* cannot be named in a meta request */
	atomic_uint_fast64_t keys_queued;	   /* written to key chunks */
	atomic_uint_fast64_t keys_fetched;	   /* asked for with mg, answered */
	atomic_uint_fast64_t items;		   /* records written */
	atomic_uint_fast64_t items_resumed;	   /* of those, in files an earlier run finished */
	atomic_uint_fast64_t group_items[KEYFILTER_GROUPS_MAX]; /* records per output group */
	atomic_uint_fast64_t misses;				/* gone since the key dump */
	atomic_uint_fast64_t ttl_filtered;			/* below --min-ttl at fetch */
	atomic_uint_fast64_t value_bytes;
	atomic_uint_fast64_t file_bytes;
	atomic_uint_fast64_t files;
	atomic_uint_fast64_t server_errors; /* CLIENT_ERROR/SERVER_ERROR to an mg */
	atomic_uint_fast64_t busy_retries;
	atomic_uint_fast64_t jobs_done;
	/* verify outcomes */
	atomic_uint_fast64_t v_equal;
	atomic_uint_fast64_t v_missing;
	atomic_uint_fast64_t v_value;
	atomic_uint_fast64_t v_flags;
	atomic_uint_fast64_t v_ttl;
	atomic_uint_fast64_t v_expired; /* gone from the source since the listing */
	atomic_uint_fast64_t keys_unsampled;
	/* stream outcomes */
	atomic_uint_fast64_t s_present;	      /* NS: the destination had the key (add mode) */
	atomic_uint_fast64_t s_expired;	      /* expired before it could be sent */
	atomic_uint_fast64_t s_too_large;     /* over the destination's item size limit */
	atomic_uint_fast64_t s_out_of_memory; /* SERVER_ERROR out of memory to an ms */
};

struct verify_mismatch {
	char key[3 * MCP_KEY_MAX + 1]; /* percent-encoded */
	const char *outcome;
	char detail[128];
};

struct dump_worker {
	unsigned id;
	int cpu;
	struct dump_ctx *ctx;
	pthread_t thread;
	int fd;	    /* connection to the source */
	int dst_fd; /* verify: connection to the destination */
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
	struct server_info dst;	   /* verify */
	uint64_t sample_threshold; /* verify: keys whose hash64 is below it are checked */
	struct verify_mismatch mismatches[VERIFY_MISMATCHES_MAX];
	unsigned nmismatches; /* under mu */
	struct chunk_identity id;
	char dump_id_hex[33];
	int out_fd;
	int group_fd[KEYFILTER_GROUPS_MAX]; /* where each group's files go (out_fd if one) */
	char group_path[KEYFILTER_GROUPS_MAX][PATH_MAX];
	struct keyfilter kf;
	bool filter_on;
	size_t filter_bytes; /* the rings, from the budget */
	int spool_fd;
	char spool_path[PATH_MAX];
	struct budget budget;

	/* key reader */
	pthread_t keys_thread;
	int keys_fd;
	uint8_t *kr_recv;
	size_t kr_recv_bytes;
	uint8_t *kr_stage[2];
	uint8_t *kr_group[KEYFILTER_GROUPS_MAX]; /* each group's key chunk being built */
	size_t kr_group_bytes;
	struct dedupe dedupe;
	const char *key_dump_cmd; /* what was actually run, for the summary */

	struct dump_worker workers[MCW_THREADS_MAX];
	unsigned nworkers;

	struct run_state run;  /* mutex, condition, first failure, threads running */
	uint32_t chunks_ready; /* key chunks [0, chunks_ready) are on disk */
	uint32_t next_job;     /* next key chunk to hand to a worker */
	bool keys_done;	       /* the key dump ended and its last chunk is published */

	struct rate_limits limits; /* --max-ops, --max-bytes, --limits-file */
	struct checkpoint ckpt;	   /* dump: what is finished (resume.c) */
	bool ckpt_on;		   /* dump: the checkpoint is being written */
	bool resuming;		   /* dump: continuing an unfinished dump */
	bool keys_listed_before;   /* dump: resumed after its listing ended: no key reader */
	bool already_complete;	   /* dump: the directory holds a finished dump */
	struct dump_stats st;
	struct cap_watch watch; /* stream: the destination's evictions */
	struct metrics metrics; /* --metrics-file */
	bool watch_on;
	int64_t start_mono_ns;
	int64_t keys_done_mono_ns;
};

/* resume.c. The options that shape a dump's content, as a crc (the checkpoint's). */
uint32_t dump_options_crc(const struct dump_opts *o);
/* The output directory holds .mcwarm/checkpoint: continue that dump (or refuse, or wipe
 * it and start over). 0 or an exit code. */
int resume_prepare(struct dump_ctx *c);
/* Removes every chunk file, key chunk and the checkpoint of an earlier run. */
int resume_wipe(struct dump_ctx *c);
/* A resumed listing: loads the keys of finished jobs into the dedupe table. */
int resume_load_dedupe(struct dump_ctx *c);
/* A job's files all have their final names: record it. */
void engine_job_done(struct dump_ctx *c, uint32_t job);

/* --crawl hash|all, for dump and verify: 0 or the usage exit code. */
int crawl_option(const char *cmd, const char *arg, enum key_dump_kind *out);
/* The options dump, verify and stream share (key filters, then cli_common_option): 0, or
 * an exit code. */
int engine_shared_option(const char *cmd, int ch, const char *arg, struct dump_opts *o);

/* Loads key chunk seq into the worker's key input (key offsets first): the pipes then
 * name keys by index. false if the dump failed (reported). */
bool engine_load_keys(struct dump_ctx *c, struct dump_worker *w, uint32_t seq,
		      struct keychunk_view *kv, uint32_t **key_off, uint32_t *nkeys);

/* The first failure wins and wakes every thread (run.h). */
#define dump_fail(c, ...) run_fail(&(c)->run, __VA_ARGS__)
#define dump_failed(c)	  run_failed(&(c)->run)

/* Next key chunk for a worker, or -1 when none is left (or the run failed); with wait,
 * sleeps until one is published. Without wait, -2 means none yet but more to come. */
int64_t engine_take_job(struct dump_ctx *c, bool wait);

/* How long a worker may wait for completions: the I/O timeout, or less when a rate-limited
 * batch may go at wake_ns (0: none held back). */
int engine_wait_ms(const struct dump_ctx *c, int64_t wake_ns);

/* stream.c. Before a stream sends: not the same server, the destination's item size
 * limit and memory against the source's stats; then watches its evictions. 0 or an exit
 * code (reported). */
int stream_preflight(struct dump_ctx *c);

/* Thread bodies. */
void *keyreader_main(void *arg);
void *dump_worker_main(void *arg);
void *verify_worker_main(void *arg);
void *stream_worker_main(void *arg);

/* The engine shared by dump and verify: probes, plans the budget, spools keys, runs the
 * threads, shows progress. Returns an exit code; results stay in the context. */
int engine_run(struct dump_ctx *c);
void engine_init(struct dump_ctx *c);
void engine_release(struct dump_ctx *c);
/* A --metrics-file snapshot: phase "running" while workers run, then metrics_phase_of
 * the command's exit code. */
void engine_metrics(struct dump_ctx *c, const char *phase);

/* Budget split for `threads` workers (dump.c); exposed for tests. */
struct dump_plan {
	size_t worker_net_bytes;  /* send slots + receive */
	size_t worker_disk_bytes; /* key input + staging */
	size_t kr_recv_bytes;
	size_t kr_group_bytes; /* per group */
	size_t dedupe_bytes;
	size_t total_bytes;
};
struct dump_plan_in {
	enum run_kind kind;
	uint64_t budget_bytes;
	unsigned threads;
	uint64_t item_size_max;
	enum chunk_write_mode mode;
	unsigned groups;     /* output groups (key chunks built at once) */
	size_t filter_bytes; /* the key filter's rings */
	bool tls;	     /* a side is TLS: each pipe needs MCW_TLS_PIPE_BYTES more */
};
int dump_plan_compute(const struct dump_plan_in *in, struct dump_plan *out, char *err, size_t cap);

#endif
