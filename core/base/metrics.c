/*
 * metrics.c: --metrics-file (metrics.h).
 *
 * Nothing here blocks a data path: commands call it from their progress loop, on the
 * main thread, at most every MCW_METRICS_INTERVAL_MS. A failed write is logged once and
 * retried at the next snapshot; it never fails the command.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "core.h"
#include "mcw_limits.h"
#include "metrics.h"

void metrics_init(struct metrics *m, const char *path, const char *command)
{
	m->path = path && path[0] ? path : NULL;
	m->command = command;
	m->next_ns = 0;
	m->start_unix_s = wall_ns() / 1000000000LL;
	m->len = 0;
	m->dropped = 0;
	m->write_failed = false;
}

bool metrics_due(struct metrics *m)
{
	if (!metrics_on(m))
		return false;
	int64_t now = mono_ns();
	if (now < m->next_ns)
		return false;
	m->next_ns = now + (int64_t)MCW_METRICS_INTERVAL_MS * 1000000;
	return true;
}

/* Appends a whole piece or nothing: false when it does not fit. */
static bool put(struct metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool put(struct metrics *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(m->text + m->len, sizeof(m->text) - m->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(m->text) - m->len) {
		m->text[m->len] = '\0';
		return false;
	}
	m->len += (size_t)n;
	return true;
}

static void family(struct metrics *m, enum metrics_type type, const char *name, const char *help)
{
	put(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type == METRICS_COUNTER ? "counter" : "gauge");
}

/* The whole family or none of it: a family begun at offset at is dropped unless ok. */
static void family_end(struct metrics *m, size_t at, bool ok)
{
	if (ok)
		return;
	m->len = at;
	m->text[at] = '\0';
	m->dropped++;
}

void metrics_add(struct metrics *m, enum metrics_type type, const char *name, const char *help,
		 const char *labels, double value)
{
	if (!metrics_on(m))
		return;
	size_t at = m->len;
	family(m, type, name, help);
	family_end(m, at,
		   put(m, "%s{command=\"%s\"%s%s} %.17g\n", name, m->command, labels[0] ? "," : "",
		       labels, value));
}

void metrics_add_kinds(struct metrics *m, const char *name, const char *help, const char *label,
		       const char *const *kinds, const uint64_t *values, unsigned n)
{
	if (!metrics_on(m))
		return;
	size_t at = m->len;
	family(m, METRICS_COUNTER, name, help);
	bool ok = true;
	for (unsigned i = 0; i < n && ok; i++)
		ok = put(m, "%s{command=\"%s\",%s=\"%s\"} %llu\n", name, m->command, label,
			 kinds[i], (unsigned long long)values[i]);
	family_end(m, at, ok);
}

void metrics_add_state(struct metrics *m, const char *name, const char *help, const char *label,
		       const char *const *states, unsigned n, unsigned current)
{
	if (!metrics_on(m))
		return;
	size_t at = m->len;
	family(m, METRICS_GAUGE, name, help);
	bool ok = true;
	for (unsigned i = 0; i < n && ok; i++)
		ok = put(m, "%s{command=\"%s\",%s=\"%s\"} %d\n", name, m->command, label, states[i],
			 i == current);
	family_end(m, at, ok);
}

const char *metrics_phase_of(int exit_code)
{
	return exit_code == MCW_EXIT_OK		  ? "done"
	       : exit_code == MCW_EXIT_INCOMPLETE ? "incomplete"
						  : "failed";
}

void metrics_begin(struct metrics *m, const char *phase)
{
	static const char *const phases[] = { "running", "done", "incomplete", "failed" };
	m->len = 0;
	m->text[0] = '\0';
	m->dropped = 0;
	char labels[64];
	snprintf(labels, sizeof(labels), "version=\"%s\"", MCW_VERSION);
	metrics_add(m, METRICS_GAUGE, "mcwarm_info", "mcwarm's version and the command running",
		    labels, 1);
	unsigned current = 0;
	while (current < ARRAY_LEN(phases) - 1 && strcmp(phase, phases[current]) != 0)
		current++;
	metrics_add_state(m, "mcwarm_phase",
			  "1 for the phase the command is in (running, done, incomplete, failed)",
			  "phase", phases, ARRAY_LEN(phases), current);
	metrics_add(m, METRICS_GAUGE, "mcwarm_start_time_seconds",
		    "when the command started, unix time", "", (double)m->start_unix_s);
	metrics_add(m, METRICS_GAUGE, "mcwarm_last_update_time_seconds",
		    "when this file was written, unix time", "",
		    (double)(wall_ns() / 1000000000LL));
}

int metrics_commit(struct metrics *m)
{
	if (!metrics_on(m))
		return 0;
	if (m->dropped > 0)
		put(m, "# %u metric families did not fit in %d bytes\n", m->dropped,
		    METRICS_TEXT_MAX);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", m->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = fd < 0 ? -errno : 0;
	for (size_t off = 0; ret == 0 && off < m->len;) {
		ssize_t n = write(fd, m->text + off, m->len - off);
		if (n <= 0)
			ret = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	if (fd >= 0 && close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, m->path) < 0)
		ret = -errno;
	if (ret < 0 && !m->write_failed) {
		log_warn("--metrics-file %s: cannot write it: %s (the run goes on; tried again "
			 "every %d s)",
			 m->path, strerror(-ret), MCW_METRICS_INTERVAL_MS / 1000);
		m->write_failed = true;
	}
	if (ret == 0)
		m->write_failed = false;
	return ret;
}

void metrics_label_escape(char *out, size_t cap, const char *value)
{
	size_t o = 0;
	for (const char *p = value; *p && o + 3 < cap; p++) {
		if (*p == '\\' || *p == '"') {
			out[o++] = '\\';
			out[o++] = *p;
		} else if (*p == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}
