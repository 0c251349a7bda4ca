/*
 * cli.c: option value parsing and the terminal progress line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "core.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mcwarm %s: %s (see mcwarm %s --help)\n", cmd, msg, cmd);
	return MCW_EXIT_USAGE;
}

bool cli_size(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t *out)
{
	char a[32], b[32];
	if (!size_parse(val, out)) {
		cli_usage_error(cmd, "--%s: '%s' is not a size (examples: 64M, 1G, 4096)", opt,
				val);
		return false;
	}
	if (*out < min) {
		cli_usage_error(cmd, "--%s: %s is below the minimum of %s", opt,
				size_format(a, sizeof(a), *out), size_format(b, sizeof(b), min));
		return false;
	}
	return true;
}

bool cli_uint(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
	      uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(val, &end, 10);
	if (*val == '\0' || *end != '\0' || *val == '-' || v < min || v > max) {
		cli_usage_error(cmd, "--%s: '%s' is not a whole number from %llu to %llu", opt, val,
				(unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

void progress_init(struct progress *p, bool quiet)
{
	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->drawn = false;
}

void progress_draw(struct progress *p, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	if (!p->enabled)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
	p->drawn = true;
}

void progress_done(struct progress *p)
{
	if (p->drawn)
		fputs("\r\033[K", stderr);
	p->drawn = false;
}
