/*
 * cli.h: helpers every command's option parsing shares: typed option values with
 * operator-facing errors, and the progress line.
 */
#ifndef MCW_CLI_H
#define MCW_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Parse an option's value; on failure print "mcwarm CMD: --OPT: why" and return false. */
bool cli_size(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t *out);
bool cli_uint(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
	      uint64_t *out);
/* Prints "mcwarm CMD: message (see mcwarm CMD --help)" and returns MCW_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A one-line progress display on stderr when it is a terminal. */
struct progress {
	bool enabled;
	bool drawn;
};
void progress_init(struct progress *p, bool quiet);
void progress_draw(struct progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_done(struct progress *p);

#endif
