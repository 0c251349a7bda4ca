/*
 * engine.h: the engine that `dump`, `verify` and `stream` share, and the ops table of the
 * sinks that plug into it (as fio's ioengines plug into fio).
 *
 * The engine owns the run: options every command has, the probe of the source, the memory
 * budget and every worker's buffer layout (engine_plan_compute), the key spool and the key
 * reader thread (keyreader.c), the job queue (one job per key chunk), the checkpoint
 * plumbing, the value workers' loop (engine_worker.c: a pipelined mg pipe on the source
 * per worker), progress, metrics and the first failure of the run. A sink owns where fetched
 * values go, its own options, counters, connections and report:
 *   dump   (dump_sink.c)  values into chunk files through a chunk writer
 *   verify (verify.c)     values compared with a second mg pipe on the destination
 *   stream (stream.c)     values written into the destination with pipelined ms
 * The engine never asks which command runs; it calls the sink's operations.
 *
 * Coordination is one mutex and one condition variable (struct run_state): the key reader
 * publishes key chunks in order (chunks_ready), workers take them in order (next_job), the
 * first failure wins (engine_fail) and wakes everyone. Counters are atomics, read by the
 * progress display without the lock.
 */
#ifndef MCW_ENGINE_H
#define MCW_ENGINE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "budget.h"
#include "checkpoint.h"
#include "chunk_writer.h"
#include "cli.h"
#include "core.h"
#include "dedupe.h"
#include "keyfilter.h"
#include "keyspool.h"
#include "mcproto.h"
#include "metrics.h"
#include "mgpipe.h"
#include "net.h"
#include "ratelimit.h"
#include "run.h"
#include "server.h"

enum key_dump_kind { KEYS_HASH, KEYS_ALL };

/* What every command of the engine takes on its command line. */
struct engine_opts {
	struct cli_common co; /* memory, threads, io-timeout, json, quiet, limits, metrics */
	struct hostport source;
	const char *dir; /* where the key spool goes: dump's --out, else --work */
	enum key_dump_kind crawl;
	bool try_mgdump;
	int64_t min_ttl_s; /* keys with less TTL left are not listed (sinks may look again) */
	struct keyfilter_opts filter;
};

/* Counters of the key listing and the fetching; a sink counts its own outcomes. */
struct engine_stats {
	atomic_uint_fast64_t keys_listed;	   /* lines the key dump produced */
	atomic_uint_fast64_t keys_duplicate;	   /* listed again, dropped */
	atomic_uint_fast64_t keys_unchecked;	   /* kept without a duplicate check (table full) */
	atomic_uint_fast64_t keys_expired;	   /* expired or below --min-ttl at listing */
	atomic_uint_fast64_t keys_filtered_prefix; /* --key-include / --key-exclude */
	atomic_uint_fast64_t keys_filtered_ring;   /* another node's, or not moved */
	atomic_uint_fast64_t keys_unsampled;	   /* beyond sample_threshold */
	atomic_uint_fast64_t keys_unsendable;	   /* cannot be named in a meta request */
	atomic_uint_fast64_t keys_queued;	   /* written to key chunks */
	atomic_uint_fast64_t keys_fetched;	   /* asked for with mg, answered */
	atomic_uint_fast64_t items;		   /* taken by the sink: written, sent or checked */
	atomic_uint_fast64_t value_bytes;	   /* of those items */
	atomic_uint_fast64_t misses;		   /* gone since the key dump */
	atomic_uint_fast64_t server_errors;	   /* CLIENT_ERROR/SERVER_ERROR answers */
	atomic_uint_fast64_t busy_retries;
	atomic_uint_fast64_t jobs_done;
};

/*
 * Every worker's two budget buffers, cut once by engine_plan_compute. A slice is an
 * offset and a length inside its buffer:
 *   net  = [ send slots | receive ]                         (the source's mg pipe)
 *   disk = [ key offsets | key chunk input | sink part 0 | sink part 1 | ... ]
 * Sink parts are what the sink asked for (engine_sink_need): each has a minimum; the
 * parts marked grow share what the buffer has beyond the minimums, evenly.
 */
#define ENGINE_SINK_PARTS_MAX 3

struct engine_slice {
	size_t off;
	size_t bytes;
};

struct engine_sink_need {
	unsigned nparts;
	struct {
		const char *name; /* for messages and the budget table */
		size_t min_bytes; /* a multiple of 64 KiB */
		bool grow;	  /* takes a share of what is left */
	} part[ENGINE_SINK_PARTS_MAX];
};

struct engine_layout {
	size_t net_bytes;				 /* each worker's network buffer */
	size_t disk_bytes;				 /* each worker's disk buffer */
	struct engine_slice send_slots, recv;		 /* in net */
	struct engine_slice key_off, key_in;		 /* in disk */
	struct engine_slice sink[ENGINE_SINK_PARTS_MAX]; /* in disk, as the sink asked */
	unsigned nsink;
};

/* The budget split for `threads` workers; exposed for tests. */
struct engine_plan {
	struct engine_layout worker; /* the same for every worker */
	size_t kr_recv_bytes;
	size_t kr_group_bytes; /* per group */
	size_t dedupe_bytes;
	size_t total_bytes;
};
struct engine_plan_in {
	bool tls; /* the source is TLS: its pipe needs MCW_TLS_PIPE_BYTES more */
	uint64_t budget_bytes;
	unsigned threads;
	uint64_t item_size_max; /* the largest item either side can hold */
	struct engine_sink_need sink;
	unsigned groups;     /* output groups (key chunks built at once) */
	size_t filter_bytes; /* the key filter's rings */
	bool dedupe;	     /* the key walk can repeat keys: the rest of the budget is the
			      * dedupe table (else it is left unused) */
};
/* 0, or -ENOMEM with err naming the --memory size that is enough (or that none is). */
int engine_plan_compute(const struct engine_plan_in *in, struct engine_plan *out, char *err,
			size_t cap);

struct engine;

/* One value worker: its thread, ring, connection to the source and buffer slices. */
struct engine_worker {
	unsigned id;
	int cpu;
	struct engine *e;
	pthread_t thread;
	int fd; /* connection to the source */
	struct ur_ring *ring;
	uint8_t *net_buf, *disk_buf; /* the budget buffers, cut by e->plan.worker */
	uint32_t *key_off;	     /* key offsets of the job's key chunk */
	uint8_t *key_in;	     /* the job's key chunk */
	uint8_t *sink_part[ENGINE_SINK_PARTS_MAX];
	size_t sink_part_bytes[ENGINE_SINK_PARTS_MAX];
	void *sink; /* the sink's worker state (worker_open) */
	/* the job (engine_worker.c) */
	struct mgpipe pipe; /* mg on the source */
	struct keychunk_view kv;
	int64_t last_io_ns; /* the last completion: silence is measured from it */
	bool blocked;	    /* the sink kept the reply at the front (-EAGAIN) */
};

/*
 * A sink. Calls in order: need, prepare, start (main thread, after the budget);
 * worker_open per worker (main thread); worker_init, then per job job_begin, on_value /
 * kick / on_cqe until job_idle, job_end, and finally worker_fini (worker thread); poll
 * and metrics while it runs; fini at release. NULL operations do nothing (predicates:
 * true; wake_ns: 0; metric_items: st.items).
 */
struct engine_sink_ops {
	const char *name;	 /* "dump": metrics, messages */
	const char *thread_name; /* "mcw-worker": the workers are thread_name-N */
	const char *verb, *onto; /* "dumping", "into": the start line */
	bool src_quiet;		 /* mg ... q on the source: misses are silent */
	const char *peer;	 /* "the destination": whom awaiting() waits for */
	/* The parts of each worker's disk buffer the sink needs for items of item_size_max. */
	void (*need)(const struct engine *e, uint64_t item_size_max, struct engine_sink_need *need);
	/* After the source was probed: the sink's own checks, connections and directory
	 * (engine_make_spool). 0 or -errno (reported). */
	int (*prepare)(struct engine *e);
	/* After the budget: 0 or -errno (reported). */
	int (*start)(struct engine *e);
	/* Main thread, before the workers start: the sink's connections (w->sink is set
	 * here). 0 or -errno (reported). */
	int (*worker_open)(struct engine *e, struct engine_worker *w);
	/* Worker thread, its ring set up: buffers, writers, pipes. 0 or -errno. */
	int (*worker_init)(struct engine_worker *w);
	/* The source pipe's receive bytes already consumed may be overwritten (mgpipe). */
	bool (*recv_reusable)(void *sink_worker);
	/* A job starts on key chunk seq (keys of output group); false if it failed. */
	bool (*job_begin)(struct engine_worker *w, uint32_t seq, unsigned group);
	/* One reply of the source (MGPIPE_VALUE, or MGPIPE_MISS without src_quiet): 0 when
	 * taken, -EAGAIN to keep it until a completion of the sink's, other: failed. */
	int (*on_value)(struct engine_worker *w, enum mgpipe_next kind,
			const struct mcp_meta_reply *rep, uint32_t index);
	/* Starts what the sink can send; fetched: the source side of the job is done. */
	void (*kick)(struct engine_worker *w, bool fetched);
	/* A completion that is not the source pipe's. */
	void (*on_cqe)(struct engine_worker *w, const struct ur_cqe *cqe);
	bool (*awaiting)(struct engine_worker *w);   /* a server owes the sink an answer */
	int64_t (*wake_ns)(struct engine_worker *w); /* rate-limited until (0: no) */
	bool (*job_idle)(struct engine_worker *w);   /* the job's last item is through */
	void (*job_end)(struct engine_worker *w, uint32_t seq); /* counts in, files out */
	bool (*idle)(struct engine_worker *w); /* no background work between jobs */
	void (*worker_fini)(struct engine_worker *w, bool failed);
	/* Main thread, every progress interval. */
	void (*poll)(struct engine *e);
	uint64_t (*metric_items)(const struct engine *e);
	void (*metrics)(struct engine *e, struct metrics *m);
	void (*fini)(struct engine *e);
};

struct engine {
	struct engine_opts o;
	const struct engine_sink_ops *sink;
	void *sink_ctx; /* the command's context, for the sink's operations */
	struct server_info src;
	uint64_t item_size_max;	   /* of the budget plan: the source's, or more (prepare) */
	uint64_t sample_threshold; /* keys whose hash64 is at or above it are not listed */
	const char *target;	   /* for the start line: the output directory, ... */
	bool nothing_to_do;	   /* prepare found the work done before: no threads run */
	struct chunk_identity id;
	char dump_id_hex[33];
	int dir_fd;
	struct keyfilter kf;
	bool filter_on;
	size_t filter_bytes; /* the rings, from the budget */
	int spool_fd;
	char spool_path[PATH_MAX];
	struct budget budget;
	struct engine_plan plan;

	/* key reader */
	pthread_t keys_thread;
	int keys_fd;
	uint8_t *kr_recv;
	size_t kr_recv_bytes;
	uint8_t *kr_stage[2];
	uint8_t *kr_group[KEYFILTER_GROUPS_MAX]; /* each group's key chunk being built */
	size_t kr_group_bytes;
	struct dedupe dedupe;
	bool dedupe_on;		  /* engine_needs_dedupe: checked keys against the table */
	const char *key_dump_cmd; /* what was actually run, for the summary */

	struct engine_worker workers[MCW_THREADS_MAX];
	unsigned nworkers;

	struct run_state run;  /* mutex, condition, first failure, threads running */
	uint32_t chunks_ready; /* key chunks [0, chunks_ready) are on disk */
	uint32_t next_job;     /* next key chunk to hand to a worker */
	bool keys_done;	       /* the key dump ended and its last chunk is published */

	struct rate_limits limits; /* --max-ops, --max-bytes, --limits-file */
	struct checkpoint ckpt;	   /* what is finished (a sink that resumes turns it on) */
	bool ckpt_on;		   /* finished jobs are recorded in the checkpoint */
	bool resuming;		   /* continuing an unfinished run: skip finished jobs */
	bool keys_listed_before;   /* resumed after its listing ended: no key reader */
	struct engine_stats st;
	struct metrics metrics; /* --metrics-file */
	int64_t start_mono_ns;
	int64_t keys_done_mono_ns;
};

/* Whether keys are checked against the dedupe table (engine.c says why a hash walk is
 * not). Known once the sink's prepare has decided whether the run resumes. */
bool engine_needs_dedupe(const struct engine *e);

/* --crawl hash|all: 0 or the usage exit code. */
int crawl_option(const char *cmd, const char *arg, enum key_dump_kind *out);
/* The options every engine command takes (key filters, then cli_common_option): 0, or an
 * exit code. */
int engine_shared_option(const char *cmd, int ch, const char *arg, struct engine_opts *o);

/* Before a run: the context empty, the sink set. */
void engine_init(struct engine *e, const struct engine_sink_ops *sink, void *sink_ctx);
/* Probes, plans the budget, spools keys, runs the threads, shows progress. Returns 0 or
 * the cause of the run's first failure (-errno or -MCW_E*, reported; the command maps it
 * with mcw_exit_code); results stay in the context. */
int engine_run(struct engine *e);
void engine_release(struct engine *e);
/* A --metrics-file snapshot: phase "running" while workers run, then metrics_phase_of
 * the command's exit code. */
void engine_metrics(struct engine *e, const char *phase);

/* For a sink's prepare: connects to and probes a server (needs_dumps: also the crawler).
 * The connection, or -errno (reported; -EOPNOTSUPP: the server lacks what we need). */
int engine_probe(struct engine *e, const struct hostport *hp, struct server_info *si,
		 bool needs_dumps);
/* For a sink's prepare: probes the sink's destination (the workers connect later), plans
 * the budget for the larger item size of both and names it as the run's target. 0 or an
 * -errno (reported). */
int engine_probe_dest(struct engine *e, const struct hostport *hp, struct server_info *si);
/* Connects a worker's connection to hp into *fd: 0, or net_connect_cause (reported). */
int engine_connect(const struct hostport *hp, int *fd);
/* For a sink's prepare: dir_fd is open on o.dir; makes and opens the spool (o.dir/.mcwarm,
 * which may exist when resuming). 0 or -errno (reported). */
int engine_make_spool(struct engine *e, bool resuming);
/* Removes the key chunks, the checkpoint and the spool directory. */
void engine_remove_spool(struct engine *e);
/* For a sink that keeps nothing: a fresh directory under o.dir (--work) becomes o.dir,
 * with the spool in it. 0 or -errno (reported). */
int engine_make_work_dir(struct engine *e);
/* Removes what engine_make_work_dir made (if it did). */
void engine_remove_work_dir(struct engine *e);

/* The first failure (-errno or -MCW_E*, and its message) wins and wakes every thread
 * (run.h). */
#define engine_fail(e, ...) run_fail(&(e)->run, __VA_ARGS__)
#define engine_failed(e)    run_failed(&(e)->run)

/* Loads key chunk seq into the worker's key input (key offsets first): the pipes then
 * name keys by index. false if the run failed (reported). */
bool engine_load_keys(struct engine *e, struct engine_worker *w, uint32_t seq,
		      struct keychunk_view *kv, uint32_t *nkeys);
/* Next key chunk for a worker, or -1 when none is left (or the run failed); with wait,
 * sleeps until one is published. Without wait, -2 means none yet but more to come. */
int64_t engine_take_job(struct engine *e, bool wait);
/* A job's output is durable: record it in the checkpoint (when on). */
void engine_job_done(struct engine *e, uint32_t job);
/* How long a worker may wait for completions: the I/O timeout, or less when a rate-limited
 * batch may go at wake_ns (0: none held back). */
int engine_wait_ms(const struct engine *e, int64_t wake_ns);

/* Thread bodies. */
void *keyreader_main(void *arg);
void *engine_worker_main(void *arg);

#endif
