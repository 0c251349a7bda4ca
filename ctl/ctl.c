/*
 * ctl.c: `mcwarm-ctl COMMAND [options]`: the plan from options (or a plan file of the same
 * options), and the commands. Every command but `warm`, `release` and `status` is one
 * idempotent step; `warm` runs them all, or one host's half (warm.c). A warm-up saves
 * its plan as WORK/ctl.plan, which `release` and `status` read, so on a host they need
 * only --work.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "ctl.h"
#include "ctl_private.h"

#define DEFAULT_WORK	  "/var/tmp/mcwarm-ctl"
#define DEFAULT_MEMORY	  (64ull << 20)
#define DEFAULT_MEMORY_S3 (128ull << 20) /* as mcwarm dump's with s3://: upload parts */

static const char usage_text[] =
    "usage: mcwarm-ctl COMMAND [options]\n"
    "\n"
    "Sequences a warm-up: a volume the dumper writes (mounted read-write) and the populator\n"
    "reads (mounted read-only without journal recovery, remounted to see new files).\n"
    "Or, with --backend s3, no volume: the dump goes through an object store (S3 or an\n"
    "S3-compatible store) that both sides reach. Every step is idempotent and recorded in\n"
    "WORK/ctl.state, so a killed controller run again with the same plan continues where\n"
    "it stopped.\n"
    "\n"
    "commands:\n"
    "  warm      the whole warm-up on this host: create, attach, mkfs, mount, dump,\n"
    "            populate passes in remount cycles until the dump's MANIFEST is applied,\n"
    "            verify, teardown. With --side, one host's half:\n"
    "              --side rw (source host): create the volume unless it exists, attach\n"
    "                read-write, mkfs, mount WORK/rw, dump (syncfs every second), revive\n"
    "                a dead dumper; returns 0 when DONE is on the volume\n"
    "              --side ro (populator host): wait for the volume and its filesystem,\n"
    "                attach read-only (its own attachment), mount WORK/ro, remount\n"
    "                cycles and populate passes until the dump's MANIFEST is applied,\n"
    "                verify against the source, unmount and detach; exit 2 when verify\n"
    "                is below --min-ratio\n"
    "            each half continues after a kill and returns 0 at once when done.\n"
    "            --backend s3: no volume steps; both halves run mcwarm dump --out s3://\n"
    "            and mcwarm populate --from s3:// --follow at the same time; --side rw is\n"
    "            done when DONE is in the store, --side ro marks itself reading (then\n"
    "            done) under PREFIX/<source>/.mcwarm/readers/; teardown (both) deletes\n"
    "            the pair's prefix after a good run unless --keep\n"
    "  release   source host, after every reader is done: unmount and detach the\n"
    "            read-write side, delete the volume it created (unless --keep); exit 75\n"
    "            naming the reader while one is still attached (s3: deletes the pair's\n"
    "            prefix; exit 75 while a reader's mark says reading)\n"
    "  create    create the volume (loop: a preallocated image; ec2: an io2 volume with\n"
    "            multi-attach; dir: the directory)\n"
    "  attach    attach it read-write and/or read-only (--side)\n"
    "  mkfs      make the filesystem on the read-write attachment, unless there is one\n"
    "  mount     mount WORK/rw read-write and/or WORK/ro read-only, noload (--side)\n"
    "  cycle     syncfs the writer, remount the reader: it sees what was written so far\n"
    "  umount    unmount (--side)\n"
    "  detach    unmount and detach (--side)\n"
    "  destroy   unmount, detach, and delete the volume\n"
    "  status    the warm-up's side, phase, counts, rate, lag, error (--json for tools:\n"
    "            also backlog_chunks and chunks_listed, populate's STATE/backlog: chunk\n"
    "            files listed and not applied yet, for an autoscaler)\n"
    "\n"
    "plan:\n"
    "  -s, --source HOST:PORT   the memcached to dump (warm; --side ro: to verify against)\n"
    "  -d, --dest HOST:PORT     the memcached to warm (warm, not --side rw)\n"
    "  -w, --work DIR           state, logs, mountpoints WORK/rw and WORK/ro, and the loop\n"
    "                           image (default " DEFAULT_WORK ")\n"
    "  -b, --backend loop|dir|ec2|s3  the volume, or s3: an object store (default loop)\n"
    "      --volume PATH        loop: the image file (default WORK/volume.img); dir: the\n"
    "                           directory (default WORK/volume); ec2: the volume's tag\n"
    "                           (as --tag); s3: s3://BUCKET/PREFIX (required), the dump\n"
    "                           goes under PREFIX/<source host_port>/dump-<n>/. --side\n"
    "                           rw|ro: required for loop, dir and s3, the same on both\n"
    "                           hosts\n"
    "      --size SIZE          the volume's size (default: what the source holds x 1.25\n"
    "                           + 256M, at least 512M)\n"
    "      --fs ext4|xfs        filesystem (default ext4)\n"
    "  -m, --memory SIZE        memory budget of dump and of populate (default 64M; 128M\n"
    "                           with --backend s3, as mcwarm dump's with s3://)\n"
    "  -t, --threads N          their worker threads (default: online CPUs)\n"
    "      --cycle-ms N         pause between populate passes during the dump (default 200)\n"
    "      --min-ratio R        verify: fraction of items that must be equal (default 0.99)\n"
    "      --keep               keep the volume or the s3 prefix (and so the dump) after a\n"
    "                           good warm-up (warm) or at release\n"
    "      --allow-shrink       warm even when the destination's memory clearly cannot\n"
    "                           hold what the source holds (a shrinking resize: it evicts\n"
    "                           the rest; populate passes then exit 3, which warm accepts)\n"
    "      --allow-smaller-items  warm even when the destination's item_size_max is below\n"
    "                           the source's (larger items are skipped)\n"
    "      --mcwarm PATH        the mcwarm binary (default: $MCWARM, else next to\n"
    "                           mcwarm-ctl, else on PATH)\n"
    "  ec2:\n"
    "      --region REGION      the AWS region (default: the aws CLI's)\n"
    "      --zone ZONE          the volume's availability zone (create)\n"
    "      --instance-rw ID     the source host's instance (the dumper's side)\n"
    "      --instance-ro ID     the populator's instance\n"
    "      --volume-id VOL      use this volume instead of creating one\n"
    "      --iops N             io2 IOPS (default 3000)\n"
    "      --tag NAME           names the volume (tag mcwarm=NAME) so create finds it again\n"
    "                           (default: mcwarm-<crc of the plan>; --side rw|ro: of\n"
    "                           --source, so both hosts name the same volume)\n"
    "      --attach-timeout S   give up waiting for a volume or attachment state after S\n"
    "                           seconds (default 300)\n"
    "  s3: credentials and endpoint the AWS way, from the environment, which the mcwarm\n"
    "      children inherit (never on a command line): AWS_ACCESS_KEY_ID,\n"
    "      AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_SHARED_CREDENTIALS_FILE and\n"
    "      AWS_PROFILE, the instance role (IMDSv2), AWS_REGION, AWS_ENDPOINT_URL_S3 or\n"
    "      AWS_ENDPOINT_URL (S3-compatible stores); warm lists the prefix before it starts\n"
    "      anything: exit 77 credentials refused, 69 no such bucket, 78 no credentials or\n"
    "      a bad URL, 75 the store failing past its retries\n"
    "  one host's half:\n"
    "      --side rw|ro|both    warm: which half runs here (default both); attach, mount,\n"
    "                           umount, detach: which attachment they act on\n"
    "      --group NAME         --side ro: read the resize group OUT/NAME (<host>_<port>\n"
    "                           of a --ring-to node) of the dump; verify takes its keys\n"
    "      --wait-volume S      --side ro: wait at most S seconds for the volume and its\n"
    "                           filesystem (default 300; s3 has no volume to wait for)\n"
    "      --idle-timeout S     --side ro: give up (exit 75) after S seconds without a new\n"
    "                           chunk file or DONE from the source host (default 600;\n"
    "                           s3: populate --follow's --idle-timeout)\n"
    "  TLS and authentication (memcached -Z, -Y; each side on its own, as mcwarm's options):\n"
    "      --tls  --tls-ca FILE  --tls-cert FILE  --tls-key FILE  --tls-server-name NAME\n"
    "      --auth-file FILE     the source's: passed to the dump and to verify\n"
    "      --dest-tls  --dest-tls-ca FILE  --dest-tls-cert FILE  --dest-tls-key FILE\n"
    "      --dest-tls-server-name NAME  --dest-auth-file FILE\n"
    "                           the destination's: passed to populate and to verify\n"
    "                           (an auth file holds user:password, mode 0600: a password\n"
    "                           never goes on a command line); a refused certificate or\n"
    "                           password: exit 77 (see mcwarm --help)\n"
    "  dump filters (passed to mcwarm dump, and to verify; see mcwarm dump --help):\n"
    "      --ring KIND  --nodes LIST  --keep NODE (repeatable)  --ring-from LIST\n"
    "      --ring-to LIST  --ring-points N  --ring-partial-key C\n"
    "      --key-include PREFIX  --key-exclude PREFIX (repeatable)\n"
    "      (--keep followed by a value is the ring filter; alone, keep the volume)\n"
    "other:\n"
    "      --plan FILE          read options from FILE: 'option = value' lines (the long\n"
    "                           option names, without --; '#' starts a comment); options on\n"
    "                           the command line win\n"
    "      --json               warm: a JSON report on stdout; status: JSON status\n"
    "      --metrics-file PATH  warm: the warm-up as Prometheus text in PATH, rewritten\n"
    "                           atomically every 5 s and at the end (node_exporter's\n"
    "                           textfile collector): step, chunk files written, applied\n"
    "                           and the backlog, items and bytes, evictions, verify ratio\n"
    "  -h, --help               this text\n"
    "      --version            mcwarm-ctl's version\n"
    "\n"
    "warm (and --side ro) checks both servers before it creates or attaches anything: not\n"
    "the same server, meta commands, key dumps allowed on the source, the destination's\n"
    "item_size_max and its memory against what the source holds (curr_items and bytes in\n"
    "slab chunks, against limit_maxbytes); a refusal names the fix and leaves no volume and\n"
    "no state behind.\n"
    "\n"
    "exit codes: those of mcwarm (mcwarm --help), warm returns the failing step's:\n"
    "   0 success; 2 verify below --min-ratio; 3 destination too small (refused before\n"
    "   anything was created, or it evicted or refused items: populate exit 3); 64 usage\n"
    "   (also: source and destination are the same server, or a plan EC2 cannot carry out:\n"
    "   not io2 multi-attach, another availability zone, 16 attachments; said before\n"
    "   anything is created); 65 corrupt data; 69 a server unreachable or unsuitable;\n"
    "   70 internal error; 74 local I/O; 75 try later (release while a reader is attached,\n"
    "   a reader that waited too long); 76 protocol error; 77 a certificate or password\n"
    "   refused (TLS verification, client certificate, authentication), or (s3) the\n"
    "   store's credentials; 78 (s3) no credentials found or a bad s3:// URL.\n";

enum {
	OPT_VOLUME = 256,
	OPT_SIZE,
	OPT_FS,
	OPT_CYCLE_MS,
	OPT_MIN_RATIO,
	OPT_KEEP,
	OPT_MCWARM,
	OPT_REGION,
	OPT_ZONE,
	OPT_INSTANCE_RW,
	OPT_INSTANCE_RO,
	OPT_VOLUME_ID,
	OPT_IOPS,
	OPT_TAG,
	OPT_ATTACH_TIMEOUT,
	OPT_SIDE,
	OPT_PLAN,
	OPT_JSON,
	OPT_GROUP,
	OPT_WAIT_VOLUME,
	OPT_IDLE_TIMEOUT,
	OPT_FILTER, /* a dump filter: passed on as it is (the long option's name) */
	OPT_SECURE, /* TLS and authentication: passed on as it is (the long option's name) */
	OPT_ALLOW_SHRINK,
	OPT_ALLOW_SMALLER,
	OPT_METRICS_FILE,
};

static const struct option longopts[] = {
	{ "source", required_argument, NULL, 's' },
	{ "dest", required_argument, NULL, 'd' },
	{ "work", required_argument, NULL, 'w' },
	{ "backend", required_argument, NULL, 'b' },
	{ "volume", required_argument, NULL, OPT_VOLUME },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "fs", required_argument, NULL, OPT_FS },
	{ "memory", required_argument, NULL, 'm' },
	{ "threads", required_argument, NULL, 't' },
	{ "cycle-ms", required_argument, NULL, OPT_CYCLE_MS },
	{ "min-ratio", required_argument, NULL, OPT_MIN_RATIO },
	{ "keep", optional_argument, NULL, OPT_KEEP },
	{ "mcwarm", required_argument, NULL, OPT_MCWARM },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "zone", required_argument, NULL, OPT_ZONE },
	{ "instance-rw", required_argument, NULL, OPT_INSTANCE_RW },
	{ "instance-ro", required_argument, NULL, OPT_INSTANCE_RO },
	{ "volume-id", required_argument, NULL, OPT_VOLUME_ID },
	{ "iops", required_argument, NULL, OPT_IOPS },
	{ "tag", required_argument, NULL, OPT_TAG },
	{ "attach-timeout", required_argument, NULL, OPT_ATTACH_TIMEOUT },
	{ "side", required_argument, NULL, OPT_SIDE },
	{ "plan", required_argument, NULL, OPT_PLAN },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "wait-volume", required_argument, NULL, OPT_WAIT_VOLUME },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "allow-shrink", no_argument, NULL, OPT_ALLOW_SHRINK },
	{ "allow-smaller-items", no_argument, NULL, OPT_ALLOW_SMALLER },
	{ "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
	{ "tls", no_argument, NULL, OPT_SECURE },
	{ "tls-ca", required_argument, NULL, OPT_SECURE },
	{ "tls-cert", required_argument, NULL, OPT_SECURE },
	{ "tls-key", required_argument, NULL, OPT_SECURE },
	{ "tls-server-name", required_argument, NULL, OPT_SECURE },
	{ "auth-file", required_argument, NULL, OPT_SECURE },
	{ "dest-tls", no_argument, NULL, OPT_SECURE },
	{ "dest-tls-ca", required_argument, NULL, OPT_SECURE },
	{ "dest-tls-cert", required_argument, NULL, OPT_SECURE },
	{ "dest-tls-key", required_argument, NULL, OPT_SECURE },
	{ "dest-tls-server-name", required_argument, NULL, OPT_SECURE },
	{ "dest-auth-file", required_argument, NULL, OPT_SECURE },
	{ "ring", required_argument, NULL, OPT_FILTER },
	{ "nodes", required_argument, NULL, OPT_FILTER },
	{ "ring-from", required_argument, NULL, OPT_FILTER },
	{ "ring-to", required_argument, NULL, OPT_FILTER },
	{ "ring-points", required_argument, NULL, OPT_FILTER },
	{ "ring-partial-key", required_argument, NULL, OPT_FILTER },
	{ "key-include", required_argument, NULL, OPT_FILTER },
	{ "key-exclude", required_argument, NULL, OPT_FILTER },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

struct ctl_opts {
	struct ctl_plan plan;
	bool json, help;
	bool size_given;
	const char *plan_file;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mcwarm-ctl: %s (see mcwarm-ctl --help)\n", msg);
	return MCW_EXIT_USAGE;
}

static int copy(char *dst, size_t cap, const char *opt, const char *val)
{
	if (strlen(val) >= cap)
		return usage_error("--%s: '%s' is longer than %zu characters", opt, val, cap - 1);
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

static int uint_opt(const char *opt, const char *val, unsigned long max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || end == val || *end || v > max)
		return usage_error("--%s: '%s' is not a whole number up to %lu", opt, val, max);
	*out = (unsigned)v;
	return 0;
}

/* A dump filter, kept as the words `--name value` for mcwarm dump and verify. */
static int filter(struct ctl_plan *p, const char *name, const char *arg)
{
	if (p->nfilters + 2 > CTL_FILTER_ARGS_MAX)
		return usage_error("at most %d dump filter options", CTL_FILTER_ARGS_MAX / 2);
	snprintf(p->filter[p->nfilters], CTL_FILTER_ARG_MAX, "--%s", name);
	int code = copy(p->filter[p->nfilters + 1], CTL_FILTER_ARG_MAX, name, arg);
	if (code == 0)
		p->nfilters += 2;
	return code;
}

/* A TLS or authentication option, kept as the words `--name value` (or `--name ""`). */
static int secure(struct ctl_plan *p, const char *name, const char *arg)
{
	if (p->nsec + 2 > MCW_SECURE_WORDS_MAX)
		return usage_error("at most %d TLS and authentication options",
				   MCW_SECURE_WORDS_MAX / 2);
	snprintf(p->sec[p->nsec], CTL_PATH_MAX, "--%s", name);
	int code = copy(p->sec[p->nsec + 1], CTL_PATH_MAX, name, arg ? arg : "");
	if (code == 0)
		p->nsec += 2;
	return code;
}

/* The options of one host's half: --side, --group, waits, --keep, dump filters. */
static int half_option(int ch, const char *name, const char *arg, struct ctl_plan *p)
{
	switch (ch) {
	case OPT_KEEP: /* with a node: the ring filter; alone: keep the volume */
		if (arg != NULL && arg[0] != '\0')
			return filter(p, "keep", arg);
		p->keep = true;
		return 0;
	case OPT_FILTER:
		return filter(p, name, arg);
	case OPT_GROUP:
		if (strchr(arg, '/') || strcmp(arg, ".") == 0 || strcmp(arg, "..") == 0)
			return usage_error("--group: '%s' is not a group directory name "
					   "(<host>_<port>)",
					   arg);
		return copy(p->group, sizeof(p->group), "group", arg);
	case OPT_WAIT_VOLUME:
		return uint_opt("wait-volume", arg, CTL_WAIT_VOLUME_S_MAX, &p->wait_volume_s);
	case OPT_IDLE_TIMEOUT:
		return uint_opt("idle-timeout", arg, CTL_WAIT_VOLUME_S_MAX, &p->idle_s);
	case OPT_SIDE:
		if (ctl_side_parse(arg, &p->side) < 0)
			return usage_error("--side: use rw, ro or both, not '%s'", arg);
		return 0;
	default:
		return usage_error("unknown option");
	}
}

static int option(int ch, const char *name, const char *arg, struct ctl_opts *o)
{
	struct ctl_plan *p = &o->plan;
	struct ebs_volume *v = &p->vol;
	switch (ch) {
	case 's':
		return copy(p->source, sizeof(p->source), "source", arg);
	case 'd':
		return copy(p->dest, sizeof(p->dest), "dest", arg);
	case 'w':
		return copy(p->work, sizeof(p->work), "work", arg);
	case 'b':
		p->s3 = strcmp(arg, "s3") == 0;
		if (!p->s3 && ebs_kind_parse(arg, &v->kind) < 0)
			return usage_error("--backend: use loop, dir, ec2 or s3, not '%s'", arg);
		return 0;
	case OPT_VOLUME:
		return copy(v->path, sizeof(v->path), "volume", arg);
	case OPT_SIZE:
		if (!mcw_size_parse(arg, &v->size_bytes) || v->size_bytes < CTL_VOLUME_MIN_BYTES)
			return usage_error("--size: '%s' is not a size of at least 512M", arg);
		o->size_given = true;
		return 0;
	case OPT_FS:
		if (strcmp(arg, "ext4") != 0 && strcmp(arg, "xfs") != 0)
			return usage_error("--fs: use ext4 or xfs, not '%s'", arg);
		return copy(v->fs, sizeof(v->fs), "fs", arg);
	case 'm':
		if (!mcw_size_parse(arg, &p->memory_bytes) || p->memory_bytes < (4ull << 20))
			return usage_error("--memory: '%s' is not a size of at least 4M", arg);
		return 0;
	case 't':
		return uint_opt("threads", arg, 256, &p->threads);
	case OPT_CYCLE_MS:
		return uint_opt("cycle-ms", arg, 3600000, &p->cycle_ms);
	case OPT_MIN_RATIO: {
		char *end;
		p->min_ratio = strtod(arg, &end);
		if (end == arg || *end || p->min_ratio < 0 || p->min_ratio > 1)
			return usage_error("--min-ratio: '%s' is not a number from 0 to 1", arg);
		return 0;
	}
	case OPT_MCWARM:
		return copy(p->mcwarm, sizeof(p->mcwarm), "mcwarm", arg);
	case OPT_REGION:
		return copy(v->region, sizeof(v->region), "region", arg);
	case OPT_ZONE:
		return copy(v->zone, sizeof(v->zone), "zone", arg);
	case OPT_INSTANCE_RW:
		return copy(v->instance_rw, sizeof(v->instance_rw), "instance-rw", arg);
	case OPT_INSTANCE_RO:
		return copy(v->instance_ro, sizeof(v->instance_ro), "instance-ro", arg);
	case OPT_VOLUME_ID:
		if (strncmp(arg, "vol-", 4) != 0)
			return usage_error("--volume-id: '%s' is not an EBS volume id (vol-...)",
					   arg);
		return copy(v->volume_id, sizeof(v->volume_id), "volume-id", arg);
	case OPT_IOPS:
		return uint_opt("iops", arg, 256000, &v->iops);
	case OPT_TAG:
		return copy(v->tag, sizeof(v->tag), "tag", arg);
	case OPT_ATTACH_TIMEOUT:
		return uint_opt("attach-timeout", arg, 86400, &v->wait_s);
	case OPT_PLAN:
		o->plan_file = arg;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_ALLOW_SHRINK:
		o->plan.allow_shrink = true;
		return 0;
	case OPT_ALLOW_SMALLER:
		o->plan.allow_smaller_items = true;
		return 0;
	case OPT_METRICS_FILE:
		return copy(o->plan.metrics_file, sizeof(o->plan.metrics_file), "metrics-file",
			    arg);
	case OPT_SECURE:
		return secure(&o->plan, name, arg);
	case 'h':
		o->help = true;
		return 0;
	default:
		return half_option(ch, name, arg, &o->plan);
	}
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* A plan file: "option = value" lines, applied before the command line's options. */
static int read_plan(const char *path, struct ctl_opts *o)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return usage_error("--plan: cannot open %s: %s", path, strerror(errno));
	char line[CTL_PLAN_LINE_MAX];
	int code = 0;
	for (unsigned lineno = 1; code == 0 && fgets(line, sizeof(line), f); lineno++) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *key = trim(line);
		if (*key == '\0')
			continue;
		char *eq = strchr(key, '=');
		char *val = eq ? trim(eq + 1) : (char *)"";
		if (eq)
			*eq = '\0';
		key = trim(key);
		const struct option *lo = longopts;
		while (lo->name && strcmp(lo->name, key) != 0)
			lo++;
		bool valued = eq != NULL && *val;
		if (lo->name == NULL || lo->val == OPT_PLAN)
			code = usage_error("%s:%u: unknown option '%s'", path, lineno, key);
		else if (lo->has_arg != optional_argument &&
			 (lo->has_arg == required_argument) != valued)
			code = usage_error("%s:%u: '%s' %s", path, lineno, key,
					   lo->has_arg ? "needs '= value'" : "takes no value");
		else
			code = option(lo->val, lo->name, val, o);
	}
	fclose(f);
	return code;
}

/* mcwarm: --mcwarm, $MCWARM, next to this binary (installed), ../core (build tree), PATH. */
static void find_mcwarm(struct ctl_plan *p)
{
	if (p->mcwarm[0])
		return;
	const char *env = getenv("MCWARM");
	if (env && *env) {
		snprintf(p->mcwarm, sizeof(p->mcwarm), "%s", env);
		return;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *dir = dirname(self);
		const char *cands[] = { "%s/mcwarm", "%s/../core/mcwarm" };
		for (size_t i = 0; i < 2; i++) {
			char path[PATH_MAX + 32];
			snprintf(path, sizeof(path), cands[i], dir);
			char real[PATH_MAX];
			if (access(path, X_OK) == 0 && realpath(path, real) &&
			    strlen(real) < sizeof(p->mcwarm)) {
				memcpy(p->mcwarm, real, strlen(real) + 1);
				return;
			}
		}
	}
	const char *path = getenv("PATH");
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char cand[PATH_MAX + 16];
		snprintf(cand, sizeof(cand), "%s/mcwarm", d);
		if (access(cand, X_OK) == 0 && strlen(cand) < sizeof(p->mcwarm)) {
			memcpy(p->mcwarm, cand, strlen(cand) + 1);
			return;
		}
	}
}

/* Sizes the volume from what the source holds: its item bytes x 1.25 + slack. */
static int size_from_source(struct ctl_plan *p)
{
	uint64_t items, bytes;
	char err[512], *words[MCW_SECURE_WORDS_MAX];
	struct mcw_secure_words sec = {
		.n = ctl_secure_args(p, CTL_SOURCE, words, 0, MCW_SECURE_WORDS_MAX), .words = words
	};
	int ret = mcw_server_usage(p->source, &sec, &items, &bytes, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr,
			"mcwarm-ctl: cannot size the volume from the source: %s (or give "
			"--size)\n",
			err);
		if (ret == -EKEYREJECTED || ret == -EACCES)
			return MCW_EXIT_REFUSED;
		return ret == -EINVAL ? MCW_EXIT_USAGE : MCW_EXIT_UNAVAILABLE;
	}
	uint64_t size = bytes + bytes / 4 + CTL_VOLUME_SLACK_BYTES;
	size = (size + (64ull << 20) - 1) & ~((64ull << 20) - 1);
	p->vol.size_bytes = size < CTL_VOLUME_MIN_BYTES ? CTL_VOLUME_MIN_BYTES : size;
	return 0;
}

/* The --work of the command line, or NULL. */
static const char *work_arg(int argc, char **argv)
{
	const char *work = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "--work") == 0 || strcmp(a, "-w") == 0) && i + 1 < argc)
			work = argv[i + 1];
		else if (strncmp(a, "--work=", 7) == 0)
			work = a + 7;
		else if (strncmp(a, "-w", 2) == 0 && a[2] != '\0')
			work = a + 2;
	}
	return work;
}

/* release and status: the plan the warm-up saved in WORK/ctl.plan, under the command
 * line's options, so that --work is all they need. */
static int saved_plan(int argc, char **argv, struct ctl_opts *o)
{
	const char *cmd = argv[0], *work = work_arg(argc, argv);
	char path[CTL_PATH_MAX + 16];
	if (strcmp(cmd, "release") != 0 && strcmp(cmd, "status") != 0)
		return 0;
	snprintf(path, sizeof(path), "%s/ctl.plan", work ? work : DEFAULT_WORK);
	return access(path, R_OK) == 0 ? read_plan(path, o) : 0;
}

/* Reads the command line's options over the plan file's. */
static int command_line(int argc, char **argv, struct ctl_opts *o)
{
	int ch, at;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":s:d:w:b:m:t:h", longopts, &at)) != -1) {
		if (ch == OPT_PLAN)
			continue;
		if (ch == '?')
			return usage_error("unknown option '%s'", argv[optind - 1]);
		if (ch == ':')
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		const char *arg = optarg;
		/* `--keep NODE`: mcwarm-ctl takes no operands, so a word after --keep that is
		 * not an option is the ring filter's node */
		if (ch == OPT_KEEP && arg == NULL && optind < argc && argv[optind][0] != '-')
			arg = argv[optind++];
		int code = option(ch, ch >= OPT_VOLUME ? longopts[at].name : NULL, arg, o);
		if (code != 0)
			return code;
	}
	if (optind < argc)
		return usage_error("unexpected '%s'", argv[optind]);
	return 0;
}

/* --side rw|ro: what both hosts must name alike. */
static int side_defaults(struct ctl_plan *p)
{
	if (p->side == SIDE_BOTH)
		return 0;
	if (p->vol.kind != EBS_EC2 && p->vol.path[0] == '\0')
		return usage_error("--side %s needs --volume PATH: the %s both hosts use",
				   ctl_side_name(p->side),
				   p->vol.kind == EBS_LOOP ? "image file" : "directory");
	if (p->vol.kind == EBS_EC2 && !p->s3 && p->vol.tag[0] == '\0') {
		if (p->vol.path[0] != '\0')
			return copy(p->vol.tag, sizeof(p->vol.tag), "volume", p->vol.path);
		/* one volume per source node: both hosts derive the same name from it */
		snprintf(p->vol.tag, sizeof(p->vol.tag), "mcwarm-%08x",
			 mcw_crc32c(0, p->source, strlen(p->source)));
	}
	if (p->wait_volume_s == 0)
		p->wait_volume_s = CTL_WAIT_VOLUME_S_DEFAULT;
	if (p->idle_s == 0)
		p->idle_s = CTL_IDLE_S_DEFAULT;
	return 0;
}

static int parse(int argc, char **argv, struct ctl_opts *o)
{
	memset(o, 0, sizeof(*o));
	struct ctl_plan *p = &o->plan;
	p->vol.kind = EBS_LOOP;
	p->cycle_ms = CTL_CYCLE_MS_DEFAULT;
	p->min_ratio = 0.99;
	/* the plan file first, so the command line wins */
	bool plan_given = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--plan=", 7) == 0 || (strcmp(a, "--plan") == 0 && i + 1 < argc)) {
			plan_given = true;
			int code = read_plan(a[6] == '=' ? a + 7 : argv[i + 1], o);
			if (code != 0)
				return code;
		}
	}
	int code = plan_given ? 0 : saved_plan(argc, argv, o);
	if (code == 0)
		code = command_line(argc, argv, o);
	if (code != 0 || o->help)
		return code;
	if (p->memory_bytes == 0)
		p->memory_bytes = p->s3 ? DEFAULT_MEMORY_S3 : DEFAULT_MEMORY;
	if (p->work[0] == '\0')
		snprintf(p->work, sizeof(p->work), "%s", DEFAULT_WORK);
	char real[PATH_MAX];
	int ret = ebs_mkdirs(p->work);
	if (ret == 0 && realpath(p->work, real) == NULL)
		ret = -errno;
	if (ret < 0) /* ebs_mkdirs returns -errno: errno is not its answer */
		return usage_error("--work: cannot create %s: %s", p->work, strerror(-ret));
	if (copy(p->work, sizeof(p->work), "work", real) != 0)
		return MCW_EXIT_USAGE;
	if (p->s3 && strncmp(p->vol.path, "s3://", 5) != 0)
		return usage_error("--backend s3 needs --volume s3://BUCKET/PREFIX (the dump goes "
				   "under PREFIX/<source host_port>/), not '%s'",
				   p->vol.path);
	code = strcmp(argv[0], "warm") == 0 ? side_defaults(p) : 0;
	if (code != 0)
		return code;
	if (p->vol.path[0] == '\0') {
		if (p->vol.kind == EBS_LOOP)
			ctl_path(p->vol.path, sizeof(p->vol.path), p, "volume.img");
		else if (p->vol.kind == EBS_DIR)
			ctl_path(p->vol.path, sizeof(p->vol.path), p, "volume");
	}
	if (p->vol.fs[0] == '\0')
		snprintf(p->vol.fs, sizeof(p->vol.fs), "ext4");
	if (p->vol.kind == EBS_EC2 && !p->s3 && p->vol.tag[0] == '\0') {
		char key[700];
		int n = snprintf(key, sizeof(key), "%s|%s|%s", p->source, p->dest, p->work);
		snprintf(p->vol.tag, sizeof(p->vol.tag), "mcwarm-%08x",
			 mcw_crc32c(0, key, (size_t)n));
	}
	find_mcwarm(p);
	return 0;
}

/* Loads the state of this work directory, or starts one; refuses another plan's. */
/* A warm-up refused by a preflight (before it creates or starts anything): said, and in
 * --json; returns code. */
static int refused(const struct ctl_plan *p, int code, const char *err, bool json)
{
	fprintf(stderr, "mcwarm-ctl: warm refused before creating anything: %s\n", err);
	if (json) {
		char esc[2048];
		printf("{\"command\":\"warm\",\"side\":\"%s\",\"ok\":false,\"exit_code\":%d,"
		       "\"phase\":\"preflight\",\"error\":\"%s\"}\n",
		       ctl_side_name(p->side), code, ctl_json_escape(esc, sizeof(esc), err));
	}
	return code;
}

/* Both servers checked before a warm-up (or its populator half) creates or attaches
 * anything (mcw_copy_preflight). */
static int warm_preflight(const struct ctl_plan *p, const struct ctl_state *s, bool json)
{
	char err[1024];
	struct mcw_copy_allow allow = { .shrink = p->allow_shrink,
					.smaller_items = p->allow_smaller_items,
					.share = p->nfilters > 0 };
	/* a warm-up that is continued has filled part of the destination itself */
	bool resumed = s->phase >= PHASE_DUMPING && s->phase < PHASE_DONE;
	char *words[MCW_SECURE_WORDS_MAX];
	struct mcw_secure_words sec = {
		.n = ctl_secure_args(p, CTL_BOTH, words, 0, MCW_SECURE_WORDS_MAX), .words = words
	};
	int code = mcw_copy_preflight(p->source, p->dest, &sec, &allow, resumed, err, sizeof(err));
	return code == 0 ? 0 : refused(p, code, err, json);
}

static int load_state(const struct ctl_plan *p, struct ctl_state *s)
{
	char err[512];
	int ret = ctl_state_load(p->work, s, err, sizeof(err));
	if (ret == -EBADMSG) {
		fprintf(stderr, "mcwarm-ctl: %s\n", err);
		return MCW_EXIT_DATA;
	}
	if (ret < 0) {
		memset(s, 0, sizeof(*s));
		s->dump_exit = s->verify_exit = -1;
		s->plan_crc = ctl_plan_crc(p);
		return 0;
	}
	if (s->plan_crc != ctl_plan_crc(p)) {
		fprintf(stderr,
			"mcwarm-ctl: %s/ctl.state belongs to another plan (other servers "
			"or volume): give the same options, or use another --work directory\n",
			p->work);
		return MCW_EXIT_USAGE;
	}
	return 0;
}

static void print_volume(const struct ctl_plan *p, const struct ctl_state *s)
{
	struct ebs_volume v = p->vol;
	struct ebs_status st;
	char err[512] = "";
	if (v.volume_id[0] == '\0')
		snprintf(v.volume_id, sizeof(v.volume_id), "%s", s->volume_id);
	char rw[CTL_PATH_MAX + 8], ro[CTL_PATH_MAX + 8];
	ctl_path(rw, sizeof(rw), p, "rw");
	ctl_path(ro, sizeof(ro), p, "ro");
	if (ebs_describe(&v, &st, err, sizeof(err)) < 0) {
		printf("volume: %s %s: %s\n", ebs_kind_name(v.kind),
		       v.volume_id[0] ? v.volume_id : v.path, err);
		return;
	}
	printf("volume: %s %s: %s; read-write %s%s; read-only %s%s\n", ebs_kind_name(v.kind),
	       v.volume_id[0] ? v.volume_id : v.path, st.exists ? st.state : "missing",
	       s->rw_device[0] ? s->rw_device : "detached", ebs_is_mounted(rw) ? " (mounted)" : "",
	       s->ro_device[0] ? s->ro_device : "detached", ebs_is_mounted(ro) ? " (mounted)" : "");
}

static int warm_usage(const struct ctl_plan *p)
{
	bool need_dest = p->side != SIDE_RW;
	if (p->source[0] == '\0' || (need_dest && p->dest[0] == '\0'))
		return usage_error("warm%s needs --source%s",
				   p->side == SIDE_RW	? " --side rw"
				   : p->side == SIDE_RO ? " --side ro"
							: "",
				   need_dest ? " and --dest" : "");
	if (need_dest && strcmp(p->source, p->dest) == 0)
		return usage_error("--source and --dest are the same server");
	if (p->group[0] != '\0' && p->side != SIDE_RO)
		return usage_error("--group is for --side ro (the rw side writes every group)");
	if (p->group[0] != '\0' && p->s3)
		return usage_error("--group: a dump to s3:// holds one group; a resize through "
				   "the store is one dump per new owner (see mcwarm dump --help)");
	if (p->mcwarm[0] == '\0' || access(p->mcwarm, X_OK) != 0)
		return usage_error("cannot find the mcwarm binary%s%s: give --mcwarm PATH",
				   p->mcwarm[0] ? " at " : "", p->mcwarm);
	return 0;
}

/* The backend's constraints, before anything is created: ec2 fills in the zone from the
 * source instance when the plan names none. */
static int check_plan(struct ctl_plan *p, bool json)
{
	char err[1024] = "";
	if (p->s3) { /* the bucket answers with these credentials */
		int code = ctl_s3_check(p, err, sizeof(err));
		return code == 0 ? 0 : refused(p, code, err, json);
	}
	int ret = ebs_check(&p->vol, p->side != SIDE_RO, p->side != SIDE_RW, err, sizeof(err));
	if (ret == 0)
		return 0;
	fprintf(stderr, "mcwarm-ctl: %s: %s\n",
		ret == -EINVAL ? "the plan cannot work, nothing was created"
			       : "cannot check the plan",
		err);
	return ret == -EINVAL ? MCW_EXIT_USAGE : MCW_EXIT_UNAVAILABLE;
}

/* status reads whatever warm-up the work directory records; the volume's state only
 * with that warm-up's plan (it says where the volume is) */
static int status_command(const struct ctl_plan *p, bool json)
{
	int code = ctl_status(p, json);
	struct ctl_state s;
	char err[512];
	if (code == 0 && !json && p->s3) {
		char url[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES];
		ctl_s3_pair_url(url, sizeof(url), p, "");
		printf("store: %s\n", url);
	} else if (code == 0 && !json && ctl_state_load(p->work, &s, err, sizeof(err)) == 0) {
		if (s.plan_crc == ctl_plan_crc(p))
			print_volume(p, &s);
		else
			printf("volume: give the warm-up's plan options (or --plan) to see it\n");
	}
	return code;
}

/* One idempotent step, its state saved, what exists printed. */
static int step_command(const char *cmd, const struct ctl_plan *p, struct ctl_state *s,
			enum ctl_side side, bool json)
{
	char err[1024] = "";
	int code;
	if (strcmp(cmd, "create") == 0)
		code = ctl_step_create(p, s, err, sizeof(err));
	else if (strcmp(cmd, "attach") == 0)
		code = ctl_step_attach(p, s, side, err, sizeof(err));
	else if (strcmp(cmd, "mkfs") == 0)
		code = ctl_step_mkfs(p, s, err, sizeof(err));
	else if (strcmp(cmd, "mount") == 0)
		code = ctl_step_mount(p, s, side, err, sizeof(err));
	else if (strcmp(cmd, "cycle") == 0)
		code = ctl_step_cycle(p, s, err, sizeof(err));
	else if (strcmp(cmd, "umount") == 0)
		code = ctl_step_umount(p, s, side, err, sizeof(err));
	else if (strcmp(cmd, "detach") == 0)
		code = ctl_step_detach(p, s, side, err, sizeof(err));
	else
		code = ctl_step_destroy(p, s, err, sizeof(err));
	if (code != 0) {
		fprintf(stderr, "mcwarm-ctl %s: %s\n", cmd, err);
		return code;
	}
	int ret = ctl_state_save(p->work, s);
	if (ret < 0) {
		fprintf(stderr, "mcwarm-ctl %s: cannot write %s/ctl.state: %s\n", cmd, p->work,
			strerror(-ret));
		return MCW_EXIT_IO;
	}
	if (json)
		printf("{\"command\":\"%s\",\"ok\":true,\"volume_id\":\"%s\",\"rw_device\":\"%s\","
		       "\"ro_device\":\"%s\"}\n",
		       cmd, s->volume_id, s->rw_device, s->ro_device);
	else
		print_volume(p, s);
	return 0;
}

static bool is_command(const char *cmd)
{
	static const char *const commands[] = { "warm",	   "create",  "attach", "mkfs",
						"mount",   "cycle",   "umount", "detach",
						"destroy", "release", "status", NULL };
	size_t ci = 0;
	while (commands[ci] && strcmp(commands[ci], cmd) != 0)
		ci++;
	return commands[ci] != NULL;
}

static int command(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("mcwarm-ctl %s\n", MCW_VERSION);
		return MCW_EXIT_OK;
	}
	if (argc < 2 || argv[1][0] == '-') {
		bool help =
		    argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
		fputs(usage_text, help ? stdout : stderr);
		return help ? MCW_EXIT_OK : MCW_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!is_command(cmd))
		return usage_error("unknown command '%s'", cmd);
	struct ctl_opts o;
	int code = parse(argc - 1, argv + 1, &o);
	if (code != 0 || o.help) {
		if (o.help)
			fputs(usage_text, stdout);
		return code;
	}
	struct ctl_plan *p = &o.plan;
	bool warm = strcmp(cmd, "warm") == 0, create = strcmp(cmd, "create") == 0;
	enum ctl_side side = p->side; /* a step's attachment; warm: the plan's half */
	if (!warm && strcmp(cmd, "status") != 0)
		p->side = SIDE_BOTH;
	if (warm && (code = warm_usage(p)) != 0)
		return code;
	if (!warm && p->metrics_file[0])
		return usage_error("--metrics-file is an option of warm only");
	ctl_metrics_init(p->metrics_file);
	if (strcmp(cmd, "release") == 0)
		return ctl_release(p, p->keep, o.json);
	if (p->s3 && !warm && strcmp(cmd, "status") != 0)
		return usage_error("%s: --backend s3 has no volume steps: warm, release and "
				   "status are its commands",
				   cmd);
	if ((warm || create) && (code = check_plan(p, o.json)) != 0)
		return code;
	if (strcmp(cmd, "status") == 0)
		return status_command(p, o.json);
	struct ctl_state s;
	code = load_state(p, &s); /* reads only: another plan's work directory is refused */
	if (code != 0)
		return code;
	if (warm && p->side != SIDE_RW && (code = warm_preflight(p, &s, o.json)) != 0) {
		ctl_metrics_final(p, &s, code);
		return code;
	}
	/* the size: the option, what an earlier step recorded, or the source's stats */
	if (!o.size_given && s.volume_bytes > 0)
		p->vol.size_bytes = s.volume_bytes;
	if (p->vol.size_bytes == 0 && p->vol.kind != EBS_DIR && !p->s3 && p->source[0] &&
	    p->side != SIDE_RO && (warm || create) && (code = size_from_source(p)) != 0)
		return code;
	return warm ? ctl_warm(p, o.json) : step_command(cmd, p, &s, side, o.json);
}

int ctl_main(int argc, char **argv)
{
	int code = command(argc, argv);
	ctl_s3_close();
	return code;
}
