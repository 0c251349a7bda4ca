/*
 * cli.c: option value parsing and the terminal progress line.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "core.h"
#include "mcw_limits.h"

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

const char cli_limits_help[] =
    "live-traffic safety:\n"
    "      --max-ops N          at most N requests per second to the server, in total\n"
    "                           (smooth: no burst larger than one batch; default: none)\n"
    "      --max-bytes SIZE     at most SIZE value bytes per second (e.g. 50M)\n"
    "      --limits-file FILE   read the limits from FILE whenever it changes, to slow\n"
    "                           down or speed up while running: 'max-ops = N' and\n"
    "                           'max-bytes = SIZE' lines (a missing line: no limit)\n"
    "      --nice N             run the workers (the threads that send the requests) at\n"
    "                           nice N, 0-19 (default 10): on a shared host the servers'\n"
    "                           own threads get the CPU first; 0 keeps the priority\n"
    "                           mcwarm was started with, which is never lowered\n"
    "\n"
    "monitoring:\n"
    "      --metrics-file PATH  write metrics in the Prometheus text format to PATH every\n"
    "                           5 s and at the end, atomically (PATH.tmp, then renamed:\n"
    "                           node_exporter's textfile collector reads it): phase,\n"
    "                           items, bytes, rate, lag, errors, destination evictions\n";

const char cli_secure_help[] =
    "TLS and authentication (memcached -Z and -Y), each side on its own:\n"
    "      --tls                talk TLS to the source (the server's certificate is\n"
    "                           verified, and its name: see --tls-server-name)\n"
    "      --tls-ca FILE        CA certificates (PEM) to verify it with (default: the\n"
    "                           system's trust store)\n"
    "      --tls-cert FILE      client certificate (PEM), for a server started with\n"
    "                           ssl_verify_mode and ssl_ca_cert\n"
    "      --tls-key FILE       its private key (default: in --tls-cert)\n"
    "      --tls-server-name N  the name its certificate must carry (default: the host\n"
    "                           of the address; an IP address is checked as an IP)\n"
    "      --auth-file FILE     ASCII authentication: FILE's first line is\n"
    "                           'user:password' (memcached -Y's format) or 'user password';\n"
    "                           never on the command line; chmod 600 it\n"
    "      --dest-tls, --dest-tls-ca, --dest-tls-cert, --dest-tls-key,\n"
    "      --dest-tls-server-name, --dest-auth-file\n"
    "                           the same for the destination (populate: --tls... and\n"
    "                           --auth-file name its destination too)\n"
    "   TLS runs in user space (OpenSSL over io_uring through memory buffers); the log\n"
    "   says so, and whether the kernel offers kernel TLS.\n";

static bool side_used(const struct net_secure *s)
{
	return s->tls || s->ca_file || s->cert_file || s->key_file || s->server_name ||
	       s->auth_file;
}

static int side_finish(const char *cmd, struct net_secure *s, const char *opt, const char *auth_opt,
		       struct hostport *hp)
{
	s->opt = opt;
	s->auth_opt = auth_opt;
	if ((s->ca_file || s->cert_file || s->key_file || s->server_name) && !s->tls)
		return cli_usage_error(cmd, "--%s-ca, -cert, -key and -server-name need --%s", opt,
				       opt);
	if (s->key_file && !s->cert_file)
		return cli_usage_error(cmd, "--%s-key needs --%s-cert", opt, opt);
	hp->sec = side_used(s) ? s : NULL;
	return 0;
}

int cli_secure_finish(const char *cmd, struct cli_common *co, struct hostport *src,
		      struct hostport *dst)
{
	if (src == NULL && dst != NULL && side_used(&co->src_sec)) {
		if (side_used(&co->dst_sec))
			return cli_usage_error(cmd, "give --tls... or --dest-tls..., not both");
		co->dst_sec = co->src_sec; /* populate: its one server */
		memset(&co->src_sec, 0, sizeof(co->src_sec));
		int ret = side_finish(cmd, &co->dst_sec, "tls", "auth-file", dst);
		return ret;
	}
	if (src == NULL && side_used(&co->src_sec))
		return cli_usage_error(cmd, "--tls... and --auth-file: this command has no source");
	if (dst == NULL && side_used(&co->dst_sec))
		return cli_usage_error(cmd, "--dest-tls... and --dest-auth-file: this command has "
					    "no destination");
	int ret = src ? side_finish(cmd, &co->src_sec, "tls", "auth-file", src) : 0;
	if (ret == 0 && dst)
		ret = side_finish(cmd, &co->dst_sec, "dest-tls", "dest-auth-file", dst);
	return ret;
}

/* --tls... and --dest-tls...: 0 when ch is one of them, 1 when not. */
static int secure_option(int ch, const char *arg, struct cli_common *co)
{
	bool dst = ch >= CLI_OPT_DEST_TLS;
	struct net_secure *s = dst ? &co->dst_sec : &co->src_sec;
	switch (dst ? ch - (CLI_OPT_DEST_TLS - CLI_OPT_TLS) : ch) {
	case CLI_OPT_TLS:
		s->tls = true;
		return 0;
	case CLI_OPT_TLS_CA:
		s->ca_file = arg;
		return 0;
	case CLI_OPT_TLS_CERT:
		s->cert_file = arg;
		return 0;
	case CLI_OPT_TLS_KEY:
		s->key_file = arg;
		return 0;
	case CLI_OPT_TLS_NAME:
		s->server_name = arg;
		return 0;
	case CLI_OPT_AUTH:
		s->auth_file = arg;
		return 0;
	default:
		return 1;
	}
}

int cli_secure_words(const char *cmd, const struct mcw_secure_words *sec, struct cli_common *co)
{
	static const struct option longopts[] = { CLI_SECURE_LONGOPTS, { 0 } };
	char *argv[MCW_SECURE_WORDS_MAX + 2] = { (char *)cmd };
	cli_common_defaults(co);
	if (sec == NULL || sec->n == 0)
		return 0;
	if (sec->n > MCW_SECURE_WORDS_MAX)
		return cli_usage_error(cmd, "more than %d words of TLS and authentication options",
				       MCW_SECURE_WORDS_MAX);
	memcpy(argv + 1, sec->words, (size_t)sec->n * sizeof(char *));
	optind = 1;
	int ch;
	while ((ch = getopt_long(sec->n + 1, argv, "", longopts, NULL)) != -1) {
		if (ch == '?')
			return cli_usage_error(cmd, "'%s' is not a TLS or authentication option",
					       argv[optind - 1]);
		secure_option(ch, optarg, co);
	}
	if (optind <= sec->n)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

void cli_common_defaults(struct cli_common *co)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	*co = (struct cli_common){
		.memory_bytes = MCW_MEMORY_DEFAULT_BYTES,
		.threads = (unsigned)MIN(MAX(ncpu, 1L), (long)MCW_THREADS_MAX),
		.io_timeout_ms = MCW_IO_TIMEOUT_MS,
		.nice = MCW_WORKER_NICE_DEFAULT,
	};
}

int cli_common_option(const char *cmd, int ch, const char *arg, uint64_t memory_min,
		      struct cli_common *co)
{
	uint64_t v;
	if (ch >= CLI_OPT_TLS && ch <= CLI_OPT_DEST_AUTH)
		return secure_option(ch, arg, co);
	switch (ch) {
	case 'm':
		return cli_size(cmd, "memory", arg, memory_min, &co->memory_bytes) ? 0
										   : MCW_EXIT_USAGE;
	case 't':
		if (!cli_uint(cmd, "threads", arg, 1, MCW_THREADS_MAX, &v))
			return MCW_EXIT_USAGE;
		co->threads = (unsigned)v;
		return 0;
	case CLI_OPT_IO_TIMEOUT:
		if (!cli_uint(cmd, "io-timeout", arg, 1, 3600, &v))
			return MCW_EXIT_USAGE;
		co->io_timeout_ms = (int)v * 1000;
		return 0;
	case CLI_OPT_JSON:
		co->json = true;
		return 0;
	case CLI_OPT_MAX_OPS:
		return cli_uint(cmd, "max-ops", arg, 1, UINT32_MAX, &co->max_ops) ? 0
										  : MCW_EXIT_USAGE;
	case CLI_OPT_MAX_BYTES:
		return cli_size(cmd, "max-bytes", arg, 1, &co->max_bytes) ? 0 : MCW_EXIT_USAGE;
	case CLI_OPT_LIMITS:
		co->limits_file = arg;
		return 0;
	case CLI_OPT_METRICS:
		co->metrics_file = arg;
		return 0;
	case CLI_OPT_NICE:
		if (!cli_uint(cmd, "nice", arg, 0, 19, &v))
			return MCW_EXIT_USAGE;
		co->nice = (int)v;
		return 0;
	case 'q':
		co->quiet = true;
		return 0;
	case 'h':
		co->help = true;
		return 0;
	default:
		return cli_usage_error(cmd, "unknown option");
	}
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
