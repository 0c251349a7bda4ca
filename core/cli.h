/*
 * cli.h: helpers every command's option parsing shares: typed option values with
 * operator-facing errors, and the progress line.
 */
#ifndef MCW_CLI_H
#define MCW_CLI_H

#include <stdbool.h>
#include <getopt.h>
#include <stdint.h>

/* Parse an option's value; on failure print "mcwarm CMD: --OPT: why" and return false. */
bool cli_size(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t *out);
bool cli_uint(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
	      uint64_t *out);
/* Options every command shares; splice CLI_COMMON_LONGOPTS into a command's table and
 * CLI_COMMON_SHORTOPTS into its short options, and hand unknown cases to
 * cli_common_option. */
enum {
	CLI_OPT_IO_TIMEOUT = 200,
	CLI_OPT_JSON,
	CLI_OPT_MAX_OPS,
	CLI_OPT_MAX_BYTES,
	CLI_OPT_LIMITS,
	CLI_OPT_METRICS,
};
#define CLI_COMMON_SHORTOPTS "m:t:qh"
#define CLI_COMMON_LONGOPTS                                                                        \
	{ "memory", required_argument, NULL, 'm' }, { "threads", required_argument, NULL, 't' },   \
	    { "io-timeout", required_argument, NULL, CLI_OPT_IO_TIMEOUT },                         \
	    { "json", no_argument, NULL, CLI_OPT_JSON }, { "quiet", no_argument, NULL, 'q' },      \
	    { "max-ops", required_argument, NULL, CLI_OPT_MAX_OPS },                               \
	    { "max-bytes", required_argument, NULL, CLI_OPT_MAX_BYTES },                           \
	    { "limits-file", required_argument, NULL, CLI_OPT_LIMITS },                            \
	    { "metrics-file", required_argument, NULL, CLI_OPT_METRICS },                          \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

struct cli_common {
	uint64_t memory_bytes;
	unsigned threads;
	int io_timeout_ms;
	uint64_t max_ops, max_bytes; /* per second, whole process; 0: no limit */
	const char *limits_file;
	const char *metrics_file; /* --metrics-file: Prometheus text, rewritten while running */
	bool json, quiet, help;
};

/* Help for --max-ops, --max-bytes, --limits-file and --metrics-file. */
extern const char cli_limits_help[];

/* 64 MiB, one thread per online CPU, MCW_IO_TIMEOUT_MS. */
void cli_common_defaults(struct cli_common *co);
/* A common option: 0 when taken; else the exit code (bad value or unknown option,
 * reported). */
int cli_common_option(const char *cmd, int ch, const char *arg, uint64_t memory_min,
		      struct cli_common *co);

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
