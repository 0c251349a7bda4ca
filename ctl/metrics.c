/*
 * metrics.c: `mcwarm-ctl warm --metrics-file PATH`: the warm-up as Prometheus text,
 * rewritten atomically every MCW_METRICS_INTERVAL_MS while the controller waits (between
 * steps, between populate passes, while a pass or the dumper runs) and once at the end.
 *
 * The controller's own families are named mcwarm_warm_* (its step, the dump attempt,
 * chunk files written, applied and the backlog between them, items and bytes sent,
 * evictions, the verify ratio). Live figures of a running child come from the child's
 * own --metrics-file (WORK/dump-<n>.prom, WORK/populate-<n>.prom), which the controller
 * passes to it and reads back: only the few samples named here, by their full name.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"
#include "metrics.h"

static struct metrics ctl_metrics;
static char child_text[CTL_CHILD_PROM_MAX + 1];

void ctl_metrics_init(const char *path)
{
	metrics_init(&ctl_metrics, path, "warm");
}

bool ctl_metrics_on(void)
{
	return metrics_on(&ctl_metrics);
}

void ctl_metrics_child(char *out, size_t cap, const struct ctl_plan *p, const char *cmd, unsigned n)
{
	ctl_path(out, cap, p, "%s-%u.prom", cmd, n);
}

/* The value of the first sample of family name in a child's file, 0 if absent. */
static double child_sample(const char *text, const char *name)
{
	size_t len = strlen(name);
	for (const char *l = text; l != NULL && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, name, len) != 0 || (l[len] != '{' && l[len] != ' '))
			continue;
		const char *v = l[len] == '{' ? strchr(l + len, '}') : l + len;
		return v ? strtod(v + (*v == '}'), NULL) : 0;
	}
	return 0;
}

/* A running child's file, or "" (none, or not written yet). */
static const char *child_read(const struct ctl_plan *p, const char *cmd, unsigned n, pid_t pid)
{
	char path[CTL_PATH_MAX + 32];
	child_text[0] = '\0';
	if (pid <= 0)
		return child_text;
	ctl_metrics_child(path, sizeof(path), p, cmd, n);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return child_text;
	size_t got = fread(child_text, 1, CTL_CHILD_PROM_MAX, f);
	fclose(f);
	child_text[got] = '\0';
	return child_text;
}

static void add(enum metrics_type type, const char *name, const char *help, const char *labels,
		double value)
{
	metrics_add(&ctl_metrics, type, name, help, labels, value);
}

static void snapshot(const struct ctl_plan *p, const struct ctl_state *s, const char *phase)
{
	struct metrics *m = &ctl_metrics;
	char side[32], dir[CTL_PATH_MAX + 32 + CTL_GROUP_MAX], dump_json[CTL_PATH_MAX + 32];
	snprintf(side, sizeof(side), "side=\"%s\"", ctl_side_name(p->side));
	metrics_begin(m, phase);
	const char *steps[PHASE_FAILED + 1];
	for (unsigned i = 0; i <= PHASE_FAILED; i++)
		steps[i] = ctl_phase_name((enum ctl_phase)i);
	metrics_add_state(m, "mcwarm_warm_step",
			  "1 for the step the warm-up is in (new, volume, dumping, dumped, "
			  "populated, verified, done, failed)",
			  "step", steps, PHASE_FAILED + 1, (unsigned)s->phase);
	add(METRICS_GAUGE, "mcwarm_warm_dump_attempt", "the dump attempt read or written", side,
	    s->dump_n);
	bool ours = p->side != SIDE_RO;
	if (ours) { /* our own dumper: its live file, then its summary once it ended */
		const char *t = child_read(p, "dump", s->dump_n, s->dump_pid);
		ctl_path(dump_json, sizeof(dump_json), p, "dump-%u.json", s->dump_n);
		bool live = t[0] != '\0' && s->dump_exit != 0;
		add(METRICS_COUNTER, "mcwarm_warm_dump_items_total", "items the dumper wrote", side,
		    live ? child_sample(t, "mcwarm_items_total")
			 : ctl_json_num(dump_json, "items"));
		add(METRICS_COUNTER, "mcwarm_warm_dump_value_bytes_total",
		    "value bytes the dumper wrote", side,
		    live ? child_sample(t, "mcwarm_value_bytes_total")
			 : ctl_json_num(dump_json, "value_bytes"));
	}
	uint64_t listed, backlog; /* populate's STATE/backlog: the store's view (s3) */
	bool has_backlog = ctl_backlog(p, s, &listed, &backlog);
	ctl_dump_dir(dir, sizeof(dir), p, p->side == SIDE_RO ? EBS_RO : EBS_RW, s->dump_n);
	/* s3: what populate listed; the writer's, once its summary says (no listing here) */
	unsigned written = !p->s3		? (s->dump_n ? ctl_count_chunks(dir) : 0)
			   : p->side == SIDE_RW ? (unsigned)ctl_json_num(dump_json, "files")
						: (unsigned)listed;
	add(METRICS_GAUGE, "mcwarm_warm_chunk_files",
	    "chunk files of the dump as this host sees it", side, written);
	if (p->side == SIDE_RW)
		return;
	const char *t = child_read(p, "populate", s->dump_n, s->populate_pid);
	double applied = (double)s->files_applied + child_sample(t, "mcwarm_files_applied_total");
	add(METRICS_COUNTER, "mcwarm_warm_chunk_files_applied_total",
	    "chunk files applied to the destination", side, applied);
	add(METRICS_GAUGE, "mcwarm_warm_backlog_files",
	    "chunk files seen but not applied yet (for an autoscaler)", side,
	    p->s3 && has_backlog ? (double)backlog
	    : written > applied	 ? written - applied
				 : 0);
	add(METRICS_COUNTER, "mcwarm_warm_items_sent_total", "items sent to the destination", side,
	    (double)s->items_sent + child_sample(t, "mcwarm_items_total"));
	add(METRICS_COUNTER, "mcwarm_warm_value_bytes_sent_total",
	    "value bytes sent to the destination", side,
	    (double)s->bytes_sent + child_sample(t, "mcwarm_value_bytes_total"));
	add(METRICS_COUNTER, "mcwarm_warm_populate_passes_total", "populate passes finished", side,
	    s->cycles);
	add(METRICS_COUNTER, "mcwarm_warm_destination_evictions_total",
	    "items the destination evicted during populate passes", side, (double)s->evictions);
	add(METRICS_GAUGE, "mcwarm_warm_verify_ratio",
	    "fraction of items verify found equal (0 before verify)", side, s->verify_ratio);
}

void ctl_metrics_tick(const struct ctl_plan *p, const struct ctl_state *s)
{
	if (!metrics_due(&ctl_metrics))
		return;
	snapshot(p, s, "running");
	metrics_commit(&ctl_metrics);
}

void ctl_metrics_final(const struct ctl_plan *p, const struct ctl_state *s, int code)
{
	if (!ctl_metrics_on())
		return;
	snapshot(p, s, metrics_phase_of(code));
	metrics_commit(&ctl_metrics);
}

void ctl_wait_ms(const struct ctl_plan *p, const struct ctl_state *s, unsigned ms)
{
	while (ms > 0) {
		unsigned slice = ms < CTL_WAIT_SLICE_MS ? ms : CTL_WAIT_SLICE_MS;
		struct timespec ts = { slice / 1000, (long)(slice % 1000) * 1000000L };
		nanosleep(&ts, NULL);
		ms -= slice;
		ctl_metrics_tick(p, s);
	}
}

int ctl_wait_child(const struct ctl_plan *p, const struct ctl_state *s, pid_t pid)
{
	int status, pidfd = -1;
	if (ctl_metrics_on())
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* with a pidfd the wait wakes for the file as well; without one (metrics off, or
	 * an old kernel) it is a plain wait */
	while (pidfd >= 0) {
		struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
		if (poll(&pfd, 1, CTL_WAIT_SLICE_MS) > 0)
			break;
		ctl_metrics_tick(p, s);
	}
	if (pidfd >= 0)
		close(pidfd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return MCW_EXIT_SOFTWARE;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
