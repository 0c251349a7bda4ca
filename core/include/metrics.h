/*
 * metrics.h: --metrics-file, the Prometheus text format (exposition format 0.0.4) in a
 * file rewritten atomically while a command runs: the node_exporter textfile collector's
 * convention (write PATH.tmp, rename over PATH), so a scraper never reads half a file.
 *
 * A command fills one snapshot at a time (metrics_begin, metrics_add..., metrics_commit)
 * every MCW_METRICS_INTERVAL_MS and once more at its end. The text is built in a fixed
 * buffer; a family that does not fit is dropped and counted, never truncated mid-line.
 * Names follow Prometheus' rules (mcwarm_ prefix, base units, _total for counters).
 *
 * Public (core/include/) because mcwarm-ctl writes its own file with it too.
 */
#ifndef MCW_METRICS_H
#define MCW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_TEXT_MAX (32 * 1024)

enum metrics_type { METRICS_GAUGE, METRICS_COUNTER };

struct metrics {
	const char *path; /* NULL: off */
	const char *command;
	int64_t next_ns;
	int64_t start_unix_s;
	size_t len;
	unsigned dropped;
	bool write_failed; /* reported once */
	char text[METRICS_TEXT_MAX];
};

/* path NULL or "" turns every call into nothing. */
void metrics_init(struct metrics *m, const char *path, const char *command);
static inline bool metrics_on(const struct metrics *m)
{
	return m->path != NULL;
}
/* Time for a new snapshot (the interval elapsed; always true the first time). */
bool metrics_due(struct metrics *m);

/* Starts a snapshot with the families every command has: mcwarm_info, mcwarm_phase
 * (running, done, incomplete, failed: 1 for the current one), mcwarm_start_time_seconds
 * and mcwarm_last_update_time_seconds. */
void metrics_begin(struct metrics *m, const char *phase);
/* One family with one sample; labels is "" or 'name="value",...' (values escaped by the
 * caller: metrics_label_escape). */
void metrics_add(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		 const char *labels, double value);
/* A family of counters by kind: mcwarm_errors_total{kind="..."} and the like. */
void metrics_add_kinds(struct metrics *m, const char *name, const char *help, const char *label,
		       const char *const *kinds, const uint64_t *values, unsigned n);
/* A state set: one gauge per state, 1 for states[current], 0 for the others. */
void metrics_add_state(struct metrics *m, const char *name, const char *help, const char *label,
		       const char *const *states, unsigned n, unsigned current);
/* The phase a command ends in, from its exit code: done, incomplete (exit 1), failed. */
const char *metrics_phase_of(int exit_code);
/* Writes PATH.tmp and renames it over PATH. 0 or -errno (logged once). */
int metrics_commit(struct metrics *m);

/* Escapes a label value (backslash, double quote, newline) into out. */
void metrics_label_escape(char *out, size_t cap, const char *value);

#endif
