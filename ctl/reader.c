/*
 * reader.c: the populator's half of a warm-up: remount cycles and `mcwarm populate
 * --once` passes until the dump's MANIFEST is fully applied, then `mcwarm verify`.
 *
 *   ctl_read_cycles: (cycle: remount ro -> which attempt -> populate pass)* -> applied
 *   ctl_verify:      verify against the source, with the plan's filters
 *
 * With both halves on one host the dumper is ours and its end is known; a reader on its
 * own host knows the dump only from the volume: it follows the highest dump-<n> the
 * writer made, takes DONE (or every group's DONE) as the end, and gives up after
 * plan->idle_s without a new file. Populate passes are journaled (WORK/pop-<n>), so a
 * repeated cycle, or a reader killed and started again, never applies a file twice.
 *
 * --backend s3 has no remounts: one `mcwarm populate --follow` on the attempt's URL
 * (read_follow), watched until it ends; a reader on its own host looks for a newer
 * attempt in the store every CTL_S3_ATTEMPT_POLL_MS.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"

unsigned ctl_count_chunks(const char *dir)
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

const char *ctl_json_escape(char *out, size_t cap, const char *text)
{
	size_t o = 0;
	for (const unsigned char *c = (const unsigned char *)text; *c && o + 7 < cap; c++) {
		if (*c == '"' || *c == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\%c", *c);
		else if (*c < 0x20)
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *c);
		else
			out[o++] = (char)*c;
	}
	out[o] = '\0';
	return out;
}

const char *ctl_log_error(const char *log_path, char *out, size_t cap)
{
	char text[CTL_LOG_TAIL_BYTES];
	out[0] = '\0';
	FILE *f = fopen(log_path, "r");
	if (f == NULL)
		return out;
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof(text) - 1)
		fseek(f, -(long)sizeof(text) + 1, SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	const char *last = NULL;
	for (char *at = strstr(text, "error: "); at; at = strstr(at + 1, "error: "))
		last = at + strlen("error: ");
	if (last != NULL)
		snprintf(out, cap, "%.*s", (int)strcspn(last, "\n"), last);
	return out;
}

double ctl_json_num(const char *path, const char *key)
{
	char text[CTL_JSON_REPORT_MAX];
	const char *v = json_value(path, key, text, sizeof(text));
	return v ? strtod(v, NULL) : 0;
}

bool ctl_json_true(const char *path, const char *key)
{
	char text[CTL_JSON_REPORT_MAX];
	const char *v = json_value(path, key, text, sizeof(text));
	return v != NULL && strncmp(v, "true", 4) == 0;
}

static void progress(const struct ctl_plan *p, const struct ctl_state *s, bool tty)
{
	if (!tty)
		return;
	char dir[CTL_PATH_MAX + 32];
	uint64_t listed = 0, backlog = 0;
	ctl_dump_dir(dir, sizeof(dir), p, p->side == SIDE_RO ? EBS_RO : EBS_RW, s->dump_n);
	unsigned written = p->s3 ? (ctl_backlog(p, s, &listed, &backlog), (unsigned)listed)
				 : ctl_count_chunks(dir);
	fprintf(stderr,
		"\r\033[Kwarm: %s | dump %s: %u chunk files | populate: %llu applied (lag %lld), "
		"%llu items | cycle %u",
		ctl_phase_name(s->phase), s->dump_exit == 0 ? "done" : "running", written,
		(unsigned long long)s->files_applied,
		(long long)written - (long long)s->files_applied, (unsigned long long)s->items_sent,
		s->cycles);
	fflush(stderr);
}

/* The reader on its own host: the writer's latest attempt (dump-<n>, highest n) as the
 * reader sees it now; a newer one than we read replaces it (and its journal). */
static void follow_attempt(const struct ctl_plan *p, struct ctl_state *s)
{
	char top[CTL_PATH_MAX + 32];
	if (p->vol.kind == EBS_DIR)
		snprintf(top, sizeof(top), "%s", p->vol.path);
	else
		ctl_path(top, sizeof(top), p, "ro");
	DIR *d = opendir(top);
	struct dirent *de;
	unsigned n, latest = 0;
	while (d && (de = readdir(d)) != NULL)
		if (sscanf(de->d_name, "dump-%u", &n) == 1 && n > latest)
			latest = n;
	if (d)
		closedir(d);
	if (latest > s->dump_n) {
		if (s->dump_n > 0)
			fprintf(stderr,
				"mcwarm-ctl: the source host started dump attempt %u: "
				"reading it\n",
				latest);
		s->dump_n = latest;
		s->files_applied = 0;
		/* the reader's view of the dump's span: from its directory to its DONE */
		s->dump_started_ns = ctl_wall_ns();
		ctl_state_save(p->work, s);
	}
}

/* One populate command line for the current attempt: --once over what the reader sees
 * now, or (--backend s3) --follow on the attempt's URL until its MANIFEST is applied. */
struct pop_cmd {
	char from[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES], state[CTL_PATH_MAX + 32],
	    out[CTL_PATH_MAX + 32], log[CTL_PATH_MAX + 32], mem[32], thr[16], idle[16],
	    prom[CTL_PATH_MAX + 32];
	char *args[CTL_MCWARM_ARGS_MAX];
};

static void populate_cmd(const struct ctl_plan *p, const struct ctl_state *s, struct pop_cmd *c)
{
	if (p->s3)
		ctl_s3_dump_url(c->from, sizeof(c->from), p, s->dump_n);
	else
		ctl_dump_dir(c->from, sizeof(c->from), p, EBS_RO, s->dump_n);
	ctl_path(c->state, sizeof(c->state), p, "pop-%u", s->dump_n);
	ctl_path(c->out, sizeof(c->out), p, "populate-%u.json", s->dump_n);
	ctl_path(c->log, sizeof(c->log), p, "populate-%u.log", s->dump_n);
	snprintf(c->mem, sizeof(c->mem), "%llu", (unsigned long long)p->memory_bytes);
	snprintf(c->thr, sizeof(c->thr), "%u", p->threads);
	/* both halves here: our own dumper's end is watched, populate need not give up */
	snprintf(c->idle, sizeof(c->idle), "%u", p->idle_s ? p->idle_s : CTL_IDLE_S_DEFAULT);
	char *const first[] = {
		"populate", "--dest",  (char *)p->dest, "--from",
		c->from,    "--state", c->state,	p->s3 ? "--follow" : "--once",
		"--json",   "-q",      "--memory",	c->mem
	};
	unsigned n = sizeof(first) / sizeof(first[0]);
	memcpy(c->args, first, sizeof(first));
	if (p->s3) {
		c->args[n++] = "--idle-timeout";
		c->args[n++] = c->idle;
	}
	if (ctl_metrics_on()) { /* its live figures, for ours */
		ctl_metrics_child(c->prom, sizeof(c->prom), p, "populate", s->dump_n);
		c->args[n++] = "--metrics-file";
		c->args[n++] = c->prom;
	}
	if (p->allow_shrink)
		c->args[n++] = "--allow-shrink";
	if (p->allow_smaller_items)
		c->args[n++] = "--allow-smaller-items";
	if (p->threads) {
		c->args[n++] = "--threads";
		c->args[n++] = c->thr;
	}
	n = (unsigned)ctl_secure_args(p, CTL_DEST, c->args, (int)n, CTL_MCWARM_ARGS_MAX - 1);
	c->args[n] = NULL;
}

/* What a populate run that ended with code did: counts into the state. 0: the attempt's
 * MANIFEST is fully applied; 1: not yet; else an exit code (err says why). */
static int populate_result(const struct ctl_plan *p, struct ctl_state *s, const struct pop_cmd *c,
			   int code, char *err, size_t cap)
{
	uint64_t applied = (uint64_t)ctl_json_num(c->out, "files_done");
	s->files_applied += applied;
	s->items_sent += (uint64_t)ctl_json_num(c->out, "items_sent");
	s->already_present += (uint64_t)ctl_json_num(c->out, "already_present");
	s->bytes_sent += (uint64_t)ctl_json_num(c->out, "value_bytes");
	s->evictions += (uint64_t)ctl_json_num(c->out, "evictions");
	if (applied > 0 && s->first_apply_ns == 0)
		s->first_apply_ns = ctl_wall_ns();
	s->cycles++;
	s->last_cycle_ns = ctl_wall_ns();
	ctl_state_save(p->work, s);
	/* evictions were accepted; refused items (out of memory: -M) never are */
	if (code == MCW_EXIT_TOO_SMALL && p->allow_shrink &&
	    ctl_json_num(c->out, "out_of_memory") == 0)
		code = ctl_json_true(c->out, "complete") ? MCW_EXIT_OK : MCW_EXIT_INCOMPLETE;
	if (code == MCW_EXIT_OK || (code == MCW_EXIT_INCOMPLETE && !p->s3))
		return code;
	if (code == MCW_EXIT_TOO_SMALL) {
		snprintf(err, cap,
			 "the destination is too small: it evicted or refused items (populate exit "
			 "3, see %s). Fix: give it more memory, or accept a shrinking resize with "
			 "--allow-shrink",
			 c->log);
		return code;
	}
	if (code == MCW_EXIT_DATA && s->dump_exit != 0 && !p->s3)
		return 1; /* a file seen damaged while the dump runs: it may be rewritten */
	char why[512];
	ctl_log_error(c->log, why, sizeof(why));
	snprintf(err, cap, "populate failed (exit %d)%s%s: see %s", code, why[0] ? ": " : "", why,
		 c->log);
	return code == MCW_EXIT_INCOMPLETE ? MCW_EXIT_SOFTWARE : code;
}

/* One populate pass over what the reader sees now. 0: complete; 1: not yet; else fail. */
static int populate_pass(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	struct pop_cmd c;
	struct stat sb;
	populate_cmd(p, s, &c);
	if (s->dump_n == 0 || stat(c.from, &sb) < 0)
		return 1; /* the dumper has not made its directory visible yet */
	int code = ctl_run_mcwarm(p, c.args, c.out, c.log, &s->populate_pid, s);
	return populate_result(p, s, &c, code, err, cap);
}

/* Has the dump ended? Our own dumper tells; a reader on its own host reads DONE. */
static int dump_state(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	if (p->side != SIDE_RO)
		return ctl_dump_check(p, s, err, cap);
	char dir[CTL_PATH_MAX + 32 + CTL_GROUP_MAX];
	follow_attempt(p, s);
	ctl_dump_dir(dir, sizeof(dir), p, EBS_RO, s->dump_n);
	if (s->dump_n > 0 && s->dump_exit != 0 && ctl_dump_is_done(dir)) {
		s->dump_exit = 0;
		s->dump_done_ns = ctl_wall_ns();
	}
	return 0;
}

/* A reader on its own host waits for the writer, but not forever. */
static int idle_check(const struct ctl_plan *p, const struct ctl_state *s, int64_t since_ns,
		      char *err, size_t cap)
{
	if (p->side != SIDE_RO || ctl_wall_ns() - since_ns < (int64_t)p->idle_s * 1000000000LL)
		return 0;
	return snprintf(err, cap,
			"no new chunk file and no DONE from the source host in %u s "
			"(dump attempt %u): is mcwarm-ctl warm --side rw still running there? "
			"(mcwarm-ctl status on that host); run this again to go on waiting",
			p->idle_s, s->dump_n),
	       MCW_EXIT_TEMPFAIL;
}

static unsigned after_dump_pause_ms(unsigned passes)
{
	uint64_t ms = (uint64_t)CTL_AFTER_DUMP_PAUSE_MIN_MS << (passes < 16 ? passes : 16);
	return ms < CTL_AFTER_DUMP_PAUSE_MAX_MS ? (unsigned)ms : CTL_AFTER_DUMP_PAUSE_MAX_MS;
}

bool ctl_backlog(const struct ctl_plan *p, const struct ctl_state *s, uint64_t *listed,
		 uint64_t *backlog)
{
	char path[CTL_PATH_MAX + 48], line[256];
	ctl_path(path, sizeof(path), p, "pop-%u/backlog", s->dump_n);
	*listed = *backlog = 0;
	FILE *f = s->dump_n ? fopen(path, "r") : NULL;
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if (sscanf(line, "backlog_chunks=%llu", &v) == 1)
			*backlog = v;
		else if (sscanf(line, "chunks_listed=%llu", &v) == 1)
			*listed = v;
	}
	fclose(f);
	return true;
}

/* --backend s3, a reader on its own host: the writer's newest attempt, found in the store
 * (something under dump-<n+1>/); a newer one than we read replaces it (and its journal).
 * 0 (*moved when it did) or an exit code. */
static int s3_newer_attempt(const struct ctl_plan *p, struct ctl_state *s, bool *moved, char *err,
			    size_t cap)
{
	char name[32];
	bool yes = true;
	*moved = false;
	while (yes && s->dump_n < CTL_DUMP_ATTEMPTS_MAX) { /* the writer makes no more */
		snprintf(name, sizeof(name), "dump-%u/", s->dump_n + 1);
		int code = ctl_s3_has(p, name, &yes, err, cap);
		if (code != 0)
			return code;
		if (!yes)
			break;
		if (s->dump_n > 0)
			fprintf(stderr,
				"mcwarm-ctl: the source host started dump attempt %u: "
				"reading it\n",
				s->dump_n + 1);
		s->dump_n++;
		s->files_applied = 0;
		s->dump_started_ns = ctl_wall_ns();
		*moved = true;
	}
	if (s->dump_n == 0) /* nothing uploaded yet: populate --follow waits for it */
		s->dump_n = 1;
	ctl_state_save(p->work, s);
	return 0;
}

/* Stops a populate child of ours and reaps it. */
static void stop_child(pid_t pid)
{
	ctl_stop_pid(pid);
	waitpid(pid, NULL, 0);
}

/* Watches the populate --follow child: 0 with *status its exit code once it ended; 1
 * when the writer started a newer attempt (the child is stopped); else an exit code (our
 * dumper failed, or the store did: the child is stopped). */
static int follow_wait(const struct ctl_plan *p, struct ctl_state *s, pid_t pid, bool tty,
		       int *status, char *err, size_t cap)
{
	int64_t look_ns = ctl_wall_ns() + (int64_t)CTL_S3_ATTEMPT_POLL_MS * 1000000;
	for (;;) {
		int st, code = 0;
		bool moved = false;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			return 0;
		}
		if (w < 0)
			return snprintf(err, cap, "lost the populate child: %s", strerror(errno)),
			       MCW_EXIT_SOFTWARE;
		unsigned n = s->dump_n;
		if (p->side != SIDE_RO) { /* our own dumper: a failure ends the reading too */
			code = ctl_dump_check(p, s, err, cap);
			moved = s->dump_n != n; /* it began a new attempt (no checkpoint) */
		} else if (ctl_wall_ns() > look_ns) {
			code = s3_newer_attempt(p, s, &moved, err, cap);
			look_ns = ctl_wall_ns() + (int64_t)CTL_S3_ATTEMPT_POLL_MS * 1000000;
		}
		if (code != 0 || moved) {
			stop_child(pid);
			return code != 0 ? code : 1;
		}
		progress(p, s, tty);
		ctl_wait_ms(p, s, p->cycle_ms);
	}
}

/* --backend s3: populate --follow on the attempt's URL until its MANIFEST is applied (a
 * reader on its own host follows the writer to a newer attempt, and marks itself reading
 * in the store for release). */
static int read_follow(const struct ctl_plan *p, struct ctl_state *s, bool tty, char *err,
		       size_t cap)
{
	bool moved;
	int code = 0;
	if (p->side == SIDE_RO) {
		code = ctl_s3_reader_mark(p, "reading", err, cap);
		if (code == 0)
			code = s3_newer_attempt(p, s, &moved, err, cap);
		if (code != 0)
			return code;
	}
	for (;;) {
		struct pop_cmd c;
		int status;
		populate_cmd(p, s, &c);
		s->populate_pid = ctl_spawn_mcwarm(p, c.args, c.out, c.log);
		if (s->populate_pid < 0)
			return snprintf(err, cap, "cannot start populate: %s",
					strerror((int)-s->populate_pid)),
			       MCW_EXIT_SOFTWARE;
		ctl_state_save(p->work, s);
		ctl_crash_point("pass");
		code = follow_wait(p, s, s->populate_pid, tty, &status, err, cap);
		s->populate_pid = 0;
		if (code == 1)
			continue; /* a newer attempt: its own journal, from its start */
		if (code == 0)
			code = populate_result(p, s, &c, status, err, cap);
		if (code != 0)
			return code;
		break;
	}
	/* the MANIFEST is applied, so DONE is in the store: a dumper of ours ends now */
	for (unsigned ms = 0;
	     p->side != SIDE_RO && s->dump_exit == -1 && code == 0 && ms < CTL_STOP_WAIT_MS;
	     ms += CTL_AFTER_DUMP_PAUSE_MIN_MS) {
		ctl_wait_ms(p, s, CTL_AFTER_DUMP_PAUSE_MIN_MS);
		code = ctl_dump_check(p, s, err, cap);
	}
	if (p->side == SIDE_RO && code == 0) {
		s->dump_exit = 0;
		s->dump_done_ns = ctl_wall_ns();
	}
	return code;
}

int ctl_read_cycles(const struct ctl_plan *p, struct ctl_state *s, bool tty, char *err, size_t cap)
{
	if (p->s3)
		return read_follow(p, s, tty, err, cap);
	unsigned after_dump = 0;
	uint64_t seen = s->files_applied;
	unsigned seen_n = s->dump_n;
	int64_t since_ns = ctl_wall_ns();
	for (;;) {
		/* our own dumper's end is known before the remount that shows all of it; a
		 * remote one's only after the remount */
		bool remote = p->side == SIDE_RO;
		int code = remote ? 0 : dump_state(p, s, err, cap);
		if (code == 0)
			code = ctl_step_cycle(p, s, err, cap);
		if (code == 0 && remote)
			code = dump_state(p, s, err, cap);
		if (code != 0)
			return code;
		bool dump_done = s->dump_exit == 0;
		code = populate_pass(p, s, err, cap);
		progress(p, s, tty);
		if (code == 0 && dump_done)
			return 0; /* the dump's MANIFEST is fully applied */
		if (code != 0 && code != 1)
			return code;
		if (dump_done && ++after_dump > CTL_CYCLES_AFTER_DUMP_MAX)
			return snprintf(err, cap,
					"the dump finished but %u passes later its MANIFEST is "
					"still not fully applied: see %s/populate-%u.log",
					CTL_CYCLES_AFTER_DUMP_MAX, p->work, s->dump_n),
			       MCW_EXIT_DATA;
		if (s->files_applied != seen || s->dump_n != seen_n) {
			seen = s->files_applied;
			seen_n = s->dump_n;
			since_ns = ctl_wall_ns();
		}
		code = idle_check(p, s, since_ns, err, cap);
		if (code != 0)
			return code;
		if (!dump_done)
			ctl_wait_ms(p, s, p->cycle_ms);
		else /* DONE is there but this view does not show all of it yet */
			ctl_wait_ms(p, s, after_dump_pause_ms(after_dump));
	}
}

/* --keep for verify of one resize group: its node, host_port -> host:port. */
static int group_keep(const struct ctl_plan *p, char **args, int n, char *node, size_t cap)
{
	bool ring_to = false, keep = false;
	for (unsigned i = 0; i < p->nfilters; i++) {
		ring_to |= strcmp(p->filter[i], "--ring-to") == 0;
		keep |= strcmp(p->filter[i], "--keep") == 0;
	}
	if (p->group[0] == '\0' || !ring_to || keep)
		return n;
	snprintf(node, cap, "%s", p->group);
	char *us = strrchr(node, '_');
	if (us)
		*us = ':';
	args[n++] = "--keep";
	args[n++] = node;
	return n;
}

int ctl_verify(const struct ctl_plan *p, struct ctl_state *s)
{
	char out[CTL_PATH_MAX + 32], log[CTL_PATH_MAX + 32], ratio[32], node[CTL_GROUP_MAX];
	ctl_path(out, sizeof(out), p, "verify.json");
	ctl_path(log, sizeof(log), p, "verify.log");
	snprintf(ratio, sizeof(ratio), "%g", p->min_ratio);
	char *args[CTL_RUN_ARGS_MAX] = { "verify", "--source",	    (char *)p->source,
					 "--dest", (char *)p->dest, "--min-ratio",
					 ratio,	   "--json",	    "-q" };
	int n = ctl_secure_args(p, CTL_BOTH, args, 9, CTL_RUN_ARGS_MAX - 3);
	n = ctl_filter_args(p, args, n, CTL_RUN_ARGS_MAX - 3);
	n = group_keep(p, args, n, node, sizeof(node));
	args[n] = NULL;
	pid_t pid;
	s->verify_exit = ctl_run_mcwarm(p, args, out, log, &pid, s);
	s->verify_ratio = ctl_json_num(out, "warm_ratio");
	s->phase = PHASE_VERIFIED;
	s->verified_ns = ctl_wall_ns();
	ctl_state_save(p->work, s);
	return s->verify_exit;
}
