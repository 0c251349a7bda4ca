/*
 * dump.h: `mcwarm dump`, shared by its three files: the command (dump.c: options, output
 * directory, MANIFEST and DONE, summary), the chunk sink (dump_sink.c: fetched values into
 * chunk files through one chunk writer per worker) and resuming an unfinished dump
 * (resume.c); with --out s3:// the object store's side (dump_s3.c). All sit on the engine
 * (engine.h); the engine knows none of them.
 */
#ifndef MCW_DUMP_H
#define MCW_DUMP_H

#include "engine.h"
#include "manifest.h"
#include "sinks.h"

struct dump_opts {
	enum chunk_write_mode write_mode;
	bool direct;
	uint64_t chunk_bytes;
	bool keep_spool;
	unsigned syncfs_interval_s; /* 0: never */
};

struct dump_stats {
	atomic_uint_fast64_t items_resumed; /* of e.st.items, in files an earlier run finished */
	atomic_uint_fast64_t group_items[KEYFILTER_GROUPS_MAX]; /* records per output group */
	atomic_uint_fast64_t ttl_filtered;			/* below --min-ttl at fetch */
	atomic_uint_fast64_t file_bytes;
	atomic_uint_fast64_t files;
};

/* The chunk sink's state of one worker. */
struct dump_worker {
	struct dump_cmd *d;
	struct chunk_writer cw;
	bool cw_ready;		/* cw was initialized */
	struct chunk_upload up; /* --out s3:// */
	bool up_ready;
	int journal_fd; /* up's journal of uploads begun */
	unsigned group; /* output group of the job's keys */
	/* Items and value bytes written since the last flush into the shared counters
	 * (dump_sink.c: every DUMP_COUNTS_FLUSH_ITEMS and at each job's end): an atomic add
	 * per item on lines every worker writes cost more than the item's checksum. */
	uint64_t items_unflushed, bytes_unflushed;
};

/* --out s3://BUCKET/PREFIX (dump_s3.c). */
struct dump_s3 {
	bool on;
	const char *out_text; /* as given, for messages */
	struct objs_url url;
	char prefix[OBJS_KEY_MAX_BYTES + 2]; /* "" or ending in '/' */
	struct objs_config cfg;
	struct objs_client client; /* the main thread's */
	char *scratch;
	bool client_ready;
};

struct dump_cmd {
	struct engine e; /* e.o.dir is --out, or --state with --out s3:// */
	struct dump_s3 s3;
	struct dump_opts o;
	struct dump_stats st;
	int group_fd[KEYFILTER_GROUPS_MAX]; /* where each group's files go (e.dir_fd if one) */
	char group_path[KEYFILTER_GROUPS_MAX][PATH_MAX];
	bool already_complete; /* the directory holds a finished dump */
	const char *state_dir; /* --state (with --out s3://) */
	int64_t next_sync_ns;  /* --syncfs-interval */
	struct dump_worker workers[MCW_THREADS_MAX];
};

/* dump_sink.c: the chunk sink's worker operations (the table is in dump.c). */
int dump_sink_worker_open(struct engine *e, struct engine_worker *w);
int dump_sink_worker_init(struct engine_worker *w);
bool dump_sink_recv_reusable(void *sink_worker);
bool dump_sink_job_begin(struct engine_worker *w, uint32_t seq, unsigned group);
int dump_sink_on_value(struct engine_worker *w, enum mgpipe_next kind,
		       const struct mcp_meta_reply *rep, uint32_t index);
void dump_sink_on_cqe(struct engine_worker *w, const struct ur_cqe *cqe);
void dump_sink_job_end(struct engine_worker *w, uint32_t seq);
bool dump_sink_idle(struct engine_worker *w);
void dump_sink_worker_fini(struct engine_worker *w, bool failed);

/* dump.c: before a run, the command's context empty (tests set one up as dump.c does). */
void dump_cmd_init(struct dump_cmd *d);
void dump_cmd_release(struct dump_cmd *d);

/* dump.c: the finished chunk files of group g with their footers checked (a directory's
 * or the prefix's), sorted. Count, or -errno with err set. */
long dump_collect(struct dump_cmd *d, unsigned g, struct manifest_entry **out, char *err,
		  size_t cap);

/* dump_s3.c. Each returns 0 or a cause (-errno, mcw_store_cause for the store's failures,
 * reported) unless said otherwise. dump_s3_option: 0 or an exit code (options). */
int dump_s3_option(struct dump_cmd *d, const char *out); /* after the other options */
int dump_s3_prepare(struct dump_cmd *d, bool resume);	 /* the store: reachable, empty? */
/* Ends unfinished uploads; deletes temporary objects and the chunks of jobs cp does not
 * name done (every chunk when cp is NULL). */
int dump_s3_prune(struct dump_cmd *d, const struct checkpoint *cp);
long dump_s3_collect(struct dump_cmd *d, struct manifest_entry **out, char *err, size_t cap);
int dump_s3_publish(struct dump_cmd *d, struct manifest_info *mi, const struct manifest_entry *e,
		    size_t n);
int dump_s3_worker_init(struct dump_cmd *d, struct dump_worker *dw, struct engine_worker *w);
void dump_s3_worker_fini(struct dump_worker *dw, bool failed);
int dump_s3_worker_cause(struct dump_worker *dw); /* of a failed writer */
/* The cause of the client's last failure: mcw_store_cause(its class). */
int dump_s3_store_cause(struct dump_cmd *d);
void dump_s3_release(struct dump_cmd *d);
/* The spool's record of where its chunks go (.mcwarm/s3-out: the s3:// URL): written when
 * a dump to s3:// starts; on resume, why the spool belongs to another output (a dump
 * directory used as --state, or the reverse), else NULL. */
int dump_s3_state_mark(struct dump_cmd *d);
const char *dump_s3_state_mismatch(struct dump_cmd *d);

/* resume.c. The options that shape a dump's content, as a crc (the checkpoint's). */
uint32_t dump_options_crc(const struct engine_opts *o);
/* The output directory holds .mcwarm/checkpoint: continue that dump (or refuse, or wipe
 * it and start over). 0 or -errno (reported). */
int resume_prepare(struct dump_cmd *d);
/* Removes every chunk file, key chunk and the checkpoint of an earlier run. 0 or
 * -errno. */
int resume_wipe(struct dump_cmd *d);
/* A resumed listing: loads the keys of finished jobs into the dedupe table. 0 or the
 * run's failure (-errno). */
int resume_load_dedupe(struct dump_cmd *d);

#endif
