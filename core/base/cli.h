/*
 * cli.h: helpers every command's option parsing shares: typed option values with
 * operator-facing errors, and the progress line.
 */
#ifndef MCW_CLI_H
#define MCW_CLI_H

#include <stdbool.h>
#include <getopt.h>
#include <stdint.h>

#include "core.h"
#include "net.h"

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
	CLI_OPT_NICE,
	CLI_OPT_TLS, /* the source's TLS and authentication, then the destination's */
	CLI_OPT_TLS_CA,
	CLI_OPT_TLS_CERT,
	CLI_OPT_TLS_KEY,
	CLI_OPT_TLS_NAME,
	CLI_OPT_AUTH,
	CLI_OPT_DEST_TLS,
	CLI_OPT_DEST_TLS_CA,
	CLI_OPT_DEST_TLS_CERT,
	CLI_OPT_DEST_TLS_KEY,
	CLI_OPT_DEST_TLS_NAME,
	CLI_OPT_DEST_AUTH,
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
	    { "nice", required_argument, NULL, CLI_OPT_NICE }, CLI_SECURE_LONGOPTS,                \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}
/* --tls... and --dest-tls...: also in watch (its old and new clusters) */
#define CLI_SECURE_LONGOPTS                                                                        \
	{ "tls", no_argument, NULL, CLI_OPT_TLS },                                                 \
	    { "tls-ca", required_argument, NULL, CLI_OPT_TLS_CA },                                 \
	    { "tls-cert", required_argument, NULL, CLI_OPT_TLS_CERT },                             \
	    { "tls-key", required_argument, NULL, CLI_OPT_TLS_KEY },                               \
	    { "tls-server-name", required_argument, NULL, CLI_OPT_TLS_NAME },                      \
	    { "auth-file", required_argument, NULL, CLI_OPT_AUTH },                                \
	    { "dest-tls", no_argument, NULL, CLI_OPT_DEST_TLS },                                   \
	    { "dest-tls-ca", required_argument, NULL, CLI_OPT_DEST_TLS_CA },                       \
	    { "dest-tls-cert", required_argument, NULL, CLI_OPT_DEST_TLS_CERT },                   \
	    { "dest-tls-key", required_argument, NULL, CLI_OPT_DEST_TLS_KEY },                     \
	    { "dest-tls-server-name", required_argument, NULL, CLI_OPT_DEST_TLS_NAME },            \
	{                                                                                          \
		"dest-auth-file", required_argument, NULL, CLI_OPT_DEST_AUTH                       \
	}

struct cli_common {
	uint64_t memory_bytes;
	unsigned threads;
	int io_timeout_ms;
	uint64_t max_ops, max_bytes; /* per second, whole process; 0: no limit */
	const char *limits_file;
	const char *metrics_file; /* --metrics-file: Prometheus text, rewritten while running */
	int nice;		  /* --nice: the workers' nice value (run_thread_setup) */
	bool json, quiet, help;
	struct net_secure src_sec, dst_sec; /* --tls..., --dest-tls..., --auth-file... */
};

/* Help for --max-ops, --max-bytes, --limits-file and --metrics-file. */
extern const char cli_limits_help[];

/* Help for the TLS and authentication options. */
extern const char cli_secure_help[];

/* After parsing: hands the TLS and authentication options to the command's servers
 * (src or dst NULL: the command has no such side; populate's one server is dst and
 * takes --tls... too). 0, or MCW_EXIT_USAGE (reported) for options of a missing side. */
int cli_secure_finish(const char *cmd, struct cli_common *co, struct hostport *src,
		      struct hostport *dst);

/* TLS and authentication options given as words (mcw_secure_words), parsed as mcwarm's
 * command lines are, into co (defaults first). 0, or MCW_EXIT_USAGE (reported). */
int cli_secure_words(const char *cmd, const struct mcw_secure_words *sec, struct cli_common *co);

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
