/*
 * populate.c: `mcwarm populate`, the orchestrator. Probes the destination, opens the
 * journal, plans the memory budget, starts the workers, and runs passes over the dump
 * directory until the dump's MANIFEST is fully applied (--follow) or once (--once).
 *
 * A pass: list the directory or the s3:// prefix (the listing is the queue: no queue
 * service, docs/architecture.md); queue every final chunk file of this --shard the
 * journal does not mark done (in job/part order; a damaged file again only if it changed
 * since); wait until the workers have finished them; then check DONE and MANIFEST against
 * the journal. The backlog (chunks listed, not applied yet) goes to the progress line,
 * the metrics, the JSON summary and STATE/backlog for an autoscaler.
 */
#include <dirent.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "chunk_reader.h"
#include "cli.h"
#include "json.h"
#include "manifest.h"
#include "mcw_limits.h"
#include "mspipe.h"
#include "populate_private.h"

static const char populate_usage[] =
    "usage: mcwarm populate --dest HOST:PORT --from DIR|s3://BUCKET/PREFIX --state DIR\n"
    "                       [--once|--follow] [--shard I/N] [options]\n"
    "\n"
    "Writes the items of a dump's chunk files into a live memcached with pipelined meta\n"
    "'ms', in add mode by default (a key that live traffic already wrote is kept: counted\n"
    "as already present). Every block's checksum is verified before anything in it is\n"
    "sent; damaged blocks are reported and skipped, every good block is applied. The\n"
    "remaining TTL is computed when an item is sent; items that expired in transit are\n"
    "skipped. What was applied is kept in STATE/journal, so a pass never applies a file\n"
    "twice and a killed populate continues where it stopped.\n"
    "\n"
    "  -d, --dest HOST:PORT     the memcached to fill (required)\n"
    "  -f, --from DIR|s3://BUCKET/PREFIX  the dump: a directory (may be a read-only\n"
    "                           mount), or the objects a dump wrote under PREFIX/ in S3 or\n"
    "                           an S3-compatible store, read in ranged GETs straight into\n"
    "                           the read buffers (no local copy) (required)\n"
    "  -s, --state DIR          where the journal lives, outside DIR (required)\n"
    "      --once               one pass over what is there (default)\n"
    "      --follow             pass again until the dump's MANIFEST is fully applied\n"
    "      --shard I/N          apply only the files of shard I (0..N-1) of N populators\n"
    "                           sharing one dump: file j (its job plus its part number,\n"
    "                           from its name) goes to populator j mod N\n"
    "      --idle-timeout SECONDS  --follow gives up after this long without a new file\n"
    "                           (default 600)\n"
    "      --mode add|set       add (default): never overwrite; set: overwrite\n"
    "      --min-ttl SECONDS    skip items with less TTL left when sent (default 1)\n"
    "  -m, --memory SIZE        memory budget (default 64M)\n"
    "  -t, --threads N          workers, one connection each (default: online CPUs)\n"
    "      --io-timeout SECONDS a destination silent this long is reconnected (default 30)\n"
    "      --reconnect-timeout SECONDS  give up reconnecting after this long (default 60)\n"
    "      --no-direct          never use O_DIRECT reads\n"
    "      --allow-shrink       send even when the destination's memory clearly cannot\n"
    "                           hold the dump (a shrinking resize: it evicts what does not\n"
    "                           fit, and the run ends with exit 3)\n"
    "      --allow-smaller-items  send even when the destination's item_size_max is below\n"
    "                           the source's (larger items are skipped and counted)\n"
    "      --json               print a JSON summary on stdout at the end\n"
    "  -q, --quiet              no budget table, no progress line\n"
    "  -h, --help               this text\n"
    "\n"
    "--once exits 0 when DONE and MANIFEST were seen and every listed file is applied,\n"
    "1 when the dump is not (yet) fully applied, 65 when only damaged files are missing.\n"
    "With --shard, 'fully applied' means every file of this shard in the MANIFEST.\n"
    "\n"
    "The backlog (chunk files of this shard listed but not applied yet) is shown in the\n"
    "progress line, the JSON summary (backlog_chunks), --metrics-file\n"
    "(mcwarm_backlog_chunks) and STATE/backlog (backlog_chunks=N), for an autoscaler.\n"
    "\n"
    "s3:// takes the AWS configuration: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
    "AWS_SESSION_TOKEN, the shared credentials file and AWS_PROFILE, the instance role\n"
    "(IMDSv2), AWS_REGION, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for S3-compatible\n"
    "stores. Store failures exit 77 (credentials refused), 69 (no such bucket), 75\n"
    "(503/500/timeouts past the retries), 78 (bad URL, no credentials).\n"
    "\n"
    "Before sending, the destination is checked against the dump's MANIFEST: its memory\n"
    "(items with memcached's per-item overhead, rounded to slab chunks, against\n"
    "limit_maxbytes: refused with exit 3 when it clearly cannot fit), its item_size_max\n"
    "(not below the source's: exit 69) and its identity (not the dump's source process:\n"
    "exit 64). With --follow before the dump has a MANIFEST, these checks run when it\n"
    "appears. While sending, the destination's evictions are read every 2 s: the run ends\n"
    "with exit 3 if it evicted any, and a destination that answers 'SERVER_ERROR out of memory'\n"
    "(started with -M) stops it at once with exit 3.\n";

/* ---- options ----------------------------------------------------------------------- */

enum {
	OPT_ONCE = 256,
	OPT_FOLLOW,
	OPT_IDLE,
	OPT_MIN_TTL,
	OPT_RECONNECT,
	OPT_NO_DIRECT,
	OPT_SHARD,
};

/* --shard I/N */
static int parse_shard(const char *arg, struct pop_opts *o)
{
	unsigned i, n;
	int end = 0;
	if (sscanf(arg, "%u/%u%n", &i, &n, &end) != 2 || arg[end] != '\0' || n == 0 ||
	    n > POP_SHARDS_MAX || i >= n)
		return cli_usage_error("populate",
				       "--shard: '%s' is not I/N with 0 <= I < N <= %d (e.g. 0/2 "
				       "and 1/2 for two populators)",
				       arg, POP_SHARDS_MAX);
	o->shard_i = i;
	o->shard_n = n;
	return 0;
}

/* --from s3://BUCKET/PREFIX: the prefix gets its '/' (the dump's layout is PREFIX/NAME) */
static int parse_from_s3(const char *arg, struct pop_opts *o)
{
	struct objs_error e = { 0 };
	if (objs_url_parse(arg, &o->url, &e) < 0) {
		log_error("populate: --from: %s", e.text);
		return mcw_exit_code(mcw_store_cause(e.cls));
	}
	size_t n = strlen(o->url.prefix);
	/* every key PREFIX/NAME within S3's key limit */
	if (n + 1 + CHUNK_NAME_MAX > OBJS_KEY_MAX_BYTES)
		return cli_usage_error("populate",
				       "--from: the prefix is longer than %d bytes (S3 keys are at "
				       "most %d bytes with the chunk names under it)",
				       OBJS_KEY_MAX_BYTES - 1 - CHUNK_NAME_MAX, OBJS_KEY_MAX_BYTES);
	if (n > 0 && o->url.prefix[n - 1] != '/') {
		o->url.prefix[n] = '/';
		o->url.prefix[n + 1] = '\0';
	}
	/* messages name objects as FROM/NAME: FROM without its trailing '/' */
	static char shown[8 + OBJS_BUCKET_MAX_BYTES + OBJS_KEY_MAX_BYTES];
	int len = snprintf(shown, sizeof(shown), "%s", arg);
	while (len > 5 && shown[len - 1] == '/')
		shown[--len] = '\0';
	o->from_dir = shown;
	o->from_s3 = true;
	return 0;
}

/* Options of populate only; the common ones go to cli_common_option. 0, or an exit code. */
static int pop_option(int ch, const char *arg, struct pop_opts *o)
{
	uint64_t v;
	switch (ch) {
	case 'd':
		if (hostport_parse(arg, &o->dest) < 0)
			return cli_usage_error("populate", "--dest: '%s' is not HOST:PORT", arg);
		return 0;
	case 'f':
		o->from_dir = arg;
		o->from_s3 = false;
		return strncmp(arg, "s3://", 5) == 0 ? parse_from_s3(arg, o) : 0;
	case OPT_SHARD:
		return parse_shard(arg, o);
	case 's':
		o->state_dir = arg;
		return 0;
	case OPT_ONCE:
	case OPT_FOLLOW:
		o->follow = ch == OPT_FOLLOW;
		return 0;
	case OPT_IDLE:
		if (!cli_uint("populate", "idle-timeout", arg, 1, 7 * 86400, &v))
			return MCW_EXIT_USAGE;
		o->idle_timeout_s = (int)v;
		return 0;
	case OPT_MIN_TTL:
		if (!cli_uint("populate", "min-ttl", arg, 1, 10ull * 365 * 86400, &v))
			return MCW_EXIT_USAGE;
		o->min_ttl_s = (int64_t)v;
		return 0;
	case OPT_RECONNECT:
		if (!cli_uint("populate", "reconnect-timeout", arg, 1, 86400, &v))
			return MCW_EXIT_USAGE;
		o->reconnect_timeout_ms = (int)v * 1000;
		return 0;
	case OPT_NO_DIRECT:
		o->direct = false;
		return 0;
	default: {
		int ret = cap_copy_option("populate", ch, arg, &o->mode, &o->allow);
		return ret != 1 ? ret : cli_common_option("populate", ch, arg, 8 * MIB, &o->co);
	}
	}
}

static int parse_opts(int argc, char **argv, struct pop_opts *o)
{
	static const struct option longopts[] = {
		{ "dest", required_argument, NULL, 'd' },
		{ "from", required_argument, NULL, 'f' },
		{ "state", required_argument, NULL, 's' },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "follow", no_argument, NULL, OPT_FOLLOW },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "min-ttl", required_argument, NULL, OPT_MIN_TTL },
		{ "reconnect-timeout", required_argument, NULL, OPT_RECONNECT },
		{ "no-direct", no_argument, NULL, OPT_NO_DIRECT },
		CAP_COPY_LONGOPTS,
		{ "shard", required_argument, NULL, OPT_SHARD },
		CLI_COMMON_LONGOPTS,
		{ 0 },
	};
	*o = (struct pop_opts){
		.mode = MCP_MS_ADD,
		.min_ttl_s = 1,
		.reconnect_timeout_ms = 60000,
		.idle_timeout_s = 600,
		.direct = true,
		.shard_n = 1,
	};
	cli_common_defaults(&o->co);
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "d:f:s:" CLI_COMMON_SHORTOPTS, longopts, NULL)) !=
	       -1) {
		int ret = pop_option(ch, optarg, o);
		if (ret != 0)
			return ret;
	}
	if (o->co.help) {
		printf("%s\n%s\n%s\n%s", populate_usage, cli_limits_help, cli_secure_help,
		       mcw_exit_codes_help);
		return -1;
	}
	if (optind < argc)
		return cli_usage_error("populate", "unexpected argument '%s'", argv[optind]);
	if (o->dest.port == 0)
		return cli_usage_error("populate", "--dest HOST:PORT is required");
	if (o->from_dir == NULL || o->state_dir == NULL)
		return cli_usage_error(
		    "populate", "--from DIR|s3://BUCKET/PREFIX and --state DIR are required");
	return cli_secure_finish("populate", &o->co, NULL, &o->dest);
}

/* ---- set-up -------------------------------------------------------------------------- */

static int probe_dest(struct pop_ctx *c, int *fd_out)
{
	char err[512];
	int fd = net_connect(&c->o.dest, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
	if (fd < 0) {
		log_error("%s", err);
		return mcw_exit_code(net_connect_cause(fd));
	}
	net_set_recv_timeout(fd, c->o.co.io_timeout_ms);
	int ret = server_probe(fd, c->o.dest.text, &c->dst, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		net_close(fd);
		return mcw_exit_code(net_connect_cause(ret));
	}
	const char *why = server_unsuitable(&c->dst, false);
	if (why != NULL) {
		log_error("%s (memcached %s) %s", c->o.dest.text, c->dst.version, why);
		net_close(fd);
		return MCW_EXIT_UNAVAILABLE;
	}
	*fd_out = fd;
	return 0;
}

static int budget_setup(struct pop_ctx *c)
{
	static char owners[64][24];
	size_t block = MCW_BLOCK_BYTES;
	size_t read_min = ROUND_UP(c->dst.item_size_max + 512, block) + 3 * block;
	size_t send = ROUND_UP(pop_send_area_bytes(), MCW_ALIGN_BYTES);
	/* the answers, and for TLS the ms pipe's stage and ciphertext areas after them */
	size_t recv = POP_RECV_BYTES + (c->o.co.dst_sec.tls ? MSPIPE_TLS_BYTES : 0);
	/* from a store: the footer page, then the fetch thread's client scratch */
	size_t fetch = c->o.from_s3 ? MCW_ALIGN_BYTES + POP_S3_FETCH_SCRATCH_BYTES : 0;
	size_t fixed = ROUND_UP(journal_memory_bytes(), MCW_ALIGN_BYTES) +
		       ROUND_UP(POP_QUEUE_MAX * sizeof(struct pop_task), MCW_ALIGN_BYTES) +
		       (c->o.from_s3 ? POP_S3_LIST_SCRATCH_BYTES : 0) +
		       c->o.co.threads * (send + recv + fetch);
	size_t per = c->o.co.memory_bytes > fixed
			 ? (c->o.co.memory_bytes - fixed) / (2 * c->o.co.threads)
			 : 0;
	/* more than MCW_WORKER_BUF_MAX_BYTES does not go faster, but a read window always holds
	 * the largest item (memcached -I goes to 1024m) */
	per = MIN(per, MAX((size_t)MCW_WORKER_BUF_MAX_BYTES, read_min)) / block * block;
	char s1[32], s2[32];
	if (per < MAX(read_min, 4 * block)) {
		uint64_t need = fixed + 2ull * c->o.co.threads * MAX(read_min, 4 * block);
		log_error("memory budget %s is too small for %u worker(s) with the destination's "
			  "item_size_max %s: use --memory %lluM or more, or fewer --threads",
			  size_format(s1, sizeof(s1), c->o.co.memory_bytes), c->o.co.threads,
			  size_format(s2, sizeof(s2), c->dst.item_size_max),
			  (unsigned long long)((need + MIB - 1) / MIB));
		return MCW_EXIT_USAGE;
	}
	int ret = budget_map(&c->budget, c->o.co.memory_bytes);
	if (ret < 0) {
		log_error("cannot reserve the memory budget: %s", strerror(-ret));
		return MCW_EXIT_SOFTWARE;
	}
	long ncpu = MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L);
	for (unsigned i = 0; i < c->o.co.threads; i++) {
		struct pop_worker *w = &c->workers[i];
		snprintf(owners[i], sizeof(owners[i]), "worker %u", i);
		w->cpu = (int)(i % (unsigned)ncpu);
		int node = budget_numa_node_of_cpu(w->cpu);
		w->read_buf[0] = budget_take(&c->budget, per, owners[i], "read A", node);
		w->read_buf[1] = budget_take(&c->budget, per, owners[i], "read B", node);
		w->read_bytes = per;
		w->send_area = budget_take(&c->budget, send, owners[i], "send", node);
		w->send_bytes = send;
		w->recv_area = budget_take(&c->budget, recv, owners[i], "receive", node);
		w->recv_bytes = recv;
		if (fetch > 0)
			w->fetch_scratch =
			    budget_take(&c->budget, fetch, owners[i], "S3 fetch", node);
	}
	void *list_scratch =
	    c->o.from_s3 ? budget_take(&c->budget, POP_S3_LIST_SCRATCH_BYTES, "S3", "listing", -1)
			 : NULL;
	void *jm = budget_take(&c->budget, journal_memory_bytes(), "journal", "entries", -1);
	c->queue = budget_take(&c->budget, POP_QUEUE_MAX * sizeof(struct pop_task), "journal",
			       "pass queue", -1);
	budget_commit(&c->budget);
	if (!c->o.co.quiet)
		budget_print(&c->budget, stderr);
	char err[512];
	if (journal_open(&c->journal, c->o.state_dir, jm, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return MCW_EXIT_IO;
	}
	return list_scratch ? mcw_exit_code(pop_s3_open(c, list_scratch, POP_S3_LIST_SCRATCH_BYTES))
			    : 0;
}

/* The dump this directory holds: from DONE, else from the first chunk file's header. */
static bool find_dump_id(struct pop_ctx *c)
{
	struct manifest_info mi;
	struct manifest_entry *e = NULL;
	char err[256];
	if (pop_manifest_load(c, &mi, &e, err, sizeof(err)) >= 0) {
		free(e);
		snprintf(c->dump_id_hex, sizeof(c->dump_id_hex), "%s", mi.dump_id_hex);
	} else {
		struct chunk_header h;
		if (!pop_first_header(c, &h))
			return false;
		hex_encode(c->dump_id_hex, h.f.dump_id, 16);
	}
	for (int i = 0; i < 16; i++) {
		unsigned v;
		sscanf(c->dump_id_hex + 2 * i, "%2x", &v);
		c->dump_id[i] = (uint8_t)v;
	}
	c->dump_id_known = true;
	return true;
}

/* ---- passes -------------------------------------------------------------------------- */

/* Damaged files seen this run, so an unchanged one is not read again every pass: by size,
 * inode and mtime on a volume, by size and ETag in a store. */
struct seen {
	uint32_t job, part;
	uint64_t size, id;
	int64_t mtime_ns;
};
static struct seen seen[JOURNAL_PARTIALS_MAX];
static unsigned nseen;

static bool unchanged_since_seen(const struct pop_task *t, const struct seen *now, bool record)
{
	for (unsigned i = 0; i < nseen; i++) {
		if (seen[i].job != t->job || seen[i].part != t->part)
			continue;
		bool same = seen[i].size == now->size && seen[i].id == now->id &&
			    seen[i].mtime_ns == now->mtime_ns;
		if (record)
			seen[i] = *now;
		return same;
	}
	if (record && nseen < JOURNAL_PARTIALS_MAX)
		seen[nseen++] = *now;
	return false;
}

static int cmp_task(const void *a, const void *b)
{
	const struct pop_task *x = a, *y = b;
	if (x->job != y->job)
		return x->job < y->job ? -1 : 1;
	return x->part < y->part ? -1 : x->part > y->part;
}

struct listing {
	uint32_t n;	   /* queued */
	uint64_t listed;   /* chunks of this shard listed */
	uint64_t not_done; /* of those, not applied yet (the backlog) */
	bool full_reported;
};

/* A name found by a listing: counted if it is a chunk of this shard; true if it is not
 * applied yet (then list_queue decides, with its size and identity). */
static bool list_wanted(struct pop_ctx *c, const char *name, struct pop_task *t, struct listing *l)
{
	if (!chunk_name_parse(name, &t->job, &t->part, &t->crc) ||
	    !pop_in_shard(&c->o, t->job, t->part))
		return false;
	l->listed++;
	const struct journal_entry *e = journal_find(&c->journal, t->job, t->part);
	if (e != NULL && e->state == JOURNAL_DONE && e->crc == t->crc)
		return false;
	l->not_done++;
	return true;
}

/* Queues a wanted file unless it is damaged and unchanged since the last look (now: its
 * size and identity). */
static void list_queue(struct pop_ctx *c, struct pop_task *t, struct seen *now, struct listing *l)
{
	now->job = t->job;
	now->part = t->part;
	const struct journal_entry *e = journal_find(&c->journal, t->job, t->part);
	bool unchanged = unchanged_since_seen(t, now, true);
	if (e != NULL && e->crc == t->crc && unchanged)
		return; /* damaged, and not repaired since the last look */
	if (l->n == POP_QUEUE_MAX) {
		if (!l->full_reported)
			log_info("more than %d chunk files to apply: the rest go in the next pass",
				 POP_QUEUE_MAX);
		l->full_reported = true;
		return;
	}
	c->queue[l->n++] = *t;
}

static void list_dir(struct pop_ctx *c, struct listing *l)
{
	/* before the listing: a file listed after DONE appeared is one the dump finished */
	c->done_listed = faccessat(c->from_fd, "DONE", F_OK, 0) == 0;
	DIR *d = fdopendir(dup(c->from_fd));
	struct dirent *de;
	if (d == NULL)
		return;
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct pop_task t;
		struct stat sb;
		if (!list_wanted(c, de->d_name, &t, l))
			continue;
		if (fstatat(c->from_fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			memset(&sb, 0, sizeof(sb));
		struct seen now = {
			.size = (uint64_t)sb.st_size,
			.id = sb.st_ino,
			.mtime_ns = (int64_t)sb.st_mtim.tv_sec * NS_PER_SEC + sb.st_mtim.tv_nsec,
		};
		list_queue(c, &t, &now, l);
	}
	closedir(d);
}

static void list_s3_one(struct pop_ctx *c, const char *name, uint64_t size, const char *etag,
			void *arg)
{
	struct pop_task t;
	if (!list_wanted(c, name, &t, arg))
		return;
	struct seen now = { .size = size, .id = mcw_crc32c(0, etag, strlen(etag)) };
	list_queue(c, &t, &now, arg);
}

/* Lists the dump and queues what is left to apply. Returns the count. */
static uint32_t list_pass(struct pop_ctx *c)
{
	struct listing l = { 0 };
	if (c->o.from_s3) {
		if (pop_s3_list(c, list_s3_one, &l, &c->done_listed) != 0)
			return 0;
	} else {
		list_dir(c, &l);
	}
	qsort(c->queue, l.n, sizeof(c->queue[0]), cmp_task);
	pthread_mutex_lock(&c->run.mu);
	c->chunks_listed = l.listed;
	c->backlog = l.not_done;
	pthread_mutex_unlock(&c->run.mu);
	return l.n;
}

/* STATE/backlog, for an autoscaler (mcwarm-ctl status --json reads it): key=value lines,
 * written to a temporary name and renamed. */
static void write_backlog(struct pop_ctx *c, bool force)
{
	int64_t now = mono_ns();
	if (!force && now - c->backlog_written_ns < (int64_t)POP_BACKLOG_WRITE_MS * 1000000)
		return;
	c->backlog_written_ns = now;
	char path[4200], tmp[4210];
	snprintf(path, sizeof(path), "%s/backlog", c->o.state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	pthread_mutex_lock(&c->run.mu);
	uint64_t listed = c->chunks_listed, backlog = c->backlog;
	pthread_mutex_unlock(&c->run.mu);
	FILE *f = fopen(tmp, "we");
	if (f == NULL)
		return;
	fprintf(f,
		"backlog_chunks=%" PRIu64 "\nchunks_listed=%" PRIu64 "\ndump_done=%d\ncomplete=%d\n"
		"shard=%u/%u\nfrom=%s\ndump_id=%s\npid=%d\nupdated_unix_ms=%" PRId64 "\n",
		backlog, listed, c->done_listed, c->complete, c->o.shard_i, c->o.shard_n,
		c->o.from_dir, c->dump_id_hex, (int)getpid(), wall_ns() / 1000000);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		log_warn("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
	}
}

/* A --metrics-file snapshot (metrics.h). */
static void pop_metrics(struct pop_ctx *c, const char *phase)
{
	struct metrics *m = &c->metrics;
	struct pop_stats *st = &c->st;
	if (!metrics_on(m))
		return;
	double secs = c->start_mono_ns ? (double)(mono_ns() - c->start_mono_ns) / 1e9 : 0;
	uint64_t sent = atomic_load(&st->records_sent);
	pthread_mutex_lock(&c->run.mu);
	uint32_t lag = c->qlen - c->qnext + c->busy;
	uint64_t backlog = c->backlog;
	pthread_mutex_unlock(&c->run.mu);
	metrics_begin(m, phase);
	metrics_add(m, METRICS_COUNTER, "mcwarm_items_total", "items sent to the destination", "",
		    (double)sent);
	metrics_add(m, METRICS_COUNTER, "mcwarm_value_bytes_total", "value bytes sent", "",
		    (double)atomic_load(&st->value_bytes));
	metrics_add(m, METRICS_GAUGE, "mcwarm_items_per_second", "items per second since the start",
		    "", secs > 0 ? (double)sent / secs : 0);
	metrics_add(m, METRICS_COUNTER, "mcwarm_files_applied_total", "chunk files applied", "",
		    (double)atomic_load(&st->files_done));
	metrics_add(m, METRICS_GAUGE, "mcwarm_lag_files",
		    "chunk files of this pass not applied yet", "", (double)lag);
	metrics_add(m, METRICS_GAUGE, "mcwarm_backlog_chunks",
		    "chunk files of this shard listed, not applied yet", "", (double)backlog);
	static const char *const kinds[] = { "already_present", "expired", "too_large",
					     "lost_in_damage" };
	uint64_t skipped[] = { atomic_load(&st->already_present), atomic_load(&st->expired),
			       atomic_load(&st->too_large), atomic_load(&st->records_lost) };
	metrics_add_kinds(m, "mcwarm_items_not_stored_total",
			  "items not stored, by reason (already_present: live data won)", "reason",
			  kinds, skipped, ARRAY_LEN(kinds));
	static const char *const errs[] = { "block_bad", "block_missing", "server_error",
					    "reconnect" };
	uint64_t e[] = { atomic_load(&st->blocks_bad), atomic_load(&st->blocks_missing),
			 atomic_load(&st->server_errors), atomic_load(&st->reconnects) };
	metrics_add_kinds(m, "mcwarm_events_total",
			  "damaged or missing blocks, error answers, reconnects", "kind", errs, e,
			  ARRAY_LEN(errs));
	static const char *const ev[] = { "evicted", "evicted_unfetched" };
	uint64_t evc[] = { c->watch.evictions, c->watch.evicted_unfetched };
	metrics_add_kinds(m, "mcwarm_destination_evictions_total",
			  "items the destination evicted during the run", "kind", ev, evc,
			  ARRAY_LEN(ev));
	metrics_commit(m);
}

static void show_progress(struct pop_ctx *c, struct progress *pg)
{
	double secs = (double)(mono_ns() - c->start_mono_ns) / 1e9;
	uint64_t sent = atomic_load(&c->st.records_sent);
	uint64_t bytes = atomic_load(&c->st.value_bytes);
	pthread_mutex_lock(&c->run.mu);
	uint64_t backlog = c->backlog;
	pthread_mutex_unlock(&c->run.mu);
	progress_draw(pg,
		      "populate: files %llu done, %u queued, backlog %llu; items %llu (%.0f/s), "
		      "%.1f MiB (%.1f MiB/s), present %llu, expired %llu",
		      (unsigned long long)atomic_load(&c->st.files_done), c->qlen - c->qnext,
		      (unsigned long long)backlog, (unsigned long long)sent,
		      secs > 0 ? (double)sent / secs : 0, (double)bytes / (double)MIB,
		      secs > 0 ? (double)bytes / (double)MIB / secs : 0,
		      (unsigned long long)atomic_load(&c->st.already_present),
		      (unsigned long long)atomic_load(&c->st.expired));
}

/* Runs one pass to its end. */
static void run_pass(struct pop_ctx *c, struct progress *pg)
{
	uint32_t n = list_pass(c);
	c->dump_finished = c->done_listed;
	write_backlog(c, true);
	pthread_mutex_lock(&c->run.mu);
	c->qlen = n;
	c->qnext = 0;
	pthread_cond_broadcast(&c->run.cv);
	while (!c->run.fault.err && (c->qnext < c->qlen || c->busy > 0)) {
		run_wait_ms(&c->run, MCW_PROGRESS_INTERVAL_MS);
		pthread_mutex_unlock(&c->run.mu);
		show_progress(c, pg);
		rate_limits_poll_log(&c->limits);
		cap_watch_poll(&c->watch, false);
		if (metrics_due(&c->metrics))
			pop_metrics(c, "running");
		write_backlog(c, false);
		pthread_mutex_lock(&c->run.mu);
	}
	c->qlen = c->qnext = 0;
	int ret = n > 0 ? journal_sync(&c->journal) : 0;
	pthread_mutex_unlock(&c->run.mu);
	if (ret < 0)
		pop_fail(c, ret, "cannot sync the journal %s: %s", c->journal.path, strerror(-ret));
}

/* Ties the journal to the destination process; a new one means start over. */
static int note_instance(struct pop_ctx *c)
{
	pthread_mutex_lock(&c->run.mu);
	int ret = journal_instance(&c->journal, c->dst.time_s - c->dst.uptime_s, c->dst.pid);
	c->dest_restarted = false;
	pthread_mutex_unlock(&c->run.mu);
	if (ret > 0)
		log_warn("%s is a new memcached process (restarted since the journal was written): "
			 "it holds none of the items applied before; applying everything again",
			 c->o.dest.text);
	else if (ret < 0)
		log_error("cannot update the journal %s: %s", c->journal.path, strerror(-ret));
	return ret;
}

enum completion { NOT_DONE, DONE_ALL, DONE_BUT_DAMAGED };

/* Is every file of the dump's MANIFEST applied? */
static enum completion completion(struct pop_ctx *c, uint64_t *listed, uint64_t *applied)
{
	struct manifest_info mi;
	struct manifest_entry *e = NULL;
	char err[512];
	long n = pop_manifest_load(c, &mi, &e, err, sizeof(err));
	*listed = *applied = 0;
	if (n < 0) {
		if (n != -ENOENT && !pop_failed(c))
			log_warn("%s: %s", c->o.from_dir, err);
		return NOT_DONE;
	}
	if (strcmp(mi.dump_id_hex, c->dump_id_hex) != 0) {
		pop_fail(c, -EBADMSG, "%s/DONE is for dump %s, the chunk files for dump %s",
			 c->o.from_dir, mi.dump_id_hex, c->dump_id_hex);
		free(e);
		return NOT_DONE;
	}
	if (!c->manifest_checked && pop_check_manifest(c, &mi) != 0) {
		free(e);
		return NOT_DONE;
	}
	bool damaged = false, missing = false;
	for (long i = 0; i < n; i++) {
		if (!pop_in_shard(&c->o, e[i].job, e[i].part))
			continue; /* another populator's (--shard) */
		(*listed)++;
		const struct journal_entry *j = journal_find(&c->journal, e[i].job, e[i].part);
		if (j != NULL && j->crc == e[i].crc && j->state == JOURNAL_DONE)
			(*applied)++;
		else if (j != NULL && j->crc == e[i].crc)
			damaged = true;
		else
			missing = true;
	}
	free(e);
	return missing ? NOT_DONE : damaged ? DONE_BUT_DAMAGED : DONE_ALL;
}

static int run_passes(struct pop_ctx *c, uint64_t *listed, uint64_t *applied)
{
	struct progress pg;
	progress_init(&pg, c->o.co.quiet);
	int64_t idle_since = mono_ns();
	uint64_t last_progress = 0;
	enum completion done = NOT_DONE;
	unsigned restarts = 0;
	for (;;) {
		run_pass(c, &pg);
		if (c->run.fault.err)
			break;
		if (c->dest_restarted) { /* everything applied before is gone: pass again */
			if (note_instance(c) < 0 || ++restarts > POP_DEST_RESTARTS_MAX) {
				pop_fail(c, -ECONNRESET,
					 "the destination restarted %u times during the run",
					 restarts);
				break;
			}
			continue;
		}
		done = completion(c, listed, applied);
		if (done == DONE_ALL || !c->o.follow)
			break;
		if (c->progress != last_progress) {
			last_progress = c->progress;
			idle_since = mono_ns();
		}
		if (mono_ns() - idle_since > (int64_t)c->o.idle_timeout_s * NS_PER_SEC) {
			progress_done(&pg);
			log_error("no new chunk file for %d s and the dump is not complete: giving "
				  "up (--idle-timeout)",
				  c->o.idle_timeout_s);
			return done == DONE_BUT_DAMAGED ? MCW_EXIT_DATA : MCW_EXIT_TEMPFAIL;
		}
		if (metrics_due(&c->metrics))
			pop_metrics(c, "running");
		struct timespec ts = { 0, POP_INTERVAL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	progress_done(&pg);
	if (c->run.fault.err)
		return mcw_exit_code(c->run.fault.err);
	c->complete = done == DONE_ALL;
	if (done == DONE_ALL)
		return MCW_EXIT_OK;
	return done == DONE_BUT_DAMAGED ? MCW_EXIT_DATA : MCW_EXIT_INCOMPLETE;
}

/* ---- summary ------------------------------------------------------------------------- */

static void summary(struct pop_ctx *c, int code, double secs, uint64_t listed, uint64_t applied)
{
	struct pop_stats *s = &c->st;
	uint64_t sent = atomic_load(&s->records_sent), bytes = atomic_load(&s->value_bytes);
	const char *verdict = code == 0			    ? "complete"
			      : code == MCW_EXIT_INCOMPLETE ? "incomplete"
			      : code == MCW_EXIT_TOO_SMALL  ? "FAILED (destination too small)"
							    : "FAILED";
	if (!c->o.co.quiet || code != 0) {
		fprintf(stderr,
			"mcwarm: populate %s: manifest files applied %llu of %llu; %llu items sent "
			"(%llu already present), %.1f MiB, %.2f s (%.0f items/s), %.2f CPU s, peak "
			"RSS %.1f MiB\n",
			verdict, (unsigned long long)applied, (unsigned long long)listed,
			(unsigned long long)sent,
			(unsigned long long)atomic_load(&s->already_present),
			(double)bytes / (double)MIB, secs, secs > 0 ? (double)sent / secs : 0,
			cpu_seconds(), (double)peak_rss_bytes() / (double)MIB);
		fprintf(
		    stderr,
		    "mcwarm: skipped: expired in transit %llu, too large for the destination %llu, "
		    "lost in damaged blocks %llu; damaged blocks %llu, missing blocks %llu, "
		    "unusable files %llu, not whole yet %llu; server errors %llu (out of memory "
		    "%llu); reconnects %llu; destination evictions %llu (never read %llu)\n",
		    (unsigned long long)atomic_load(&s->expired),
		    (unsigned long long)atomic_load(&s->too_large),
		    (unsigned long long)atomic_load(&s->records_lost),
		    (unsigned long long)atomic_load(&s->blocks_bad),
		    (unsigned long long)atomic_load(&s->blocks_missing),
		    (unsigned long long)atomic_load(&s->files_skipped),
		    (unsigned long long)atomic_load(&s->files_not_whole),
		    (unsigned long long)atomic_load(&s->server_errors),
		    (unsigned long long)atomic_load(&s->out_of_memory),
		    (unsigned long long)atomic_load(&s->reconnects),
		    (unsigned long long)c->watch.evictions,
		    (unsigned long long)c->watch.evicted_unfetched);
	}
	if (!c->o.co.json)
		return;
	struct json j;
	json_begin(&j, stdout);
	json_str(&j, "command", "populate");
	json_bool(&j, "ok", code == 0);
	json_i64(&j, "exit_code", code);
	if (c->run.fault.err)
		json_str(&j, "error", c->run.fault.msg);
	json_str(&j, "dest", c->o.dest.text);
	json_str(&j, "from", c->o.from_dir);
	json_str(&j, "dump_id", c->dump_id_hex);
	json_str(&j, "mode", c->o.mode == MCP_MS_ADD ? "add" : "set");
	json_u64(&j, "manifest_files", listed);
	json_u64(&j, "manifest_files_applied", applied);
	json_bool(&j, "complete", c->complete);
	json_str(&j, "source_kind", c->o.from_s3 ? "s3" : "dir");
	json_u64(&j, "shard_index", c->o.shard_i);
	json_u64(&j, "shard_count", c->o.shard_n);
	json_u64(&j, "chunks_listed", c->chunks_listed);
	json_u64(&j, "backlog_chunks", c->backlog);
	json_u64(&j, "files_done", atomic_load(&s->files_done));
	json_u64(&j, "files_partial", atomic_load(&s->files_partial));
	json_u64(&j, "files_skipped", atomic_load(&s->files_skipped));
	json_u64(&j, "files_not_whole", atomic_load(&s->files_not_whole));
	json_u64(&j, "blocks_bad", atomic_load(&s->blocks_bad));
	json_u64(&j, "blocks_missing", atomic_load(&s->blocks_missing));
	json_u64(&j, "records_lost", atomic_load(&s->records_lost));
	json_u64(&j, "items_sent", sent);
	json_u64(&j, "already_present", atomic_load(&s->already_present));
	json_u64(&j, "expired", atomic_load(&s->expired));
	json_u64(&j, "too_large", atomic_load(&s->too_large));
	json_u64(&j, "server_errors", atomic_load(&s->server_errors));
	json_u64(&j, "out_of_memory", atomic_load(&s->out_of_memory));
	json_u64(&j, "evictions", c->watch.evictions);
	json_u64(&j, "evicted_unfetched", c->watch.evicted_unfetched);
	json_u64(&j, "reconnects", atomic_load(&s->reconnects));
	json_u64(&j, "value_bytes", bytes);
	json_f64(&j, "wall_seconds", secs);
	json_f64(&j, "cpu_seconds", cpu_seconds());
	json_u64(&j, "peak_rss_bytes", peak_rss_bytes());
	json_end(&j);
}

/* ---- the command -------------------------------------------------------------------- */

static int start_workers(struct pop_ctx *c, int first_fd)
{
	char err[512];
	for (unsigned i = 0; i < c->o.co.threads; i++) {
		struct pop_worker *w = &c->workers[i];
		w->id = i;
		w->ctx = c;
		w->fd = i == 0 ? first_fd
			       : net_connect(&c->o.dest, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
		if (w->fd < 0) {
			log_error("%s", err);
			return MCW_EXIT_UNAVAILABLE;
		}
	}
	c->nworkers = c->o.co.threads;
	rate_limits_init(&c->limits, c->o.co.max_ops, c->o.co.max_bytes, c->o.co.threads,
			 c->o.co.limits_file);
	rate_limits_poll_log(&c->limits);
	c->run.threads_running = c->o.co.threads;
	for (unsigned i = 0; i < c->o.co.threads; i++)
		pthread_create(&c->workers[i].thread, NULL, pop_worker_main, &c->workers[i]);
	return 0;
}

static void stop_workers(struct pop_ctx *c)
{
	pthread_mutex_lock(&c->run.mu);
	c->stop = true;
	pthread_cond_broadcast(&c->run.cv);
	pthread_mutex_unlock(&c->run.mu);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i].thread, NULL);
}

/* Waits (--follow) for the first chunk file to tell which dump this is. */
static int await_dump(struct pop_ctx *c)
{
	int64_t start = mono_ns();
	while (!find_dump_id(c)) {
		if (pop_failed(c)) {
			log_error("%s", c->run.fault.msg);
			return mcw_exit_code(c->run.fault.err);
		}
		if (!c->o.follow) {
			log_info("%s holds no chunk file yet: nothing to apply", c->o.from_dir);
			return MCW_EXIT_INCOMPLETE;
		}
		if (mono_ns() - start > (int64_t)c->o.idle_timeout_s * NS_PER_SEC) {
			log_error("no chunk file appeared in %s for %d s (--idle-timeout)",
				  c->o.from_dir, c->o.idle_timeout_s);
			return MCW_EXIT_TEMPFAIL;
		}
		struct timespec ts = { 0, POP_INTERVAL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	char err[512];
	int ret = journal_bind(&c->journal, c->dump_id_hex, c->o.dest.text, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", ret == -EXDEV ? err : strerror(-ret));
		return ret == -EXDEV ? MCW_EXIT_USAGE : MCW_EXIT_IO;
	}
	return note_instance(c) < 0 ? MCW_EXIT_IO : 0;
}

static int populate_run(struct pop_ctx *c, uint64_t *listed, uint64_t *applied)
{
	int fd = -1;
	int code = probe_dest(c, &fd);
	if (code != 0)
		return code;
	if (!c->o.from_s3)
		c->from_fd = open(c->o.from_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!c->o.from_s3 && c->from_fd < 0) {
		log_error("cannot open the dump directory %s: %s", c->o.from_dir, strerror(errno));
		close(fd);
		return MCW_EXIT_IO;
	}
	code = budget_setup(c);
	if (code == 0)
		code = await_dump(c);
	if (code == 0 && pop_preflight(c) != 0) {
		log_error("%s", c->run.fault.msg);
		code = mcw_exit_code(c->run.fault.err);
	}
	if (code != 0) {
		close(fd);
		return code;
	}
	cap_watch_start(&c->watch, &c->o.dest, &c->dst);
	if (!c->o.co.quiet)
		log_info("populating %s (memcached %s, item_size_max %llu) from %s, dump %s, %s "
			 "mode",
			 c->o.dest.text, c->dst.version, (unsigned long long)c->dst.item_size_max,
			 c->o.from_dir, c->dump_id_hex, c->o.mode == MCP_MS_ADD ? "add" : "set");
	c->start_mono_ns = mono_ns();
	code = start_workers(c, fd);
	if (code == 0)
		code = run_passes(c, listed, applied);
	stop_workers(c);
	cap_watch_end(&c->watch);
	if (c->run.fault.err) {
		log_error("%s", c->run.fault.msg);
		code = mcw_exit_code(c->run.fault.err);
	}
	char why[512];
	if ((code == 0 || code == MCW_EXIT_INCOMPLETE) &&
	    cap_watch_evicted(&c->watch, why, sizeof(why))) {
		pop_fail(c, -MCW_ETOOSMALL, "%s", why);
		log_error("%s", why);
		code = MCW_EXIT_TOO_SMALL;
	}
	if (code == 0 && atomic_load(&c->st.server_errors) > 0) {
		log_error("%llu item(s) could not be stored by the destination (see the warnings "
			  "above): the warm-up is incomplete",
			  (unsigned long long)atomic_load(&c->st.server_errors));
		code = MCW_EXIT_INCOMPLETE;
	}
	return code;
}

int mcw_cmd_populate(int argc, char **argv)
{
	static struct pop_ctx ctx;
	struct pop_ctx *c = &ctx;
	memset(c, 0, sizeof(*c));
	int code = parse_opts(argc, argv, &c->o);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	run_init(&c->run);
	c->from_fd = -1;
	c->journal.fd = -1;
	uint64_t listed = 0, applied = 0;
	int64_t t0 = mono_ns();
	metrics_init(&c->metrics, c->o.co.metrics_file, "populate");
	code = populate_run(c, &listed, &applied);
	summary(c, code, (double)(mono_ns() - t0) / 1e9, listed, applied);
	pop_metrics(c, metrics_phase_of(code));
	if (c->dump_id_known)
		write_backlog(c, true);
	if (c->o.from_s3)
		objs_client_fini(&c->s3);
	journal_close(&c->journal);
	if (c->from_fd >= 0)
		close(c->from_fd);
	budget_unmap(&c->budget);
	return code;
}
