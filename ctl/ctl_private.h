/*
 * ctl_private.h: mcwarm-ctl's plan, state and steps.
 *
 * The plan says what to do (servers, volume backend and size, budget); the state says
 * what has been done. The state is a small text file in the work directory, written to a
 * temporary name, synced and renamed after every step, and checked (crc32c) when read, so
 * a controller killed anywhere continues from the last recorded step when it is started
 * again with the same plan.
 */
#ifndef CTL_PRIVATE_H
#define CTL_PRIVATE_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "ebs.h"
#include "metrics.h"
#include "objstore.h"

#define CTL_PATH_MAX		  512
#define CTL_FILTER_ARGS_MAX	  32	/* dump filter words passed on: option, value, ... */
#define CTL_FILTER_ARG_MAX	  1024	/* one word: a --nodes list of many nodes */
#define CTL_GROUP_MAX		  128	/* <host>_<port> of a resize group */
#define CTL_WAIT_VOLUME_S_DEFAULT 300	/* ro: how long the volume may take to appear */
#define CTL_IDLE_S_DEFAULT	  600	/* ro: how long the dump may stay without a new file */
#define CTL_SYNCFS_INTERVAL_S	  1	/* rw: the dumper's syncfs period for a remote reader */
#define CTL_LOG_TAIL_BYTES	  16384 /* the end of a log read for its last error */
#define CTL_MCWARM_ARGS_MAX	  96	/* words of one mcwarm command line */
/* ours, then the TLS and authentication options, then the filters */
#define CTL_RUN_ARGS_MAX (24 + MCW_SECURE_WORDS_MAX + CTL_FILTER_ARGS_MAX)
static_assert(CTL_RUN_ARGS_MAX < CTL_MCWARM_ARGS_MAX, "a command line fits, filters and all");

/* The controller's limits and waits (ctl.c, steps.c, dumper.c, reader.c, warm.c, metrics.c). */
#define CTL_CYCLE_MS_DEFAULT	    200
#define CTL_VOLUME_MIN_BYTES	    (512ull << 20) /* ext4 and xfs need room for their own metadata */
#define CTL_VOLUME_SLACK_BYTES	    (256ull << 20)
#define CTL_PLAN_LINE_MAX	    1024
#define CTL_PLAN_OPTIONS_MAX	    64
#define CTL_WAIT_VOLUME_S_MAX	    86400
#define CTL_DUMP_ATTEMPTS_MAX	    3
#define CTL_DUMP_REVIVALS_MAX	    3 /* a dumper killed by a signal (OOM) while we watch */
#define CTL_CHILD_PROM_MAX	    METRICS_TEXT_MAX /* a child's file, read whole */
#define CTL_WAIT_SLICE_MS	    1000 /* a wait is cut into slices to write the file */
#define CTL_CYCLES_AFTER_DUMP_MAX   20	 /* passes allowed after the dump ended */
#define CTL_AFTER_DUMP_PAUSE_MIN_MS 50	 /* then between them: doubling from this, */
#define CTL_AFTER_DUMP_PAUSE_MAX_MS 1000 /* up to this (a reader's view that lags, ~15 s) */
#define CTL_JSON_REPORT_MAX	    8192 /* the part of a JSON summary searched for a number */
#define CTL_STOP_WAIT_MS	    10000 /* a leftover mcwarm gets this long after SIGTERM, then SIGKILL */
#define CTL_VOLUME_POLL_MS	    500	 /* ro: between looks for the writer's volume */
#define CTL_S3_ATTEMPT_POLL_MS	    2000 /* ro, s3: between looks for the writer's next attempt */
/* The longest name the controller puts under a pair's prefix: .mcwarm/readers/reading-<dest>
 * (dest: 300 bytes), or dump-<n>/ and a chunk name. */
#define CTL_S3_NAME_MAX 400
static_assert(CTL_AFTER_DUMP_PAUSE_MIN_MS <= CTL_AFTER_DUMP_PAUSE_MAX_MS, "the pause grows");
/* After the dump ended the reader passes at most CTL_CYCLES_AFTER_DUMP_MAX more times; each
 * pause at most CTL_AFTER_DUMP_PAUSE_MAX_MS: that wait stays within a minute. */
static_assert((uint64_t)CTL_CYCLES_AFTER_DUMP_MAX * CTL_AFTER_DUMP_PAUSE_MAX_MS <= 60 * 1000,
	      "the passes after the dump end within a minute");
static_assert(CTL_WAIT_VOLUME_S_DEFAULT <= CTL_WAIT_VOLUME_S_MAX, "the default is allowed");
static_assert(CTL_VOLUME_POLL_MS < CTL_WAIT_VOLUME_S_DEFAULT * 1000,
	      "the writer's volume is looked for more than once in the default wait");

enum ctl_side { SIDE_BOTH, SIDE_RW, SIDE_RO };

struct ctl_plan {
	char source[300];
	char dest[300];
	char work[CTL_PATH_MAX];  /* state, image, mountpoints, logs */
	struct ebs_volume vol;	  /* --backend s3: vol.path is s3://BUCKET/PREFIX (s3.c) */
	bool s3;		  /* --backend s3: no volume, the dump goes through the store */
	uint64_t memory_bytes;	  /* for dump and populate */
	unsigned threads;	  /* 0: their default */
	unsigned cycle_ms;	  /* pause between populate passes */
	double min_ratio;	  /* verify */
	bool keep;		  /* keep the volume after a good warm-up */
	bool allow_shrink;	  /* a destination too small for the source (populate) */
	bool allow_smaller_items; /* a destination with a smaller item_size_max */
	char mcwarm[CTL_PATH_MAX];
	enum ctl_side side;	   /* warm: both halves here, or one host's half */
	char group[CTL_GROUP_MAX]; /* ro: read OUT/<group>/ of a resize dump */
	unsigned wait_volume_s;	   /* ro: wait this long for the volume and its filesystem */
	unsigned idle_s;	   /* ro: give up after this long without a new file */
	unsigned nfilters;	   /* words in filter: passed to dump and verify */
	char filter[CTL_FILTER_ARGS_MAX][CTL_FILTER_ARG_MAX];
	char metrics_file[CTL_PATH_MAX]; /* --metrics-file: not part of the plan's identity */
	/* --tls..., --auth-file (the source), --dest-tls..., --dest-auth-file: mcwarm's own
	 * words, passed on as they are; not part of the plan's identity (certificates and
	 * credentials are rotated); never a password, only the names of files. Pairs: the
	 * option, then its value ("" for --tls and --dest-tls). */
	unsigned nsec;
	char sec[MCW_SECURE_WORDS_MAX][CTL_PATH_MAX];
};

/* Which servers' TLS and authentication words a command line gets. */
enum ctl_servers { CTL_SOURCE = 1, CTL_DEST = 2, CTL_BOTH = 3 };

enum ctl_phase {
	PHASE_NEW,
	PHASE_VOLUME,	 /* created, attached both ways, formatted, mounted */
	PHASE_DUMPING,	 /* dumper started; populate cycles running */
	PHASE_DUMPED,	 /* rw: DONE is on the volume (the reader's turn) */
	PHASE_POPULATED, /* the dump's MANIFEST is fully applied */
	PHASE_VERIFIED,
	PHASE_DONE, /* torn down (rw: released) */
	PHASE_FAILED,
};

struct ctl_state {
	uint32_t plan_crc; /* a different plan in the same work directory is refused */
	enum ctl_side side;
	enum ctl_phase phase;
	bool created_volume;
	char volume_id[64];
	uint64_t volume_bytes;
	char rw_device[EBS_PATH_MAX], ro_device[EBS_PATH_MAX];
	unsigned dump_n; /* attempt number: dump-<n> and pop-<n> */
	pid_t dump_pid;
	int64_t dump_started_ns, dump_done_ns;
	int dump_exit;		/* -1 while running */
	unsigned dump_revivals; /* by this controller run (not saved) */
	pid_t populate_pid;
	unsigned cycles;
	int64_t first_apply_ns, last_cycle_ns, populated_ns;
	uint64_t files_applied, items_sent, already_present, bytes_sent;
	uint64_t evictions; /* by the destination during populate passes */
	double verify_ratio;
	int verify_exit;
	int64_t started_ns, volume_ns, verified_ns, finished_ns; /* wall clock */
	char error[512];
};

const char *ctl_phase_name(enum ctl_phase p);
/* loop, dir, ec2 or s3 */
const char *ctl_backend_name(const struct ctl_plan *p);
const char *ctl_side_name(enum ctl_side side);
int ctl_side_parse(const char *name, enum ctl_side *out);

/* Crash tests: if $MCW_CTL_CRASH_AT names this point (a phase, when its state is first
 * saved; "pass", a populate pass running; "teardown", between detaching the reader and
 * the writer), the controller kills itself with SIGKILL there, leaving everything as a
 * real crash would. */
void ctl_crash_point(const char *name);

/* 0, -ENOENT (no state yet), or -EBADMSG (damaged: err says so). */
int ctl_state_load(const char *work, struct ctl_state *s, char *err, size_t cap);
int ctl_state_save(const char *work, const struct ctl_state *s);

uint32_t ctl_plan_crc(const struct ctl_plan *p);

/* Paths inside the work directory. */
void ctl_path(char *out, size_t cap, const struct ctl_plan *p, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Where dump attempt n is, as the writer (rw) or the reader (ro) sees it: under the
 * mountpoints WORK/rw and WORK/ro, or in the directory of the dir backend; the reader's
 * is the plan's group directory in it, if the plan names one. */
void ctl_dump_dir(char *out, size_t cap, const struct ctl_plan *p, enum ebs_access side,
		  unsigned n);

/* What attempt n's dumper gets as --out: the directory ctl_dump_dir names (rw), or with
 * --backend s3 the attempt's URL (its checkpoint then goes to --state ctl_dump_dir). */
void ctl_dump_out(char *out, size_t cap, const struct ctl_plan *p, unsigned n);

/* The plan as a plan file (WORK/ctl.plan), so release and status find the volume from
 * --work alone. 0 or -errno. */
int ctl_plan_save(const struct ctl_plan *p);

/* Appends the TLS and authentication words of these servers to args (at most cap words);
 * returns the new count. */
int ctl_secure_args(const struct ctl_plan *p, enum ctl_servers which, char **args, int n, int cap);

/* Appends the plan's dump filters to args (at most cap words); returns the new count. */
int ctl_filter_args(const struct ctl_plan *p, char **args, int n, int cap);

/* Steps, each idempotent; 0 or an exit code, err explains. */
int ctl_step_create(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
int ctl_step_attach(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap);
int ctl_step_mkfs(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
int ctl_step_mount(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		   size_t cap);
int ctl_step_umount(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap);
int ctl_step_detach(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap);
/* Detaches both sides and deletes the volume, whoever created it. */
int ctl_step_destroy(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
/* rw: create, attach rw, mkfs, mount rw. ro: attach ro, and mount ro once the volume
 * carries a filesystem (MCW_EXIT_TEMPFAIL while it does not). both: the two. */
int ctl_step_volume(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap);
/* syncfs rw, umount ro, mount ro: the reader sees what the writer has synced. */
int ctl_step_cycle(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
/* Unmounts and detaches both sides; destroys the volume if destroy and we created it. */
int ctl_step_teardown(const struct ctl_plan *p, struct ctl_state *s, bool destroy, char *err,
		      size_t cap);

/* The warm-up from start (or from where a killed run stopped) to its end: both halves
 * on this host, or the plan's side. */
int ctl_warm(const struct ctl_plan *p, bool json);
/* rw side, after every reader is done: umount, detach, delete the volume unless keep. */
int ctl_release(const struct ctl_plan *p, bool keep, bool json);
/* Prints phase, counts, rates and lag (human or JSON). */
int ctl_status(const struct ctl_plan *p, bool json);

/* dumper.c: the writer's half. ensure: a dumper runs, or has finished, for the current
 * attempt (found running, found DONE, continued from its checkpoint, or a new attempt);
 * check: notes its end (a dumper killed by a signal is revived); 0 or an exit code. */
int ctl_dump_ensure(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
int ctl_dump_check(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
/* Stops the current attempt's dumper, if one runs. */
void ctl_dump_stop(const struct ctl_plan *p, const struct ctl_state *s);
/* Is the dump in dir complete: DONE, or (resize) DONE in every group's directory? */
bool ctl_dump_is_done(const char *dir);
int64_t ctl_wall_ns(void);

/* reader.c: the populator's half. Remount cycles and populate passes until the dump's
 * MANIFEST is fully applied (0), else an exit code and err. */
int ctl_read_cycles(const struct ctl_plan *p, struct ctl_state *s, bool tty, char *err, size_t cap);
/* mcwarm verify with the plan's filters; its exit code. */
int ctl_verify(const struct ctl_plan *p, struct ctl_state *s);
unsigned ctl_count_chunks(const char *dir);
/* A number from a flat JSON summary of mcwarm (the first occurrence of key): 0 if absent. */
double ctl_json_num(const char *path, const char *key);
/* text as the inside of a JSON string (quotes, backslashes and control characters
 * escaped), cut to fit out; returns out. */
const char *ctl_json_escape(char *out, size_t cap, const char *text);
/* The last "error: ..." line mcwarm wrote to log_path (its cause, for a report), without
 * its prefix; "" if there is none. Returns out. */
const char *ctl_log_error(const char *log_path, char *out, size_t cap);
/* A true from a flat JSON object: false if absent. */
bool ctl_json_true(const char *path, const char *key);

/* populate's STATE/backlog of the current attempt (WORK/pop-<n>/backlog): chunk files
 * listed and, of those, not applied yet. false when there is none (no pass yet). */
bool ctl_backlog(const struct ctl_plan *p, const struct ctl_state *s, uint64_t *listed,
		 uint64_t *backlog);

/* s3.c: --backend s3 (see there). Each returns 0 or an exit code (objs_exit_code of the
 * store's failure class) with err naming the cause and the fix.
 * pair_url: s3://BUCKET/PREFIX/<source host_port>/name; dump_url: of attempt n.
 * check: the bucket answers the listing of the pair's prefix with these credentials.
 * has: *yes when an object's key starts with the pair's prefix + name.
 * count: *n objects whose key starts with the pair's prefix + name.
 * reader_mark: this reader's mark ("reading", "done", NULL: none) under the prefix.
 * readers_gone: MCW_EXIT_TEMPFAIL naming a reader whose mark says reading.
 * delete: every object under the pair's prefix. */
void ctl_s3_pair_url(char *out, size_t cap, const struct ctl_plan *p, const char *name);
void ctl_s3_dump_url(char *out, size_t cap, const struct ctl_plan *p, unsigned n);
int ctl_s3_check(const struct ctl_plan *p, char *err, size_t cap);
int ctl_s3_has(const struct ctl_plan *p, const char *name, bool *yes, char *err, size_t cap);
int ctl_s3_count(const struct ctl_plan *p, const char *name, unsigned *n, char *err, size_t cap);
int ctl_s3_reader_mark(const struct ctl_plan *p, const char *mark, char *err, size_t cap);
int ctl_s3_readers_gone(const struct ctl_plan *p, char *err, size_t cap);
int ctl_s3_delete(const struct ctl_plan *p, char *err, size_t cap);
void ctl_s3_close(void);

/* metrics.c: --metrics-file (see there). init with the path ("" or NULL: off); tick
 * writes the file when MCW_METRICS_INTERVAL_MS passed, final once at the end with the
 * exit code; child: where a child's own --metrics-file goes (WORK/<cmd>-<n>.prom). */
void ctl_metrics_init(const char *path);
bool ctl_metrics_on(void);
void ctl_metrics_tick(const struct ctl_plan *p, const struct ctl_state *s);
void ctl_metrics_final(const struct ctl_plan *p, const struct ctl_state *s, int code);
void ctl_metrics_child(char *out, size_t cap, const struct ctl_plan *p, const char *cmd,
		       unsigned n);
/* Sleeps ms, writing the metrics file on the way. */
void ctl_wait_ms(const struct ctl_plan *p, const struct ctl_state *s, unsigned ms);
/* Waits for child pid to end (writing the metrics file on the way): its exit code, or
 * 128+signal. */
int ctl_wait_child(const struct ctl_plan *p, const struct ctl_state *s, pid_t pid);

/* Runs mcwarm with args (stdout to out_path, stderr to log_path), waits, returns its exit
 * code (or 128+signal); *pid_out is set while it runs for the state file. */
int ctl_run_mcwarm(const struct ctl_plan *p, char *const args[], const char *out_path,
		   const char *log_path, pid_t *pid_out, struct ctl_state *s);
/* Starts mcwarm with args (stdout to out_path, stderr to log_path): its pid, or -errno. */
pid_t ctl_spawn_mcwarm(const struct ctl_plan *p, char *const args[], const char *out_path,
		       const char *log_path);
/* The pid of a running `mcwarm <cmd> ... <opt> <value> ...`, 0 if there is none: how a
 * restarted controller finds the processes its predecessor started. */
pid_t ctl_find_mcwarm(const char *cmd, const char *opt, const char *value);
/* SIGTERM, a bounded wait, then SIGKILL. */
void ctl_stop_pid(pid_t pid);

#endif
