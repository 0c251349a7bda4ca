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

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ebs.h"

#define CTL_PATH_MAX 512

struct ctl_plan {
	char source[300];
	char dest[300];
	char work[CTL_PATH_MAX]; /* state, image, mountpoints, logs */
	struct ebs_volume vol;
	uint64_t memory_bytes; /* for dump and populate */
	unsigned threads;      /* 0: their default */
	unsigned cycle_ms;     /* pause between populate passes */
	double min_ratio;      /* verify */
	bool keep;	       /* keep the volume after a good warm-up */
	bool allow_shrink;     /* a destination too small for the source (populate) */
	bool allow_smaller_items; /* a destination with a smaller item_size_max */
	char mcwarm[CTL_PATH_MAX];
};

enum ctl_side { SIDE_BOTH, SIDE_RW, SIDE_RO };

enum ctl_phase {
	PHASE_NEW,
	PHASE_VOLUME,	/* created, attached both ways, formatted, mounted */
	PHASE_DUMPING,	/* dumper started; populate cycles running */
	PHASE_POPULATED, /* the dump's MANIFEST is fully applied */
	PHASE_VERIFIED,
	PHASE_DONE, /* torn down */
	PHASE_FAILED,
};

struct ctl_state {
	uint32_t plan_crc; /* a different plan in the same work directory is refused */
	enum ctl_phase phase;
	bool created_volume;
	char volume_id[64];
	uint64_t volume_bytes;
	char rw_device[EBS_PATH_MAX], ro_device[EBS_PATH_MAX];
	unsigned dump_n; /* attempt number: dump-<n> and pop-<n> */
	pid_t dump_pid;
	int64_t dump_started_ns, dump_done_ns;
	int dump_exit; /* -1 while running */
	pid_t populate_pid;
	unsigned cycles;
	int64_t first_apply_ns, last_cycle_ns, populated_ns;
	uint64_t files_applied, items_sent, already_present;
	uint64_t evictions; /* by the destination during populate passes */
	double verify_ratio;
	int verify_exit;
	int64_t started_ns, volume_ns, verified_ns, finished_ns; /* wall clock */
	char error[512];
};

const char *ctl_phase_name(enum ctl_phase p);

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
 * mountpoints WORK/rw and WORK/ro, or in the directory of the dir backend. */
void ctl_dump_dir(char *out, size_t cap, const struct ctl_plan *p, enum ebs_access side,
		  unsigned n);

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
/* create, attach rw, mkfs, mount rw, attach ro. */
int ctl_step_volume(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
/* syncfs rw, umount ro, mount ro: the reader sees what the writer has synced. */
int ctl_step_cycle(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap);
/* Unmounts and detaches both sides; destroys the volume if destroy and we created it. */
int ctl_step_teardown(const struct ctl_plan *p, struct ctl_state *s, bool destroy, char *err,
		      size_t cap);

/* The warm-up from start (or from where a killed run stopped) to its end. */
int ctl_warm(const struct ctl_plan *p, bool json);
/* Prints phase, counts, rates and lag (human or JSON). */
int ctl_status(const struct ctl_plan *p, bool json);

/* Runs mcwarm with args (stdout to out_path, stderr to log_path), waits, returns its exit
 * code (or 128+signal); *pid_out is set while it runs for the state file. */
int ctl_run_mcwarm(const struct ctl_plan *p, char *const args[], const char *out_path,
		   const char *log_path, pid_t *pid_out, struct ctl_state *s);
pid_t ctl_spawn_mcwarm(const struct ctl_plan *p, char *const args[], const char *out_path,
		       const char *log_path);
/* The pid of a running `mcwarm <cmd> ... <opt> <value> ...`, 0 if there is none: how a
 * restarted controller finds the processes its predecessor started. */
pid_t ctl_find_mcwarm(const char *cmd, const char *opt, const char *value);
/* SIGTERM, a bounded wait, then SIGKILL. */
void ctl_stop_pid(pid_t pid);

#endif
