/*
 * dumper.c: the writer's half of a warm-up: one `mcwarm dump` in the background for the
 * current attempt, found again by a restarted controller, revived when it died.
 *
 *   no dumper -> ctl_dump_ensure: start one into WORK/rw/dump-<n> (or find it running, or
 *   its DONE) -> ctl_dump_check: note its end -> DONE on the volume
 *
 * The dumper survives a killed controller; a restarted one finds it by its command line,
 * or its DONE if it finished meanwhile, or, if it died, runs it again into the same
 * directory, where it continues from its checkpoint (without one: a new attempt,
 * dump-<n+1>, and the readers follow to it). The dumper itself keeps the dump's
 * invariants; this file only decides which directory and whether one runs.
 *
 * --backend s3: the same with the attempt's URL as --out (ctl_dump_out) and its
 * checkpoint in WORK/dump-<n> (--state); DONE is looked for in the store.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"

int64_t ctl_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool empty = true;
	while (d && empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	if (d)
		closedir(d);
	return empty;
}

bool ctl_dump_is_done(const char *dir)
{
	char path[CTL_PATH_MAX + 300];
	snprintf(path, sizeof(path), "%s/DONE", dir);
	if (access(path, F_OK) == 0)
		return true;
	/* a resize dump: DONE in every group's directory, and the spool gone (the dumper
	 * removes it last, so a dumper killed between two groups' DONE is not done) */
	snprintf(path, sizeof(path), "%s/.mcwarm", dir);
	if (access(path, F_OK) == 0)
		return false;
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned groups = 0, done = 0;
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		groups++;
		snprintf(path, sizeof(path), "%s/%.255s/DONE", dir, de->d_name);
		done += access(path, F_OK) == 0;
	}
	if (d)
		closedir(d);
	return groups > 0 && done == groups;
}

/* The dumper of this attempt is gone without DONE: continue it (checkpoint), or start
 * attempt n+1. 0: start one into s->dump_n; else an exit code. */
static int next_attempt(const struct ctl_plan *p, struct ctl_state *s, const char *dir, char *err,
			size_t cap)
{
	char ckpt[CTL_PATH_MAX + 64];
	snprintf(ckpt, sizeof(ckpt), "%s/.mcwarm/checkpoint", dir);
	if (access(ckpt, F_OK) == 0) { /* mcwarm dump continues where it stopped */
		fprintf(stderr,
			"mcwarm-ctl: the dumper of attempt %u is gone without finishing: "
			"continuing it from its checkpoint\n",
			s->dump_n);
		return 0;
	}
	/* a dumper started here and ended without finishing: a new attempt in a new
	 * directory (and a new populate journal); add mode makes re-adds harmless */
	if (s->dump_n >= CTL_DUMP_ATTEMPTS_MAX)
		return snprintf(err, cap,
				"the dump did not finish in %u attempts: see %s/dump-*.log",
				CTL_DUMP_ATTEMPTS_MAX, p->work),
		       MCW_EXIT_UNAVAILABLE;
	fprintf(stderr,
		"mcwarm-ctl: the dumper of attempt %u is gone without finishing: "
		"starting attempt %u\n",
		s->dump_n, s->dump_n + 1);
	s->dump_n++;
	s->files_applied = 0;
	return 1;
}

/* Is attempt n's dump complete: DONE in its directory, or in the store? 0 (*done set) or
 * an exit code. */
static int dump_done(const struct ctl_plan *p, unsigned n, const char *dir, bool *done, char *err,
		     size_t cap)
{
	char name[32];
	if (!p->s3)
		return *done = ctl_dump_is_done(dir), 0;
	snprintf(name, sizeof(name), "dump-%u/DONE", n);
	return ctl_s3_has(p, name, done, err, cap);
}

static int spawn_dump(const struct ctl_plan *p, struct ctl_state *s, const char *dir, char *err,
		      size_t cap)
{
	char out[CTL_PATH_MAX + 32], log[CTL_PATH_MAX + 32], mem[32], thr[16], sync[16];
	char to[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES];
	ctl_path(out, sizeof(out), p, "dump-%u.json", s->dump_n);
	ctl_path(log, sizeof(log), p, "dump-%u.log", s->dump_n);
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)p->memory_bytes);
	snprintf(thr, sizeof(thr), "%u", p->threads);
	snprintf(sync, sizeof(sync), "%u", CTL_SYNCFS_INTERVAL_S);
	ctl_dump_out(to, sizeof(to), p, s->dump_n);
	char *args[CTL_RUN_ARGS_MAX] = { "dump",   "--source", (char *)p->source, "--out", to,
					 "--json", "-q",       "--memory",	  mem };
	int n = 9;
	if (p->s3) { /* the checkpoint stays here */
		args[n++] = "--state";
		args[n++] = (char *)dir;
	}
	char prom[CTL_PATH_MAX + 32];
	if (ctl_metrics_on()) { /* its live figures, for ours */
		ctl_metrics_child(prom, sizeof(prom), p, "dump", s->dump_n);
		args[n++] = "--metrics-file";
		args[n++] = prom;
	}
	if (p->side == SIDE_RW && !p->s3) { /* the reader is on another host: the dumper syncs */
		args[n++] = "--syncfs-interval";
		args[n++] = sync;
	}
	if (p->threads) {
		args[n++] = "--threads";
		args[n++] = thr;
	}
	n = ctl_secure_args(p, CTL_SOURCE, args, n, CTL_RUN_ARGS_MAX - 1);
	n = ctl_filter_args(p, args, n, CTL_RUN_ARGS_MAX - 1);
	args[n] = NULL;
	s->dump_pid = ctl_spawn_mcwarm(p, args, out, log);
	if (s->dump_pid < 0)
		return snprintf(err, cap, "cannot start the dumper: %s",
				strerror((int)-s->dump_pid)),
		       MCW_EXIT_SOFTWARE;
	s->dump_started_ns = ctl_wall_ns();
	s->dump_done_ns = 0;
	s->dump_exit = -1;
	s->phase = PHASE_DUMPING;
	return ctl_state_save(p->work, s) < 0 ? MCW_EXIT_IO : 0;
}

int ctl_dump_ensure(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	char dir[CTL_PATH_MAX + 32], to[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES];
	if (s->dump_exit == 0)
		return 0;
	if (s->dump_n == 0)
		s->dump_n = 1;
	for (;;) {
		bool done;
		ctl_dump_dir(dir, sizeof(dir), p, EBS_RW, s->dump_n);
		ctl_dump_out(to, sizeof(to), p, s->dump_n);
		pid_t pid = ctl_find_mcwarm("dump", "--out", to);
		if (pid > 0) { /* still running, maybe started by a controller that was killed */
			s->dump_pid = pid;
			s->dump_exit = -1;
			return 0;
		}
		int code = dump_done(p, s->dump_n, dir, &done, err, cap);
		if (code != 0)
			return code;
		if (done) { /* it finished while nobody watched */
			s->dump_exit = 0;
			if (s->dump_done_ns == 0)
				s->dump_done_ns = ctl_wall_ns();
			return ctl_state_save(p->work, s) < 0 ? MCW_EXIT_IO : 0;
		}
		if (access(dir, F_OK) != 0 || dir_is_empty(dir))
			break;
		code = next_attempt(p, s, dir, err, cap);
		if (code == 0)
			break;
		if (code != 1)
			return code;
	}
	return spawn_dump(p, s, dir, err, cap);
}

int ctl_dump_check(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	int status;
	if (s->dump_exit != -1)
		return 0;
	pid_t w = waitpid(s->dump_pid, &status, WNOHANG);
	if (w == 0)
		return 0; /* our child, still running */
	if (w < 0)	  /* not our child (a predecessor started it): look again */
		return ctl_dump_ensure(p, s, err, cap);
	if (WIFSIGNALED(status) && s->dump_revivals < CTL_DUMP_REVIVALS_MAX) {
		s->dump_revivals++;
		fprintf(stderr, "mcwarm-ctl: the dumper was killed (signal %d): reviving it\n",
			WTERMSIG(status));
		return ctl_dump_ensure(p, s, err, cap);
	}
	s->dump_exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (s->dump_exit != 0) {
		char log[CTL_PATH_MAX + 32], why[512];
		ctl_path(log, sizeof(log), p, "dump-%u.log", s->dump_n);
		ctl_log_error(log, why, sizeof(why));
		snprintf(err, cap, "the dumper failed (exit %d)%s%s: see %s", s->dump_exit,
			 why[0] ? ": " : "", why, log);
		return s->dump_exit < 128 ? s->dump_exit : MCW_EXIT_SOFTWARE;
	}
	s->dump_done_ns = ctl_wall_ns();
	return ctl_state_save(p->work, s) < 0 ? MCW_EXIT_IO : 0;
}

void ctl_dump_stop(const struct ctl_plan *p, const struct ctl_state *s)
{
	char to[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES];
	if (p->side == SIDE_RO)
		return; /* the dumper is on another host */
	ctl_dump_out(to, sizeof(to), p, s->dump_n);
	if (s->dump_exit == -1)
		ctl_stop_pid(ctl_find_mcwarm("dump", "--out", to));
}
