/*
 * dump.c: `mcwarm dump`, the orchestrator. Parses options, probes the source, plans and
 * commits the memory budget, starts the key reader and the workers, shows progress,
 * and on success publishes MANIFEST and DONE.
 *
 * Owns: the dump_ctx and the output directory. Does not touch data: the threads do.
 * Order of a run:
 *   options -> probe source -> check output dir -> plan budget -> connect -> threads
 *   -> progress until every thread ended -> manifest + DONE (only if nothing failed)
 *   -> summary (and JSON) -> exit code
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "dump_private.h"
#include "tls.h"
#include "json.h"
#include "keyspool.h"
#include "manifest.h"
#include "mcw_limits.h"

#define SPOOL_DIR ".mcwarm"

static const char dump_usage[] =
    "usage: mcwarm dump --source HOST:PORT --out DIR [options]\n"
    "\n"
    "Reads every item (key, value, client flags, remaining TTL) of a live memcached into\n"
    "checksummed chunk files in DIR, inside a fixed memory budget. Keys come from\n"
    "'lru_crawler metadump' on one dedicated connection, values from pipelined meta 'mg'\n"
    "(no LRU bump on the source). The dump ends with DIR/MANIFEST and DIR/DONE.\n"
    "\n"
    "  -s, --source HOST:PORT   the memcached to dump (required)\n"
    "  -o, --out DIR            output directory: new or empty (required)\n"
    "  -m, --memory SIZE        memory budget for all buffers (default 64M)\n"
    "  -t, --threads N          value workers, one io_uring each (default: online CPUs)\n"
    "      --crawl hash|all     key walk: hash lists every item once (default); all walks\n"
    "                           the LRUs, which the server reshuffles meanwhile: items\n"
    "                           can be missed (and listed twice: deduplicated)\n"
    "      --no-mgdump          do not try 'lru_crawler mgdump' (newer servers) first\n"
    "      --min-ttl SECONDS    skip items with less TTL left than this (default 0)\n"
    "      --writer stage|writev  how chunk files are written (default stage: copy into\n"
    "                           aligned blocks, O_DIRECT; writev: no copy, page cache)\n"
    "      --no-direct          never use O_DIRECT\n"
    "      --chunk-size SIZE    start a new chunk file beyond this size (default 64M)\n"
    "      --io-timeout SECONDS a server silent this long while answering is gone\n"
    "                           (default 30)\n"
    "      --keep-spool         keep the key chunks (DIR/.mcwarm) after a good dump\n"
    "      --syncfs-interval SECONDS  syncfs DIR's filesystem this often, so a reader on\n"
    "                           another host (EBS multi-attach, read-only) sees finished\n"
    "                           chunk files at its next remount (default 0: off)\n"
    "      --json               print a JSON summary on stdout at the end\n"
    "  -q, --quiet              no budget table, no progress line\n"
    "  -h, --help               this text\n";

/* ---- options ----------------------------------------------------------------------- */

enum {
	OPT_CRAWL = 256,
	OPT_NO_MGDUMP,
	OPT_MIN_TTL,
	OPT_WRITER,
	OPT_NO_DIRECT,
	OPT_CHUNK,
	OPT_KEEP_SPOOL,
	OPT_SYNCFS
};

int crawl_option(const char *cmd, const char *arg, enum key_dump_kind *out)
{
	if (strcmp(arg, "hash") != 0 && strcmp(arg, "all") != 0)
		return cli_usage_error(cmd, "--crawl: use hash or all");
	*out = strcmp(arg, "all") == 0 ? KEYS_ALL : KEYS_HASH;
	return 0;
}

int engine_shared_option(const char *cmd, int ch, const char *arg, struct dump_opts *o)
{
	int ret = keyfilter_option(cmd, ch, arg, &o->filter);
	return ret != 1 ? ret : cli_common_option(cmd, ch, arg, 4 * MIB, &o->co);
}

/* Options of dump only; the common ones go to cli_common_option. 0, or an exit code. */
static int dump_option(int ch, const char *arg, struct dump_opts *o)
{
	uint64_t v;
	switch (ch) {
	case 's':
		if (hostport_parse(arg, &o->source) < 0)
			return cli_usage_error("dump", "--source: '%s' is not HOST:PORT", arg);
		return 0;
	case 'o':
		o->out_dir = arg;
		return 0;
	case OPT_CRAWL:
		return crawl_option("dump", arg, &o->crawl);
	case OPT_NO_MGDUMP:
		o->try_mgdump = false;
		return 0;
	case OPT_MIN_TTL:
		if (!cli_uint("dump", "min-ttl", arg, 0, 10ull * 365 * 86400, &v))
			return MCW_EXIT_USAGE;
		o->min_ttl_s = (int64_t)v;
		return 0;
	case OPT_WRITER:
		if (strcmp(arg, "stage") != 0 && strcmp(arg, "writev") != 0)
			return cli_usage_error("dump", "--writer: use stage or writev");
		o->write_mode = strcmp(arg, "writev") == 0 ? CHUNK_WRITE_WRITEV : CHUNK_WRITE_STAGE;
		return 0;
	case OPT_NO_DIRECT:
		o->direct = false;
		return 0;
	case OPT_CHUNK:
		if (!cli_size("dump", "chunk-size", arg, MCW_CHUNK_BYTES_MIN, &o->chunk_bytes))
			return MCW_EXIT_USAGE;
		if (o->chunk_bytes > MCW_CHUNK_BYTES_MAX)
			return cli_usage_error("dump", "--chunk-size: at most 1G");
		return 0;
	case OPT_KEEP_SPOOL:
		o->keep_spool = true;
		return 0;
	case OPT_SYNCFS:
		if (!cli_uint("dump", "syncfs-interval", arg, 0, 3600, &v))
			return MCW_EXIT_USAGE;
		o->syncfs_interval_s = (unsigned)v;
		return 0;
	default:
		return engine_shared_option("dump", ch, arg, o);
	}
}

static int parse_opts(int argc, char **argv, struct dump_opts *o)
{
	static const struct option longopts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "crawl", required_argument, NULL, OPT_CRAWL },
		{ "no-mgdump", no_argument, NULL, OPT_NO_MGDUMP },
		{ "min-ttl", required_argument, NULL, OPT_MIN_TTL },
		{ "writer", required_argument, NULL, OPT_WRITER },
		{ "no-direct", no_argument, NULL, OPT_NO_DIRECT },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "keep-spool", no_argument, NULL, OPT_KEEP_SPOOL },
		{ "syncfs-interval", required_argument, NULL, OPT_SYNCFS },
		KEYFILTER_LONGOPTS,
		CLI_COMMON_LONGOPTS,
		{ 0 },
	};
	*o = (struct dump_opts){
		.kind = RUN_DUMP,
		.crawl = KEYS_HASH,
		.try_mgdump = true,
		.write_mode = CHUNK_WRITE_STAGE,
		.direct = true,
		.chunk_bytes = MCW_CHUNK_BYTES_DEFAULT,
	};
	cli_common_defaults(&o->co);
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:o:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		int ret = dump_option(ch, optarg, o);
		if (ret != 0)
			return ret;
	}
	if (o->co.help) {
		printf("%s\n%s\n%s\n%s\n%s", dump_usage, keyfilter_help, cli_limits_help,
		       cli_secure_help, mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("dump", "unexpected argument '%s'", argv[optind]);
	if (o->source.port == 0)
		return cli_usage_error("dump", "--source HOST:PORT is required");
	if (o->out_dir == NULL)
		return cli_usage_error("dump", "--out DIR is required");
	return cli_secure_finish("dump", &o->co, &o->source, NULL);
}

/* ---- memory plan ------------------------------------------------------------------- */

int dump_plan_compute(const struct dump_plan_in *in, struct dump_plan *p, char *err, size_t cap)
{
	size_t reply_max = (size_t)in->item_size_max + MCW_REPLY_OVERHEAD_MAX;
	size_t pipe_min = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES +
			  ROUND_UP(reply_max, 64 * KIB) + (in->tls ? MCW_TLS_PIPE_BYTES : 0);
	size_t net_min = pipe_min;
	size_t keyin = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES) +
		       MCW_KEYCHUNK_BYTES;
	/* dump: key input + writer staging; verify: key input + the destination's pipe */
	/* stream: key input + two ms batch slots that each hold a largest item + replies */
	size_t stream_min = MCW_STREAM_SLOTS * ROUND_UP(reply_max + MCP_REQ_MAX + 8, 64 * KIB) +
			    MCW_STREAM_RECV_BYTES;
	size_t disk_min =
	    keyin + (in->kind == RUN_DUMP
			 ? chunk_writer_staging_min(in->mode, (uint32_t)in->item_size_max)
		     : in->kind == RUN_VERIFY ? pipe_min
					      : stream_min);
	size_t buf_min = ROUND_UP(MAX(net_min, disk_min), 64 * KIB);
	unsigned threads = in->threads;
	/* receive and two write slots (one group builds right in them); with several groups,
	 * a chunk being built per group */
	size_t group_bytes = in->groups > 1 ? MCW_GROUP_KEYCHUNK_BYTES : 0;
	size_t kr = 3 * MCW_KEYCHUNK_BYTES + in->groups * group_bytes;
	size_t fixed = kr + ROUND_UP(in->filter_bytes, MCW_ALIGN_BYTES) + MCW_DEDUPE_MIN_BYTES;
	char s1[32], s2[32], s3[32];

	memset(p, 0, sizeof(*p));
	uint64_t budget_bytes = in->budget_bytes;
	size_t per_buf = budget_bytes > fixed ? (size_t)(budget_bytes - fixed) / (2 * threads) : 0;
	/* more than MCW_WORKER_BUF_MAX_BYTES does not go faster, but a buffer always holds the
	 * largest item (memcached -I goes to 1024m) */
	size_t buf_cap = MAX((size_t)MCW_WORKER_BUF_MAX_BYTES, buf_min);
	per_buf = MIN(per_buf, buf_cap) / (64 * KIB) * (64 * KIB);
	if (per_buf < buf_min) {
		uint64_t need = fixed + 2ull * threads * buf_min;
		snprintf(err, cap,
			 "memory budget %s is too small for %u worker(s) with item_size_max %s%s: "
			 "each worker needs 2 x %s; use --memory %lluM or more, or fewer --threads",
			 size_format(s1, sizeof(s1), budget_bytes), threads,
			 size_format(s2, sizeof(s2), in->item_size_max),
			 in->filter_bytes ? " and the key filter's rings" : "",
			 size_format(s3, sizeof(s3), buf_min),
			 (unsigned long long)((need + MIB - 1) / MIB));
		return -ENOMEM;
	}
	p->worker_net_bytes = per_buf;
	p->worker_disk_bytes = per_buf;
	p->kr_recv_bytes = MCW_KEYCHUNK_BYTES;
	p->kr_group_bytes = group_bytes;
	size_t filter = ROUND_UP(in->filter_bytes, MCW_ALIGN_BYTES);
	p->dedupe_bytes = (size_t)budget_bytes - kr - filter - 2 * threads * per_buf;
	p->dedupe_bytes = p->dedupe_bytes / MCW_ALIGN_BYTES * MCW_ALIGN_BYTES;
	p->total_bytes = kr + filter + p->dedupe_bytes + 2 * threads * per_buf;
	ASSERT(p->total_bytes <= budget_bytes);
	return 0;
}

static int budget_setup(struct dump_ctx *c)
{
	struct dump_plan p;
	char err[512];
	static char owners[MCW_THREADS_MAX][24];
	size_t filter_bytes = c->filter_bytes;
	struct dump_plan_in in = {
		.kind = c->o.kind,
		.budget_bytes = c->o.co.memory_bytes,
		.threads = c->o.co.threads,
		.item_size_max = MAX(c->src.item_size_max, c->dst.item_size_max),
		.mode = c->o.write_mode,
		.groups = c->kf.ngroups,
		.filter_bytes = filter_bytes,
		.tls = (c->o.source.sec && c->o.source.sec->tls) ||
		       (c->o.dest.sec && c->o.dest.sec->tls),
	};
	int ret = dump_plan_compute(&in, &p, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		return MCW_EXIT_USAGE;
	}
	ret = budget_map(&c->budget, c->o.co.memory_bytes);
	if (ret < 0) {
		log_error("cannot reserve the memory budget: %s", strerror(-ret));
		return MCW_EXIT_SOFTWARE;
	}
	long ncpu = MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L);
	for (unsigned i = 0; i < c->o.co.threads; i++) {
		struct dump_worker *w = &c->workers[i];
		snprintf(owners[i], sizeof(owners[i]), "worker %u", i);
		w->cpu = (int)(i % (unsigned)ncpu);
		int node = budget_numa_node_of_cpu(w->cpu);
		w->net_buf =
		    budget_take(&c->budget, p.worker_net_bytes, owners[i], "network", node);
		w->net_bytes = p.worker_net_bytes;
		w->disk_buf = budget_take(&c->budget, p.worker_disk_bytes, owners[i], "disk", node);
		w->disk_bytes = p.worker_disk_bytes;
	}
	c->kr_recv = budget_take(&c->budget, p.kr_recv_bytes, "key reader", "receive", -1);
	c->kr_recv_bytes = p.kr_recv_bytes;
	c->kr_stage[0] = budget_take(&c->budget, MCW_KEYCHUNK_BYTES, "key reader", "chunk A", -1);
	c->kr_stage[1] = budget_take(&c->budget, MCW_KEYCHUNK_BYTES, "key reader", "chunk B", -1);
	c->kr_group_bytes = p.kr_group_bytes;
	if (c->kf.ngroups > 1) {
		uint8_t *groups = budget_take(&c->budget, c->kf.ngroups * p.kr_group_bytes,
					      "key reader", "group chunks", -1);
		for (unsigned g = 0; g < c->kf.ngroups; g++)
			c->kr_group[g] = groups + g * p.kr_group_bytes;
	}
	uint8_t *rings =
	    filter_bytes ? budget_take(&c->budget, filter_bytes, "key reader", "ring", -1) : NULL;
	uint8_t *dd = budget_take(&c->budget, p.dedupe_bytes, "key reader", "dedupe", -1);
	budget_commit(&c->budget);
	dedupe_init(&c->dedupe, dd, p.dedupe_bytes);
	if (keyfilter_build(&c->kf, rings, filter_bytes, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return MCW_EXIT_USAGE;
	}
	if (!c->o.co.quiet) {
		budget_print(&c->budget, stderr);
		fprintf(stderr,
			"  (dedupe table holds %llu keys; network: send slots + receive; "
			"disk: key input + %s)\n",
			(unsigned long long)dedupe_capacity(&c->dedupe),
			c->o.kind == RUN_DUMP ? "staging"
					      : "the destination's send slots + receive");
	}
	return 0;
}

/* ---- source and output directory ---------------------------------------------------- */

/* Connects and probes a server; dumps: also the crawler and dump settings. Returns the
 * connection or a negative exit code. */
static int probe_server(struct dump_ctx *c, const struct hostport *hp, struct server_info *si,
			bool needs_dumps)
{
	char err[512];
	int fd = net_connect(hp, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
	if (fd < 0) {
		log_error("%s", err);
		return -net_exit_code(fd);
	}
	net_set_recv_timeout(fd, c->o.co.io_timeout_ms);
	int ret = server_probe(fd, hp->text, si, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		net_close(fd);
		return -net_exit_code(ret);
	}
	const char *why = server_unsuitable(si, needs_dumps);
	if (why != NULL) {
		log_error("%s (memcached %s) %s", hp->text, si->version, why);
		close(fd);
		return -MCW_EXIT_UNAVAILABLE;
	}
	return fd;
}

static int probe_servers(struct dump_ctx *c)
{
	int fd = probe_server(c, &c->o.source, &c->src, true);
	if (fd < 0)
		return -fd;
	c->keys_fd = fd;
	if (c->o.kind != RUN_DUMP) { /* verify, stream: the destination too */
		fd = probe_server(c, &c->o.dest, &c->dst, false);
		if (fd < 0)
			return -fd;
		net_close(fd); /* the workers open their own */
		if (c->o.sample > 0 && c->src.curr_items > c->o.sample) {
			double p = (double)c->o.sample / (double)c->src.curr_items;
			c->sample_threshold = (uint64_t)(p * 18446744073709551615.0);
		}
	}
	return 0;
}

static bool dir_is_empty(const char *path, char *first, size_t cap)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "lost+found") == 0)
			continue;
		snprintf(first, cap, "%s", de->d_name);
		empty = false;
		break;
	}
	if (d != NULL)
		closedir(d);
	return empty;
}

/* verify: the key spool lives in a fresh directory under the work directory. */
static int prepare_work_dir(struct dump_ctx *c)
{
	static char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/mcwarm-verify-XXXXXX", c->o.out_dir);
	if (mkdtemp(dir) == NULL) {
		log_error("cannot create a work directory under %s: %s (set --work)", c->o.out_dir,
			  strerror(errno));
		return MCW_EXIT_IO;
	}
	c->o.out_dir = dir;
	return 0;
}

/* A dump directory whose dump is complete: DONE in it, or in each group's directory. */
static bool dump_is_complete(struct dump_ctx *c, int dir_fd)
{
	char path[PATH_MAX];
	for (unsigned g = 0; g < c->kf.ngroups; g++) {
		if (c->kf.ngroups == 1)
			snprintf(path, sizeof(path), "%s", DONE_NAME);
		else
			snprintf(path, sizeof(path), "%s/%s", c->kf.group_name[g], DONE_NAME);
		if (faccessat(dir_fd, path, F_OK, 0) < 0)
			return false;
	}
	return faccessat(dir_fd, SPOOL_DIR "/" CHECKPOINT_NAME, F_OK, 0) < 0;
}

static int prepare_out_dir(struct dump_ctx *c)
{
	char first[256];
	bool resume = false;
	if (c->o.kind != RUN_DUMP) {
		int ret = prepare_work_dir(c);
		if (ret != 0)
			return ret;
	}
	const char *dir = c->o.out_dir;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		log_error("cannot create the output directory %s: %s", dir, strerror(errno));
		return MCW_EXIT_IO;
	}
	c->out_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!dir_is_empty(dir, first, sizeof(first))) {
		if (c->o.kind == RUN_DUMP && c->out_fd >= 0 && dump_is_complete(c, c->out_fd)) {
			log_info("%s already holds a complete dump (DONE): nothing to do", dir);
			c->already_complete = true;
			return 0;
		}
		resume = c->o.kind == RUN_DUMP && c->out_fd >= 0 &&
			 faccessat(c->out_fd, SPOOL_DIR "/" CHECKPOINT_NAME, F_OK, 0) == 0;
		if (!resume) {
			log_error("the output directory %s is not empty (it holds '%s'): dump into "
				  "a new or empty directory so no earlier dump is mixed in",
				  dir, first);
			return MCW_EXIT_USAGE;
		}
	}
	for (unsigned g = 0; g < c->kf.ngroups; g++) {
		c->group_fd[g] = c->out_fd;
		snprintf(c->group_path[g], sizeof(c->group_path[g]), "%s", dir);
		if (c->kf.ngroups == 1 || c->o.kind != RUN_DUMP || c->out_fd < 0)
			continue;
		/* resizing: one complete dump per new owner */
		const char *name = c->kf.group_name[g];
		snprintf(c->group_path[g], sizeof(c->group_path[g]), "%.3900s/%s", dir, name);
		if ((mkdirat(c->out_fd, name, 0755) < 0 && !(resume && errno == EEXIST)) ||
		    (c->group_fd[g] = openat(c->out_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
			0) {
			log_error("cannot create %s: %s", c->group_path[g], strerror(errno));
			return MCW_EXIT_IO;
		}
	}
	if (strlen(dir) + sizeof("/" SPOOL_DIR) > sizeof(c->spool_path)) {
		log_error("the output directory's path is too long: %s", dir);
		return MCW_EXIT_USAGE;
	}
	snprintf(c->spool_path, sizeof(c->spool_path), "%.4000s/" SPOOL_DIR, dir);
	if (c->out_fd < 0 ||
	    (mkdirat(c->out_fd, SPOOL_DIR, 0755) < 0 && !(resume && errno == EEXIST))) {
		log_error("cannot prepare %s: %s", c->spool_path, strerror(errno));
		return MCW_EXIT_IO;
	}
	c->spool_fd = openat(c->out_fd, SPOOL_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->spool_fd < 0)
		return MCW_EXIT_IO;
	return resume ? resume_prepare(c) : 0;
}

static void remove_spool(struct dump_ctx *c)
{
	char name[32];
	checkpoint_close(&c->ckpt);
	unlinkat(c->spool_fd, CHECKPOINT_NAME, 0);
	for (uint32_t seq = 0; seq < c->chunks_ready; seq++) {
		keychunk_name(name, seq);
		unlinkat(c->spool_fd, name, 0);
	}
	if (unlinkat(c->out_fd, SPOOL_DIR, AT_REMOVEDIR) < 0)
		log_warn("could not remove %s: %s", c->spool_path, strerror(errno));
	if (c->o.kind != RUN_DUMP && rmdir(c->o.out_dir) < 0)
		log_warn("could not remove %s: %s", c->o.out_dir, strerror(errno));
}

/* ---- running ------------------------------------------------------------------------ */

static void identity_init(struct dump_ctx *c)
{
	if (c->resuming) { /* the files kept and those to come belong to one dump */
		for (unsigned i = 0; i < sizeof(c->id.dump_id); i++) {
			unsigned v;
			sscanf(c->ckpt.dump_id_hex + 2 * i, "%2x", &v);
			c->id.dump_id[i] = (uint8_t)v;
		}
	} else {
		random_bytes(c->id.dump_id, sizeof(c->id.dump_id));
	}
	hex_encode(c->dump_id_hex, c->id.dump_id, sizeof(c->id.dump_id));
	c->id.dump_started_unix_ns = wall_ns();
	c->id.source_time_s = c->src.time_s;
	c->id.source_started_s = c->src.time_s - c->src.uptime_s;
	c->id.source_pid = c->src.pid;
	snprintf(c->id.source_addr, sizeof(c->id.source_addr), "%.63s", c->o.source.text);
	snprintf(c->id.source_version, sizeof(c->id.source_version), "%s", c->src.version);
}

/* dump: a new checkpoint, or the resumed one's keys in the dedupe table. */
static int start_checkpoint(struct dump_ctx *c)
{
	if (c->resuming) {
		int code = resume_load_dedupe(c);
		if (code != 0)
			return code;
	} else {
		int ret = checkpoint_create(&c->ckpt, c->spool_fd, c->dump_id_hex, c->o.source.text,
					    c->src.time_s - (int64_t)c->src.uptime_s, c->src.pid,
					    dump_options_crc(&c->o));
		if (ret < 0) {
			log_error("cannot write the checkpoint in %s: %s", c->spool_path,
				  strerror(-ret));
			return MCW_EXIT_IO;
		}
	}
	c->ckpt_on = true;
	return 0;
}

static int start_threads(struct dump_ctx *c)
{
	char err[512];
	for (unsigned i = 0; i < c->o.co.threads; i++) {
		struct dump_worker *w = &c->workers[i];
		w->id = i;
		w->ctx = c;
		w->fd = net_connect(&c->o.source, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
		if (w->fd >= 0 && c->o.kind != RUN_DUMP)
			w->dst_fd =
			    net_connect(&c->o.dest, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
		if (w->fd < 0 || (c->o.kind != RUN_DUMP && w->dst_fd < 0)) {
			log_error("%s", err);
			return MCW_EXIT_UNAVAILABLE;
		}
	}
	c->start_mono_ns = mono_ns();
	bool list = !c->keys_done; /* a resumed dump whose listing had ended lists nothing */
	c->run.threads_running = c->o.co.threads + (list ? 1 : 0);
	c->nworkers = c->o.co.threads;
	if (list)
		pthread_create(&c->keys_thread, NULL, keyreader_main, c);
	else
		c->keys_listed_before = true;
	void *(*fn)(void *) = c->o.kind == RUN_DUMP	? dump_worker_main
			      : c->o.kind == RUN_VERIFY ? verify_worker_main
							: stream_worker_main;
	for (unsigned i = 0; i < c->o.co.threads; i++)
		pthread_create(&c->workers[i].thread, NULL, fn, &c->workers[i]);
	return 0;
}

static void show_progress(struct dump_ctx *c, struct progress *pg)
{
	double secs = (double)(mono_ns() - c->start_mono_ns) / 1e9;
	uint64_t items = atomic_load(&c->st.items);
	uint64_t fetched = atomic_load(&c->st.keys_fetched);
	uint64_t queued = atomic_load(&c->st.keys_queued);
	uint64_t bytes = atomic_load(&c->st.value_bytes);
	double rate = secs > 0 ? (double)fetched / secs : 0;
	uint64_t total = c->keys_done ? queued : MAX(queued, c->src.curr_items);
	char eta[32] = "?";
	if (rate > 0 && total > fetched)
		snprintf(eta, sizeof(eta), "%.0fs", (double)(total - fetched) / rate);
	else if (total <= fetched)
		snprintf(eta, sizeof(eta), "0s");
	progress_draw(
	    pg, "dump: keys %llu%s, items %llu, %.1f MiB, %.0f items/s, %.1f MiB/s, ETA %s",
	    (unsigned long long)queued, c->keys_done ? "" : "+", (unsigned long long)items,
	    (double)bytes / (double)MIB, secs > 0 ? (double)items / secs : 0,
	    secs > 0 ? (double)bytes / (double)MIB / secs : 0, eta);
}

static void wait_threads(struct dump_ctx *c)
{
	struct progress pg;
	int64_t next_sync = mono_ns() + (int64_t)c->o.syncfs_interval_s * 1000000000LL;
	progress_init(&pg, c->o.co.quiet);
	pthread_mutex_lock(&c->run.mu);
	while (c->run.threads_running > 0) {
		run_wait_ms(&c->run, MCW_PROGRESS_INTERVAL_MS);
		pthread_mutex_unlock(&c->run.mu);
		show_progress(c, &pg);
		rate_limits_poll_log(&c->limits);
		if (c->watch_on)
			cap_watch_poll(&c->watch, false);
		if (metrics_due(&c->metrics))
			engine_metrics(c, "running");
		if (c->o.syncfs_interval_s > 0 && c->out_fd >= 0 && mono_ns() >= next_sync) {
			/* finished chunk files reach the disk for a reader on another host */
			if (syncfs(c->out_fd) < 0)
				log_warn("syncfs %s: %s", c->o.out_dir, strerror(errno));
			next_sync = mono_ns() + (int64_t)c->o.syncfs_interval_s * 1000000000LL;
		}
		pthread_mutex_lock(&c->run.mu);
	}
	pthread_mutex_unlock(&c->run.mu);
	progress_done(&pg);
	if (!c->keys_listed_before)
		pthread_join(c->keys_thread, NULL);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i].thread, NULL);
}

/* MANIFEST and DONE in each group's directory (the output directory without groups). */
static int publish(struct dump_ctx *c)
{
	char err[512];
	for (unsigned g = 0; g < c->kf.ngroups; g++) {
		struct manifest_entry *entries = NULL;
		struct manifest_info mi;
		long n = manifest_collect(c->group_fd[g], &entries, err, sizeof(err));
		if (n < 0) {
			log_error("%s", err);
			return MCW_EXIT_IO;
		}
		memset(&mi, 0, sizeof(mi));
		memcpy(mi.dump_id_hex, c->dump_id_hex, sizeof(mi.dump_id_hex));
		snprintf(mi.source, sizeof(mi.source), "%s", c->o.source.text);
		snprintf(mi.source_version, sizeof(mi.source_version), "%s", c->src.version);
		mi.started_unix_ns = c->id.dump_started_unix_ns;
		mi.finished_unix_ns = wall_ns();
		mi.source_item_size_max = c->src.item_size_max;
		int ret =
		    manifest_publish(c->group_fd[g], &mi, entries, (size_t)n, err, sizeof(err));
		free(entries);
		if (ret < 0) {
			log_error("%s", err);
			return MCW_EXIT_IO;
		}
		if (mi.records != atomic_load(&c->st.group_items[g])) {
			log_error(
			    "%s holds %llu records but %llu were written there: the directory "
			    "changed during the dump",
			    c->group_path[g], (unsigned long long)mi.records,
			    (unsigned long long)atomic_load(&c->st.group_items[g]));
			return MCW_EXIT_SOFTWARE;
		}
	}
	return 0;
}

static void summary(struct dump_ctx *c, int code, double secs)
{
	struct dump_stats *s = &c->st;
	double cpu = cpu_seconds();
	uint64_t items = atomic_load(&s->items), bytes = atomic_load(&s->value_bytes);
	if ((!c->o.co.quiet || code != 0) && !c->already_complete) {
		fprintf(stderr,
			"mcwarm: dump %s: %llu items, %.1f MiB of values in %llu files, %.2f s "
			"(%.0f items/s, %.1f MiB/s), %.2f CPU s, peak RSS %.1f MiB\n",
			code == 0 ? "complete" : "FAILED", (unsigned long long)items,
			(double)bytes / (double)MIB, (unsigned long long)atomic_load(&s->files),
			secs, secs > 0 ? (double)items / secs : 0,
			secs > 0 ? (double)bytes / (double)MIB / secs : 0, cpu,
			(double)peak_rss_bytes() / (double)MIB);
		fprintf(stderr,
			"mcwarm: keys listed %llu, duplicates %llu, expired/min-ttl %llu, "
			"filtered by prefix %llu, by ring %llu, unsendable %llu; fetched %llu, "
			"misses %llu, min-ttl at fetch %llu, server errors %llu\n",
			(unsigned long long)atomic_load(&s->keys_listed),
			(unsigned long long)atomic_load(&s->keys_duplicate),
			(unsigned long long)atomic_load(&s->keys_expired),
			(unsigned long long)atomic_load(&s->keys_filtered_prefix),
			(unsigned long long)atomic_load(&s->keys_filtered_ring),
			(unsigned long long)atomic_load(&s->keys_unsendable),
			(unsigned long long)atomic_load(&s->keys_fetched),
			(unsigned long long)atomic_load(&s->misses),
			(unsigned long long)atomic_load(&s->ttl_filtered),
			(unsigned long long)atomic_load(&s->server_errors));
	}
	if (!c->o.co.json)
		return;
	struct json j;
	json_begin(&j, stdout);
	json_str(&j, "command", "dump");
	json_bool(&j, "ok", code == 0);
	json_i64(&j, "exit_code", code);
	if (code != 0)
		json_str(&j, "error", c->run.error);
	json_str(&j, "source", c->o.source.text);
	json_str(&j, "source_version", c->src.version);
	json_str(&j, "out", c->o.out_dir);
	json_str(&j, "dump_id", c->dump_id_hex);
	json_bool(&j, "already_complete", c->already_complete);
	json_bool(&j, "resumed", c->resuming);
	json_u64(&j, "items_resumed", atomic_load(&s->items_resumed));
	json_str(&j, "key_dump", c->key_dump_cmd ? c->key_dump_cmd : "");
	json_str(&j, "writer", c->o.write_mode == CHUNK_WRITE_STAGE ? "stage" : "writev");
	json_u64(&j, "threads", c->o.co.threads);
	json_u64(&j, "memory_budget_bytes", c->o.co.memory_bytes);
	json_u64(&j, "keys_listed", atomic_load(&s->keys_listed));
	json_u64(&j, "keys_duplicate", atomic_load(&s->keys_duplicate));
	json_u64(&j, "keys_unchecked", atomic_load(&s->keys_unchecked));
	json_u64(&j, "keys_expired", atomic_load(&s->keys_expired));
	json_u64(&j, "keys_filtered_prefix", atomic_load(&s->keys_filtered_prefix));
	json_u64(&j, "keys_filtered_ring", atomic_load(&s->keys_filtered_ring));
	json_u64(&j, "keys_unsendable", atomic_load(&s->keys_unsendable));
	json_u64(&j, "keys_fetched", atomic_load(&s->keys_fetched));
	json_u64(&j, "items", items);
	json_u64(&j, "misses", atomic_load(&s->misses));
	json_u64(&j, "ttl_filtered", atomic_load(&s->ttl_filtered));
	json_u64(&j, "server_errors", atomic_load(&s->server_errors));
	json_u64(&j, "busy_retries", atomic_load(&s->busy_retries));
	json_u64(&j, "value_bytes", bytes);
	json_u64(&j, "files", atomic_load(&s->files));
	if (c->kf.ngroups > 1) { /* resize dumps: one directory per new owner */
		json_obj(&j, "groups");
		for (unsigned g = 0; g < c->kf.ngroups; g++) {
			json_obj(&j, c->kf.group_node[g]);
			json_str(&j, "dir", c->group_path[g]);
			json_u64(&j, "items", atomic_load(&s->group_items[g]));
			json_obj_end(&j);
		}
		json_obj_end(&j);
	}
	json_u64(&j, "file_bytes", atomic_load(&s->file_bytes));
	json_f64(&j, "wall_seconds", secs);
	json_f64(&j, "key_dump_seconds",
		 c->keys_done_mono_ns > 0 ? (double)(c->keys_done_mono_ns - c->start_mono_ns) / 1e9
					  : 0);
	json_f64(&j, "cpu_seconds", cpu);
	json_u64(&j, "peak_rss_bytes", peak_rss_bytes());
	json_end(&j);
}

int engine_run(struct dump_ctx *c)
{
	char err[512];
	if (keyfilter_prepare(&c->kf, &c->o.filter, &c->filter_bytes, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return MCW_EXIT_USAGE;
	}
	c->filter_on = keyfilter_active(&c->kf);
	metrics_init(&c->metrics, c->o.co.metrics_file,
		     c->o.kind == RUN_DUMP     ? "dump"
		     : c->o.kind == RUN_VERIFY ? "verify"
					       : "stream");
	rate_limits_init(&c->limits, c->o.co.max_ops, c->o.co.max_bytes, c->o.co.threads,
			 c->o.co.limits_file);
	rate_limits_poll_log(&c->limits);
	int code = probe_servers(c);
	if (code == 0 && c->o.kind == RUN_STREAM)
		code = stream_preflight(c);
	if (code == 0)
		code = prepare_out_dir(c);
	if (code != 0 || c->already_complete)
		return code;
	code = budget_setup(c);
	if (code != 0)
		return code;
	identity_init(c);
	if (c->o.kind == RUN_DUMP) {
		code = start_checkpoint(c);
		if (code != 0)
			return code;
	}
	if (!c->o.co.quiet)
		log_info("%s %s (memcached %s, %llu items, item_size_max %llu)%s%s",
			 c->o.kind == RUN_DUMP	   ? "dumping"
			 : c->o.kind == RUN_VERIFY ? "verifying"
						   : "streaming",
			 c->o.source.text, c->src.version, (unsigned long long)c->src.curr_items,
			 (unsigned long long)c->src.item_size_max,
			 c->o.kind == RUN_DUMP	   ? " into "
			 : c->o.kind == RUN_VERIFY ? " against "
						   : " into ",
			 c->o.kind == RUN_DUMP ? c->o.out_dir : c->o.dest.text);
	code = start_threads(c);
	if (code != 0)
		return code;
	wait_threads(c);
	if (c->run.failed) {
		log_error("%s", c->run.error);
		if (c->o.kind == RUN_DUMP)
			log_error("finished chunk files are kept in %s; the dump is not complete "
				  "(no DONE)",
				  c->o.out_dir);
		return c->run.exit_code;
	}
	return 0;
}

void engine_metrics(struct dump_ctx *c, const char *phase)
{
	struct metrics *m = &c->metrics;
	struct dump_stats *st = &c->st;
	if (!metrics_on(m))
		return;
	double secs = c->start_mono_ns ? (double)(mono_ns() - c->start_mono_ns) / 1e9 : 0;
	uint64_t items =
	    c->o.kind == RUN_VERIFY ? atomic_load(&st->v_equal) : atomic_load(&st->items);
	uint64_t fetched = atomic_load(&st->keys_fetched);
	uint64_t queued = atomic_load(&st->keys_queued);
	metrics_begin(m, phase);
	metrics_add(m, METRICS_COUNTER, "mcwarm_keys_listed_total",
		    "keys the source's key dump listed", "", (double)atomic_load(&st->keys_listed));
	metrics_add(m, METRICS_COUNTER, "mcwarm_keys_fetched_total",
		    "keys asked for with mg and answered", "", (double)fetched);
	metrics_add(m, METRICS_GAUGE, "mcwarm_lag_keys", "keys listed and not fetched yet", "",
		    (double)(queued > fetched ? queued - fetched : 0));
	metrics_add(m, METRICS_COUNTER, "mcwarm_items_total",
		    "items written (dump), sent (stream) or found equal (verify)", "",
		    (double)items);
	metrics_add(m, METRICS_COUNTER, "mcwarm_value_bytes_total", "value bytes moved", "",
		    (double)atomic_load(&st->value_bytes));
	metrics_add(m, METRICS_GAUGE, "mcwarm_items_per_second", "items per second since the start",
		    "", secs > 0 ? (double)items / secs : 0);
	static const char *const kinds[] = { "miss", "server_error", "busy_retry" };
	uint64_t counts[] = { atomic_load(&st->misses), atomic_load(&st->server_errors),
			      atomic_load(&st->busy_retries) };
	metrics_add_kinds(m, "mcwarm_events_total",
			  "keys gone since listed, error answers, waits for a busy crawler", "kind",
			  kinds, counts, ARRAY_LEN(kinds));
	if (c->o.kind == RUN_VERIFY) {
		static const char *const outcomes[] = { "equal", "missing", "value",
							"flags", "ttl",	    "expired" };
		uint64_t v[] = { atomic_load(&st->v_equal), atomic_load(&st->v_missing),
				 atomic_load(&st->v_value), atomic_load(&st->v_flags),
				 atomic_load(&st->v_ttl),   atomic_load(&st->v_expired) };
		metrics_add_kinds(m, "mcwarm_verify_keys_total", "keys checked, by outcome",
				  "outcome", outcomes, v, ARRAY_LEN(outcomes));
	}
	if (c->watch_on) {
		static const char *const ev[] = { "evicted", "evicted_unfetched" };
		uint64_t e[] = { c->watch.evictions, c->watch.evicted_unfetched };
		metrics_add_kinds(m, "mcwarm_destination_evictions_total",
				  "items the destination evicted during the run", "kind", ev, e,
				  ARRAY_LEN(ev));
	}
	metrics_commit(m);
}

void engine_init(struct dump_ctx *c)
{
	run_init(&c->run);
	c->keys_fd = c->out_fd = c->spool_fd = c->ckpt.fd = -1;
	for (unsigned i = 0; i < MCW_THREADS_MAX; i++)
		c->workers[i].fd = c->workers[i].dst_fd = -1;
	for (unsigned g = 0; g < KEYFILTER_GROUPS_MAX; g++)
		c->group_fd[g] = -1;
}

void engine_release(struct dump_ctx *c)
{
	if (c->o.kind != RUN_DUMP && c->spool_fd >= 0)
		remove_spool(c);
	for (unsigned g = 0; g < KEYFILTER_GROUPS_MAX; g++)
		if (c->group_fd[g] >= 0 && c->group_fd[g] != c->out_fd)
			close(c->group_fd[g]);
	if (c->out_fd >= 0)
		close(c->out_fd);
	checkpoint_close(&c->ckpt);
	if (c->spool_fd >= 0)
		close(c->spool_fd);
	if (c->keys_fd >= 0)
		close(c->keys_fd);
	budget_unmap(&c->budget);
}

static int dump_run(struct dump_ctx *c)
{
	int code = engine_run(c);
	if (code != 0 || c->already_complete)
		return code;
	code = publish(c);
	if (code == 0 && !c->o.keep_spool)
		remove_spool(c);
	if (code == 0 && c->o.syncfs_interval_s > 0 && syncfs(c->out_fd) < 0)
		log_warn("syncfs %s: %s", c->o.out_dir, strerror(errno));
	return code;
}

int mcw_cmd_dump(int argc, char **argv)
{
	static struct dump_ctx ctx; /* large; one per process */
	struct dump_ctx *c = &ctx;
	memset(c, 0, sizeof(*c));
	int code = parse_opts(argc, argv, &c->o);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	engine_init(c);
	int64_t t0 = mono_ns();
	code = dump_run(c);
	double secs = (double)(mono_ns() - t0) / 1e9;
	if (code == 0 || c->start_mono_ns != 0)
		summary(c, code, secs);
	engine_metrics(c, metrics_phase_of(code));
	engine_release(c);
	return code;
}
