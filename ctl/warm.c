/*
 * warm.c: `mcwarm-ctl warm`: a whole warm-up, or the rest of one a killed controller
 * left behind.
 *
 *   NEW --volume--> VOLUME --start dump--> DUMPING --(cycles: remount ro, populate --once)
 *   --> POPULATED --verify--> VERIFIED --teardown--> DONE        any failure: FAILED
 *
 * The dumper runs in the background and survives a killed controller; a restarted one
 * finds it by pid (or its DONE if it finished meanwhile), or, if it died, runs it again
 * into the same directory, where it continues from its checkpoint (or, without one,
 * starts a new attempt: dump-<n+1>, pop-<n+1>). Populate passes are journaled, so a
 * repeated cycle never applies a file twice.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"

#define CYCLES_AFTER_DUMP_MAX 20 /* passes allowed after the dump ended */
#define CTL_DUMP_ATTEMPTS_MAX 3
#define POPULATE_ARGS_MAX     17 /* 12 always, 4 optional, the NULL that ends them */

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static unsigned count_chunks(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;
	while (d && (de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		n += strncmp(de->d_name, "chunk-", 6) == 0 && l > 4 &&
		     strcmp(de->d_name + l - 4, ".mcw") == 0;
	}
	if (d)
		closedir(d);
	return n;
}

/* The text after "key": in the flat JSON object of path, copied into text; NULL if absent. */
static const char *json_value(const char *path, const char *key, char *text, size_t cap)
{
	char pat[64];
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	size_t n = fread(text, 1, cap - 1, f);
	fclose(f);
	text[n] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	char *at = strstr(text, pat);
	return at ? at + strlen(pat) : NULL;
}

/* A number from a flat JSON object: 0 if absent. */
static double json_num(const char *path, const char *key)
{
	char text[8192];
	const char *v = json_value(path, key, text, sizeof(text));
	return v ? strtod(v, NULL) : 0;
}

/* A true from a flat JSON object: false if absent. */
static bool json_true(const char *path, const char *key)
{
	char text[8192];
	const char *v = json_value(path, key, text, sizeof(text));
	return v != NULL && strncmp(v, "true", 4) == 0;
}

static void progress(const struct ctl_plan *p, const struct ctl_state *s, bool tty)
{
	if (!tty)
		return;
	char dir[CTL_PATH_MAX + 32];
	ctl_dump_dir(dir, sizeof(dir), p, EBS_RW, s->dump_n);
	unsigned written = count_chunks(dir);
	fprintf(stderr,
		"\r\033[Kwarm: %s | dump %s: %u chunk files | populate: %llu applied (lag %lld), "
		"%llu items | cycle %u",
		ctl_phase_name(s->phase), s->dump_exit == 0 ? "done" : "running", written,
		(unsigned long long)s->files_applied,
		(long long)written - (long long)s->files_applied,
		(unsigned long long)s->items_sent, s->cycles);
	fflush(stderr);
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

/* Makes sure a dumper runs, or has finished, for the current attempt. */
static int ensure_dump(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	char out[CTL_PATH_MAX + 32], log[CTL_PATH_MAX + 32], dir[CTL_PATH_MAX + 32],
		done[CTL_PATH_MAX + 48];
	if (s->dump_exit == 0)
		return 0;
	if (s->dump_n == 0)
		s->dump_n = 1;
	for (;;) {
		ctl_dump_dir(dir, sizeof(dir), p, EBS_RW, s->dump_n);
		snprintf(done, sizeof(done), "%s/DONE", dir);
		pid_t pid = ctl_find_mcwarm("dump", "--out", dir);
		if (pid > 0) { /* still running, maybe started by a controller that was killed */
			s->dump_pid = pid;
			return 0;
		}
		if (access(done, F_OK) == 0) { /* it finished while nobody watched */
			s->dump_exit = 0;
			if (s->dump_done_ns == 0)
				s->dump_done_ns = wall_ns();
			return ctl_state_save(p->work, s) < 0 ? MCW_EXIT_IO : 0;
		}
		if (access(dir, F_OK) != 0 || dir_is_empty(dir))
			break;
		char ckpt[CTL_PATH_MAX + 64];
		snprintf(ckpt, sizeof(ckpt), "%s/.mcwarm/checkpoint", dir);
		if (access(ckpt, F_OK) == 0) { /* mcwarm dump continues where it stopped */
			fprintf(stderr, "mcwarm-ctl: the dumper of attempt %u is gone without "
					"finishing: continuing it from its checkpoint\n",
				s->dump_n);
			break;
		}
		/* a dumper started here and ended without finishing: a new attempt in a new
		 * directory (and a new populate journal); add mode makes re-adds harmless */
		if (s->dump_n >= CTL_DUMP_ATTEMPTS_MAX)
			return snprintf(err, cap,
					"the dump did not finish in %u attempts: see %s/dump-*.log",
					CTL_DUMP_ATTEMPTS_MAX, p->work),
			       MCW_EXIT_UNAVAILABLE;
		fprintf(stderr, "mcwarm-ctl: the dumper of attempt %u is gone without finishing: "
				"starting attempt %u\n",
			s->dump_n, s->dump_n + 1);
		s->dump_n++;
		s->files_applied = 0;
	}
	ctl_path(out, sizeof(out), p, "dump-%u.json", s->dump_n);
	ctl_path(log, sizeof(log), p, "dump-%u.log", s->dump_n);
	char mem[32], thr[16];
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)p->memory_bytes);
	snprintf(thr, sizeof(thr), "%u", p->threads);
	char *args[] = { "dump", "--source", (char *)p->source, "--out", dir, "--json", "-q",
			 "--memory", mem, p->threads ? "--threads" : NULL, thr, NULL };
	s->dump_pid = ctl_spawn_mcwarm(p, args, out, log);
	if (s->dump_pid < 0)
		return snprintf(err, cap, "cannot start the dumper: %s", strerror(errno)),
		       MCW_EXIT_SOFTWARE;
	s->dump_started_ns = wall_ns();
	s->dump_done_ns = 0;
	s->dump_exit = -1;
	s->phase = PHASE_DUMPING;
	return ctl_state_save(p->work, s) < 0 ? MCW_EXIT_IO : 0;
}

/* Notes the dumper's end; an error if it failed. */
static int check_dump(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	int status;
	if (s->dump_exit != -1)
		return 0;
	pid_t w = waitpid(s->dump_pid, &status, WNOHANG);
	if (w == 0)
		return 0; /* our child, still running */
	if (w < 0) /* not our child (a predecessor started it): look again */
		return ensure_dump(p, s, err, cap);
	s->dump_exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (s->dump_exit != 0) {
		snprintf(err, cap, "the dumper failed (exit %d): see %s/dump-%u.log", s->dump_exit,
			 p->work, s->dump_n);
		return s->dump_exit < 128 ? s->dump_exit : MCW_EXIT_SOFTWARE;
	}
	s->dump_done_ns = wall_ns();
	return ctl_state_save(p->work, s) < 0 ? MCW_EXIT_IO : 0;
}

/* One populate pass over what the reader sees now. 0: complete; 1: not yet; else fail. */
static int populate_pass(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	char from[CTL_PATH_MAX + 32], state[CTL_PATH_MAX + 32], out[CTL_PATH_MAX + 32],
		log[CTL_PATH_MAX + 32], mem[32], thr[16];
	ctl_dump_dir(from, sizeof(from), p, EBS_RO, s->dump_n);
	ctl_path(state, sizeof(state), p, "pop-%u", s->dump_n);
	ctl_path(out, sizeof(out), p, "populate-%u.json", s->dump_n);
	ctl_path(log, sizeof(log), p, "populate-%u.log", s->dump_n);
	struct stat sb;
	if (stat(from, &sb) < 0)
		return 1; /* the dumper has not made its directory visible yet */
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)p->memory_bytes);
	snprintf(thr, sizeof(thr), "%u", p->threads);
	char *args[POPULATE_ARGS_MAX] = { "populate", "--dest",	 (char *)p->dest, "--from",
					  from,	      "--state", state,		  "--once",
					  "--json",   "-q",	 "--memory",	  mem };
	unsigned n = 12;
	if (p->allow_shrink)
		args[n++] = "--allow-shrink";
	if (p->allow_smaller_items)
		args[n++] = "--allow-smaller-items";
	if (p->threads) {
		args[n++] = "--threads";
		args[n++] = thr;
	}
	int code = ctl_run_mcwarm(p, args, out, log, &s->populate_pid, s);
	uint64_t applied = (uint64_t)json_num(out, "files_done");
	s->files_applied += applied;
	s->items_sent += (uint64_t)json_num(out, "items_sent");
	s->already_present += (uint64_t)json_num(out, "already_present");
	s->evictions += (uint64_t)json_num(out, "evictions");
	if (applied > 0 && s->first_apply_ns == 0)
		s->first_apply_ns = wall_ns();
	s->cycles++;
	s->last_cycle_ns = wall_ns();
	ctl_state_save(p->work, s);
	/* evictions were accepted; refused items (out of memory: -M) never are */
	if (code == MCW_EXIT_TOO_SMALL && p->allow_shrink && json_num(out, "out_of_memory") == 0)
		code = json_true(out, "complete") ? MCW_EXIT_OK : MCW_EXIT_INCOMPLETE;
	if (code == MCW_EXIT_OK || code == MCW_EXIT_INCOMPLETE)
		return code;
	if (code == MCW_EXIT_TOO_SMALL) {
		snprintf(err, cap,
			 "the destination is too small: it evicted or refused items (populate exit "
			 "3, see %s). Fix: give it more memory, or accept a shrinking resize with "
			 "--allow-shrink",
			 log);
		return code;
	}
	if (code == MCW_EXIT_DATA && s->dump_exit != 0)
		return 1; /* a file seen damaged while the dump runs: it may be rewritten */
	snprintf(err, cap, "populate failed (exit %d): see %s", code, log);
	return code;
}

static int cycles(const struct ctl_plan *p, struct ctl_state *s, bool tty, char *err, size_t cap)
{
	unsigned after_dump = 0;
	for (;;) {
		int code = check_dump(p, s, err, cap);
		if (code != 0)
			return code;
		bool dump_done = s->dump_exit == 0;
		code = ctl_step_cycle(p, s, err, cap);
		if (code == 0)
			code = populate_pass(p, s, err, cap);
		progress(p, s, tty);
		if (code == 0 && dump_done)
			return 0; /* the dump's MANIFEST is fully applied */
		if (code != 0 && code != 1)
			return code;
		if (dump_done && ++after_dump > CYCLES_AFTER_DUMP_MAX) {
			snprintf(err, cap,
				 "the dump finished but %u passes later its MANIFEST is still not "
				 "fully applied: see %s/populate-%u.log",
				 CYCLES_AFTER_DUMP_MAX, p->work, s->dump_n);
			return MCW_EXIT_DATA;
		}
		if (!dump_done) {
			struct timespec ts = { p->cycle_ms / 1000, (long)(p->cycle_ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
}

static int verify(const struct ctl_plan *p, struct ctl_state *s)
{
	char out[CTL_PATH_MAX + 32], log[CTL_PATH_MAX + 32], ratio[32];
	ctl_path(out, sizeof(out), p, "verify.json");
	ctl_path(log, sizeof(log), p, "verify.log");
	snprintf(ratio, sizeof(ratio), "%g", p->min_ratio);
	char *args[] = { "verify", "--source", (char *)p->source, "--dest", (char *)p->dest,
			 "--min-ratio", ratio, "--json", "-q", NULL };
	pid_t pid;
	s->verify_exit = ctl_run_mcwarm(p, args, out, log, &pid, s);
	s->verify_ratio = json_num(out, "warm_ratio");
	s->phase = PHASE_VERIFIED;
	s->verified_ns = wall_ns();
	ctl_state_save(p->work, s);
	return s->verify_exit;
}

static double span_s(int64_t from_ns, int64_t to_ns)
{
	return from_ns && to_ns && to_ns > from_ns ? (double)(to_ns - from_ns) / 1e9 : 0;
}

static void report(const struct ctl_plan *p, const struct ctl_state *s, int code, bool json)
{
	double total = span_s(s->started_ns, s->finished_ns);
	double volume = span_s(s->started_ns, s->volume_ns);
	double dump = span_s(s->dump_started_ns, s->dump_done_ns);
	double populated = span_s(s->started_ns, s->populated_ns); /* the transfer itself */
	double verify = span_s(s->populated_ns, s->verified_ns);
	/* how long populate passes applied files while the dump still ran */
	double overlap = span_s(s->first_apply_ns, s->dump_done_ns);
	char how[160];
	if (s->first_apply_ns == 0)
		snprintf(how, sizeof(how), "nothing applied");
	else if (overlap > 0)
		snprintf(how, sizeof(how), "populate applied files during its last %.1f s", overlap);
	else
		snprintf(how, sizeof(how), "the dump ended before the first populate pass");
	fprintf(
	    stderr,
	    "mcwarm-ctl: warm %s: verify warm ratio %.6f; %llu items sent (%llu already "
	    "present) in %u populate passes; volume ready in %.1f s, dump %.1f s (%s), "
	    "populated at %.1f s, verify %.1f s, total %.1f s; destination evictions %llu%s%s\n",
	    code == 0		     ? "complete"
	    : s->phase == PHASE_DONE ? "complete, but the destination evicted items (exit 3)"
				     : "FAILED",
	    s->verify_ratio, (unsigned long long)s->items_sent,
	    (unsigned long long)s->already_present, s->cycles, volume, dump, how, populated, verify,
	    total, (unsigned long long)s->evictions, s->error[0] ? "; error: " : "", s->error);
	if (!json)
		return;
	printf("{\"command\":\"warm\",\"ok\":%s,\"exit_code\":%d,\"phase\":\"%s\","
	       "\"backend\":\"%s\",\"verify_ratio\":%.6f,\"verify_exit\":%d,\"items_sent\":%llu,"
	       "\"already_present\":%llu,\"cycles\":%u,\"volume_seconds\":%.3f,"
	       "\"dump_seconds\":%.3f,\"overlap_seconds\":%.3f,\"populated_seconds\":%.3f,"
	       "\"verify_seconds\":%.3f,\"total_seconds\":%.3f,\"dump_attempt\":%u,"
	       "\"evictions\":%llu}\n",
	       code == 0 ? "true" : "false", code, ctl_phase_name(s->phase),
	       ebs_kind_name(p->vol.kind), s->verify_ratio, s->verify_exit,
	       (unsigned long long)s->items_sent, (unsigned long long)s->already_present, s->cycles,
	       volume, dump, overlap, populated, verify, total, s->dump_n,
	       (unsigned long long)s->evictions);
}

/* A failure: record it, tear down what this warm-up created, say what is left. */
static int fail(const struct ctl_plan *p, struct ctl_state *s, int code, const char *err,
		bool json)
{
	char terr[512] = "";
	snprintf(s->error, sizeof(s->error), "%s", err);
	fprintf(stderr, "\nmcwarm-ctl: error: %s\n", err);
	char dir[CTL_PATH_MAX + 32];
	ctl_dump_dir(dir, sizeof(dir), p, EBS_RW, s->dump_n);
	if (s->dump_exit == -1)
		ctl_stop_pid(ctl_find_mcwarm("dump", "--out", dir));
	s->phase = PHASE_FAILED;
	s->finished_ns = wall_ns();
	if (ctl_step_teardown(p, s, true, terr, sizeof(terr)) != 0)
		fprintf(stderr, "mcwarm-ctl: could not clean up everything: %s; left behind: %s%s%s\n",
			terr, s->rw_device[0] ? s->rw_device : "", s->ro_device[0] ? " " : "",
			s->ro_device);
	else
		fprintf(stderr, "mcwarm-ctl: cleaned up: nothing mounted or attached; %s\n",
			s->volume_id[0] || p->vol.kind == EBS_DIR
				? "the volume and the dump's logs are kept in the work directory"
				: "the volume was removed; logs are kept in the work directory");
	ctl_state_save(p->work, s);
	report(p, s, code, json);
	return code;
}

int ctl_warm(const struct ctl_plan *p, bool json)
{
	struct ctl_state s;
	char err[1024] = "";
	bool tty = isatty(STDERR_FILENO);
	if (ebs_mkdirs(p->work) < 0) {
		fprintf(stderr, "mcwarm-ctl: cannot create the work directory %s: %s\n", p->work,
			strerror(errno));
		return MCW_EXIT_IO;
	}
	int ret = ctl_state_load(p->work, &s, err, sizeof(err));
	if (ret == -EBADMSG) {
		fprintf(stderr, "mcwarm-ctl: %s\n", err);
		return MCW_EXIT_DATA;
	}
	if (ret < 0 || s.phase == PHASE_FAILED || s.phase == PHASE_DONE) {
		/* a new warm-up; the volume a failed one created and kept stays ours, and the
		 * attempt numbers go on, so no directory of an earlier warm-up is mistaken
		 * for this one's */
		struct ctl_state prev = s;
		memset(&s, 0, sizeof(s));
		if (ret == 0) {
			s.created_volume = prev.created_volume;
			snprintf(s.volume_id, sizeof(s.volume_id), "%s", prev.volume_id);
			s.volume_bytes = prev.volume_bytes;
			s.dump_n = prev.dump_n;
		}
		s.dump_n++;
		s.dump_exit = s.verify_exit = -1;
		s.plan_crc = ctl_plan_crc(p);
		s.started_ns = wall_ns();
	} else if (s.plan_crc != ctl_plan_crc(p)) {
		fprintf(stderr, "mcwarm-ctl: %s holds the state of another warm-up (other servers "
				"or volume): use another --work directory\n",
			p->work);
		return MCW_EXIT_USAGE;
	} else {
		fprintf(stderr, "mcwarm-ctl: continuing the warm-up recorded in %s/ctl.state "
				"(phase %s)\n",
			p->work, ctl_phase_name(s.phase));
	}
	if (s.dump_n > 0) { /* a populate pass a killed controller left running */
		char st[CTL_PATH_MAX + 32];
		ctl_path(st, sizeof(st), p, "pop-%u", s.dump_n);
		ctl_stop_pid(ctl_find_mcwarm("populate", "--state", st));
	}
	int code = ctl_step_volume(p, &s, err, sizeof(err));
	if (code == 0 && s.volume_ns == 0) {
		s.volume_ns = wall_ns();
		ctl_state_save(p->work, &s);
	}
	if (code == 0 && s.phase < PHASE_POPULATED)
		code = ensure_dump(p, &s, err, sizeof(err));
	if (code == 0 && s.phase < PHASE_POPULATED) {
		code = cycles(p, &s, tty, err, sizeof(err));
		if (tty)
			fputc('\n', stderr);
		if (code == 0) {
			s.phase = PHASE_POPULATED;
			s.populated_ns = wall_ns();
			ctl_state_save(p->work, &s);
		}
	}
	if (code == 0 && s.phase < PHASE_VERIFIED) {
		code = verify(p, &s);
		if (code != 0)
			snprintf(err, sizeof(err), "verify: warm ratio %.6f is below %g (exit %d): "
				 "see %s/verify.json",
				 s.verify_ratio, p->min_ratio, code, p->work);
	}
	if (code != 0)
		return fail(p, &s, code, err, json);
	code = ctl_step_teardown(p, &s, !p->keep, err, sizeof(err));
	if (code != 0)
		return fail(p, &s, code, err, json);
	s.phase = PHASE_DONE;
	s.finished_ns = wall_ns();
	ctl_state_save(p->work, &s);
	/* a shrinking resize (--allow-shrink) finishes, and says the destination evicted */
	code = s.evictions > 0 ? MCW_EXIT_TOO_SMALL : 0;
	report(p, &s, code, json);
	return code;
}

int ctl_status(const struct ctl_plan *p, bool json)
{
	struct ctl_state s;
	char err[512], dir[CTL_PATH_MAX + 32];
	int ret = ctl_state_load(p->work, &s, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "mcwarm-ctl: %s\n",
			ret == -ENOENT ? "no warm-up recorded in this work directory" : err);
		return ret == -ENOENT ? MCW_EXIT_USAGE : MCW_EXIT_DATA;
	}
	ctl_dump_dir(dir, sizeof(dir), p, EBS_RW, s.dump_n);
	unsigned written = count_chunks(dir);
	double secs = s.started_ns == 0 ? 0
			  : (double)((s.finished_ns ? s.finished_ns : wall_ns()) - s.started_ns) / 1e9;
	double rate = secs > 0 ? (double)s.items_sent / secs : 0;
	bool dumper_alive = s.dump_exit == -1 && ctl_find_mcwarm("dump", "--out", dir) > 0;
	if (json) {
		printf("{\"phase\":\"%s\",\"dump_attempt\":%u,\"dump_running\":%s,"
		       "\"dump_exit\":%d,\"chunk_files_written\":%u,\"chunk_files_applied\":%llu,"
		       "\"lag_files\":%lld,\"items_sent\":%llu,\"already_present\":%llu,"
		       "\"items_per_second\":%.0f,\"cycles\":%u,\"verify_ratio\":%.6f,"
		       "\"elapsed_seconds\":%.1f,\"evictions\":%llu,\"error\":\"%s\"}\n",
		       ctl_phase_name(s.phase), s.dump_n, dumper_alive ? "true" : "false",
		       s.dump_exit, written, (unsigned long long)s.files_applied,
		       (long long)written - (long long)s.files_applied,
		       (unsigned long long)s.items_sent, (unsigned long long)s.already_present,
		       rate, s.cycles, s.verify_ratio, secs, (unsigned long long)s.evictions,
		       s.error);
		return 0;
	}
	printf("phase %s; dump attempt %u %s; chunk files written %u, applied %llu (lag %lld); "
	       "items sent %llu (%.0f/s); %u passes; verify ratio %.6f; %.1f s%s%s\n",
	       ctl_phase_name(s.phase), s.dump_n,
	       dumper_alive ? "running" : s.dump_exit == 0 ? "done" : "not running", written,
	       (unsigned long long)s.files_applied, (long long)written - (long long)s.files_applied,
	       (unsigned long long)s.items_sent, rate, s.cycles, s.verify_ratio, secs,
	       s.error[0] ? "; error: " : "", s.error);
	return 0;
}
