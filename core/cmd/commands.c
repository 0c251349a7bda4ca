/*
 * commands.c: the command table of `mcwarm` and the help common to all commands.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "core.h"
#include "objstore.h"

const char mcw_exit_codes_help[] =
    "exit codes:\n"
    "   0  success\n"
    "   1  incomplete: the job is not finished yet (populate --once)\n"
    "   2  verify: fewer items equal than --min-ratio asks\n"
    "   3  destination too small: refused before sending (its memory cannot hold the\n"
    "      dump; --allow-shrink accepts that), or it evicted or refused items during the\n"
    "      run: it is too small for what was sent\n"
    "   4  watch: the new cluster's hit ratio stayed below --min-hit-ratio (roll back)\n"
    "  64  usage: bad command line\n"
    "  65  data: corrupt chunk files\n"
    "  69  unavailable: a server is unreachable, unsuitable, or went away\n"
    "  70  internal error (a bug: please report it)\n"
    "  74  local I/O error: disk full, permissions, missing directory\n"
    "  75  temporary: e.g. the source crawler stayed busy; run again later\n"
    "  76  protocol: a server sent something malformed\n"
    "  77  refused: a server's TLS certificate failed verification, or the server\n"
    "      refused the TLS client certificate or the --auth-file credentials; an object\n"
    "      store (s3://) refused the credentials\n"
    "  78  object store configuration: no credentials, no region or a bad s3:// URL\n"
    "  with s3://, the store's failures exit by class: 69 no such bucket, 75 retries\n"
    "  exhausted, 65 damaged data, 66 an expected object gone, 76 a malformed answer\n";

int mcw_exit_code(int err)
{
	switch (-err) {
	case 0:
		return MCW_EXIT_OK;
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ENETUNREACH:
	case ENETDOWN:
	case ENOTCONN:
	case ESHUTDOWN:
	case EOPNOTSUPP: /* the server lacks what we need (server_unsuitable) */
		return MCW_EXIT_UNAVAILABLE;
	case EPROTO:
		return MCW_EXIT_PROTOCOL;
	case EBADMSG:
		return MCW_EXIT_DATA;
	case EINVAL:
		return MCW_EXIT_USAGE;
	case EKEYREJECTED:
		return MCW_EXIT_REFUSED;
	case EBUSY:
		return MCW_EXIT_TEMPFAIL;
	case MCW_ETOOSMALL:
		return MCW_EXIT_TOO_SMALL;
	case EIO:
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
	case EACCES:
	case EPERM:
	case EROFS:
	case ENOENT:
	case EEXIST:
	case ENOTDIR:
	case EISDIR:
	case ENOTEMPTY:
	case ENAMETOOLONG:
	case ELOOP:
	case EMFILE:
	case ENFILE:
	case ESTALE:
	case EXDEV:
		return MCW_EXIT_IO;
	default:
		if (-err > MCW_ESTORE_BASE && -err <= MCW_ESTORE_LAST)
			return objs_exit_code((enum objs_class)(-err - MCW_ESTORE_BASE));
		return MCW_EXIT_SOFTWARE;
	}
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
} commands[] = {
	{ "dump", mcw_cmd_dump, "read every item of a live memcached into chunk files" },
	{ "populate", mcw_cmd_populate, "write the items of chunk files into a live memcached" },
	{ "verify", mcw_cmd_verify, "compare a source and a destination item by item" },
	{ "stream", mcw_cmd_stream, "copy items straight from one memcached into another" },
	{ "inspect", mcw_cmd_inspect, "decode and check chunk files" },
	{ "watch", mcw_cmd_watch, "watch hit ratios and traffic of an old and a new cluster" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mcwarm COMMAND [options]   (mcwarm COMMAND --help for details)\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].what);
	fprintf(f, "\n%s", mcw_exit_codes_help);
}

int mcw_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return MCW_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return MCW_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("mcwarm %s\n", MCW_VERSION);
		return MCW_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "mcwarm: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return MCW_EXIT_USAGE;
}
