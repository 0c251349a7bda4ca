/*
 * dump.c: `mcwarm dump`, the command. Parses options, prepares the output directory (new,
 * complete already, or an unfinished dump to continue: resume.c), runs the engine with the
 * chunk sink (dump_sink.c), and on success publishes MANIFEST and DONE.
 *
 * Owns: the dump_cmd and the output directory. Does not touch data: the threads do.
 * Order of a run:
 *   options -> engine_run (probe source -> prepare_out_dir -> budget -> start_checkpoint
 *   -> threads -> progress, syncfs) -> manifest + DONE (only if nothing failed)
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
#include "dump.h"
#include "json.h"
#include "manifest.h"
#include "mcw_limits.h"

#define SPOOL_DIR ".mcwarm"

static const char dump_usage[] =
    "usage: mcwarm dump --source HOST:PORT --out DIR|s3://BUCKET/PREFIX [--state DIR] "
    "[options]\n"
    "\n"
    "Reads every item (key, value, client flags, remaining TTL) of a live memcached into\n"
    "checksummed chunk files in DIR, inside a fixed memory budget. Keys come from\n"
    "'lru_crawler metadump' on one dedicated connection, values from pipelined meta 'mg'\n"
    "(no LRU bump on the source). The dump ends with DIR/MANIFEST and DIR/DONE. With\n"
    "s3://, the same files are objects under PREFIX/, uploaded as they are written; the\n"
    "checkpoint stays in --state DIR.\n"
    "\n"
    "  -s, --source HOST:PORT   the memcached to dump (required)\n"
    "  -o, --out DIR            output directory: new or empty (required)\n"
    "  -o, --out s3://BUCKET/PREFIX  upload each chunk file while it is written, as a\n"
    "                           multipart upload with a CRC-32C per part (no local copy),\n"
    "                           then PREFIX/MANIFEST and PREFIX/DONE; the prefix must be\n"
    "                           new or empty. Credentials, region and endpoint the AWS way\n"
    "                           (AWS_ACCESS_KEY_ID..., ~/.aws, instance role,\n"
    "                           AWS_ENDPOINT_URL_S3). Needs 2 x 5M of --memory per thread\n"
    "                           for the parts on their way up (--memory defaults to 128M\n"
    "                           here); --max-bytes paces the uploads too\n"
    "      --state DIR          with s3://: local directory for the checkpoint and key\n"
    "                           chunks (new, or the one of the dump to continue)\n"
    "  -m, --memory SIZE        memory budget for all buffers (default 64M; 128M with\n"
    "                           s3://)\n"
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
	OPT_SYNCFS,
	OPT_STATE
};

/* Options of dump only; the common ones go to cli_common_option. 0, or an exit code. */
static int dump_option(int ch, const char *arg, struct dump_cmd *d)
{
	struct engine_opts *eo = &d->e.o;
	struct dump_opts *o = &d->o;
	uint64_t v;
	switch (ch) {
	case 's':
		if (hostport_parse(arg, &eo->source) < 0)
			return cli_usage_error("dump", "--source: '%s' is not HOST:PORT", arg);
		return 0;
	case 'o':
		if (strncmp(arg, "s3://", 5) == 0)
			d->s3.out_text = arg; /* checked once every option is known */
		else
			eo->dir = arg;
		return 0;
	case OPT_STATE:
		d->state_dir = arg;
		return 0;
	case OPT_CRAWL:
		return crawl_option("dump", arg, &eo->crawl);
	case OPT_NO_MGDUMP:
		eo->try_mgdump = false;
		return 0;
	case OPT_MIN_TTL:
		if (!cli_uint("dump", "min-ttl", arg, 0, 10ull * 365 * 86400, &v))
			return MCW_EXIT_USAGE;
		eo->min_ttl_s = (int64_t)v;
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
		return engine_shared_option("dump", ch, arg, eo);
	}
}

static int parse_opts(int argc, char **argv, struct dump_cmd *d)
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
		{ "state", required_argument, NULL, OPT_STATE },
		KEYFILTER_LONGOPTS,
		CLI_COMMON_LONGOPTS,
		{ 0 },
	};
	struct engine_opts *o = &d->e.o;
	*o = (struct engine_opts){ .crawl = KEYS_HASH, .try_mgdump = true };
	d->o = (struct dump_opts){
		.write_mode = CHUNK_WRITE_STAGE,
		.direct = true,
		.chunk_bytes = MCW_CHUNK_BYTES_DEFAULT,
	};
	cli_common_defaults(&o->co);
	o->co.memory_bytes = 0; /* not given: the default depends on --out */
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "s:o:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		int ret = dump_option(ch, optarg, d);
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
	if (o->co.memory_bytes == 0)
		o->co.memory_bytes =
		    d->s3.out_text ? MCW_S3_MEMORY_DEFAULT_BYTES : MCW_MEMORY_DEFAULT_BYTES;
	if (d->s3.out_text != NULL) {
		o->dir = d->state_dir;
		int code = dump_s3_option(d, d->s3.out_text);
		if (code != 0)
			return code;
	} else if (d->state_dir != NULL) {
		return cli_usage_error("dump", "--state is for --out s3://; a dump directory "
					       "keeps its checkpoint inside");
	}
	if (o->dir == NULL)
		return cli_usage_error("dump", "--out DIR is required");
	return cli_secure_finish("dump", &o->co, &o->source, NULL);
}

/* ---- output directory --------------------------------------------------------------- */

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

/* A dump directory whose dump is complete: DONE in it, or in each group's directory. */
static bool dump_is_complete(struct dump_cmd *d, int dir_fd)
{
	char path[PATH_MAX];
	for (unsigned g = 0; g < d->e.kf.ngroups; g++) {
		if (d->e.kf.ngroups == 1)
			snprintf(path, sizeof(path), "%s", DONE_NAME);
		else
			snprintf(path, sizeof(path), "%s/%s", d->e.kf.group_name[g], DONE_NAME);
		if (faccessat(dir_fd, path, F_OK, 0) < 0)
			return false;
	}
	return faccessat(dir_fd, SPOOL_DIR "/" CHECKPOINT_NAME, F_OK, 0) < 0;
}

/* --out s3://: the state directory holds a checkpoint to continue, or nothing; the
 * prefix is checked against it (dump_s3_prepare). */
static int prepare_state_dir(struct dump_cmd *d, char *first, size_t cap)
{
	struct engine *e = &d->e;
	bool resume =
	    e->dir_fd >= 0 && faccessat(e->dir_fd, SPOOL_DIR "/" CHECKPOINT_NAME, F_OK, 0) == 0;
	if (!resume && !dir_is_empty(e->o.dir, first, cap)) {
		log_error("the state directory %s is not empty (it holds '%s') and holds no "
			  "checkpoint: give a new or empty directory, or the one of the dump to "
			  "continue",
			  e->o.dir, first);
		return -EINVAL;
	}
	d->group_fd[0] = e->dir_fd;
	snprintf(d->group_path[0], sizeof(d->group_path[0]), "%s", d->s3.out_text);
	int ret = dump_s3_prepare(d, resume);
	if (ret != 0 || d->already_complete)
		return ret;
	ret = engine_make_spool(e, resume);
	if (ret != 0)
		return ret;
	return resume ? resume_prepare(d) : dump_s3_state_mark(d);
}

static int prepare_out_dir(struct engine *e)
{
	struct dump_cmd *d = e->sink_ctx;
	char first[256];
	bool resume = false;
	const char *dir = e->o.dir;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int ret = -errno; /* before the log line, which may change errno */
		log_error("cannot create the output directory %s: %s", dir, strerror(-ret));
		return ret;
	}
	e->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->s3.on)
		return prepare_state_dir(d, first, sizeof(first));
	if (!dir_is_empty(dir, first, sizeof(first))) {
		if (e->dir_fd >= 0 && dump_is_complete(d, e->dir_fd)) {
			log_info("%s already holds a complete dump (DONE): nothing to do", dir);
			d->already_complete = e->nothing_to_do = true;
			return 0;
		}
		resume = e->dir_fd >= 0 &&
			 faccessat(e->dir_fd, SPOOL_DIR "/" CHECKPOINT_NAME, F_OK, 0) == 0;
		if (!resume) {
			log_error("the output directory %s is not empty (it holds '%s'): dump into "
				  "a new or empty directory so no earlier dump is mixed in",
				  dir, first);
			return -EINVAL;
		}
	}
	for (unsigned g = 0; g < e->kf.ngroups; g++) {
		d->group_fd[g] = e->dir_fd;
		snprintf(d->group_path[g], sizeof(d->group_path[g]), "%s", dir);
		if (e->kf.ngroups == 1 || e->dir_fd < 0)
			continue;
		/* resizing: one complete dump per new owner */
		const char *name = e->kf.group_name[g];
		snprintf(d->group_path[g], sizeof(d->group_path[g]), "%.3900s/%s", dir, name);
		if ((mkdirat(e->dir_fd, name, 0755) < 0 && !(resume && errno == EEXIST)) ||
		    (d->group_fd[g] = openat(e->dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
			0) {
			int ret = -errno;
			log_error("cannot create %s: %s", d->group_path[g], strerror(-ret));
			return ret;
		}
	}
	int ret = engine_make_spool(e, resume);
	if (ret != 0)
		return ret;
	return resume ? resume_prepare(d) : 0;
}

/* ---- the end of a dump -------------------------------------------------------------- */

/* dump: a new checkpoint, or the resumed one's keys in the dedupe table. */
static int start_checkpoint(struct engine *e)
{
	struct dump_cmd *d = e->sink_ctx;
	if (e->resuming) {
		int ret = resume_load_dedupe(d);
		if (ret != 0)
			return ret;
	} else {
		int ret = checkpoint_create(&e->ckpt, e->spool_fd, e->dump_id_hex, e->o.source.text,
					    e->src.time_s - (int64_t)e->src.uptime_s, e->src.pid,
					    dump_options_crc(&e->o));
		if (ret < 0) {
			log_error("cannot write the checkpoint in %s: %s", e->spool_path,
				  strerror(-ret));
			return ret;
		}
	}
	e->ckpt_on = true;
	return 0;
}

long dump_collect(struct dump_cmd *d, unsigned g, struct manifest_entry **out, char *err,
		  size_t cap)
{
	if (d->s3.on)
		return dump_s3_collect(d, out, err, cap);
	return manifest_collect(d->group_fd[g], out, err, cap);
}

/* MANIFEST and DONE in each group's directory (the output directory without groups), or
 * the prefix. 0 or a cause (reported). */
static int publish(struct dump_cmd *d)
{
	char err[512];
	for (unsigned g = 0; g < d->e.kf.ngroups; g++) {
		struct manifest_entry *entries = NULL;
		struct manifest_info mi;
		long n = dump_collect(d, g, &entries, err, sizeof(err));
		if (n < 0) {
			log_error("%s", err);
			return d->s3.on && n != -EBADMSG ? dump_s3_store_cause(d) : -EIO;
		}
		memset(&mi, 0, sizeof(mi));
		memcpy(mi.dump_id_hex, d->e.dump_id_hex, sizeof(mi.dump_id_hex));
		snprintf(mi.source, sizeof(mi.source), "%s", d->e.o.source.text);
		snprintf(mi.source_version, sizeof(mi.source_version), "%s", d->e.src.version);
		mi.started_unix_ns = d->e.id.dump_started_unix_ns;
		mi.finished_unix_ns = wall_ns();
		mi.source_item_size_max = d->e.src.item_size_max;
		if (d->s3.on) {
			int ret = dump_s3_publish(d, &mi, entries, (size_t)n);
			free(entries);
			if (ret != 0)
				return ret;
		} else {
			int ret = manifest_publish(d->group_fd[g], &mi, entries, (size_t)n, err,
						   sizeof(err));
			free(entries);
			if (ret < 0) {
				log_error("%s", err);
				return -EIO;
			}
		}
		if (mi.records != atomic_load(&d->st.group_items[g])) {
			log_error(
			    "%s holds %llu records but %llu were written there: the directory "
			    "changed during the dump",
			    d->group_path[g], (unsigned long long)mi.records,
			    (unsigned long long)atomic_load(&d->st.group_items[g]));
			return -MCW_EBUG;
		}
	}
	return 0;
}

/* --out s3://: the uploaders' counts, summed. */
static void summary_upload(struct dump_cmd *d, struct json *j)
{
	uint64_t parts = 0, bytes = 0, retries = 0, wait_ns = 0;
	for (unsigned i = 0; i < MCW_THREADS_MAX; i++) {
		struct chunk_upload_stats *st = &d->workers[i].up.st;
		parts += atomic_load(&st->parts);
		bytes += atomic_load(&st->bytes);
		retries += atomic_load(&st->retries);
		wait_ns += atomic_load(&st->rate_wait_ns);
	}
	json_str(j, "state", d->e.o.dir);
	json_obj(j, "upload");
	json_u64(j, "parts", parts);
	json_u64(j, "bytes", bytes);
	json_u64(j, "retries", retries);
	json_f64(j, "rate_wait_seconds", (double)wait_ns / 1e9);
	json_obj_end(j);
}

static void summary(struct dump_cmd *d, int code, double secs)
{
	struct engine *c = &d->e;
	struct engine_stats *s = &c->st;
	struct dump_stats *ds = &d->st;
	double cpu = cpu_seconds();
	uint64_t items = atomic_load(&s->items), bytes = atomic_load(&s->value_bytes);
	if ((!c->o.co.quiet || code != 0) && !d->already_complete) {
		fprintf(stderr,
			"mcwarm: dump %s: %llu items, %.1f MiB of values in %llu files, %.2f s "
			"(%.0f items/s, %.1f MiB/s), %.2f CPU s, peak RSS %.1f MiB\n",
			code == 0 ? "complete" : "FAILED", (unsigned long long)items,
			(double)bytes / (double)MIB, (unsigned long long)atomic_load(&ds->files),
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
			(unsigned long long)atomic_load(&ds->ttl_filtered),
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
		json_str(&j, "error", c->run.fault.msg);
	json_str(&j, "source", c->o.source.text);
	json_str(&j, "source_version", c->src.version);
	json_str(&j, "out", d->s3.on ? d->s3.out_text : c->o.dir);
	if (d->s3.on)
		summary_upload(d, &j);
	json_str(&j, "dump_id", c->dump_id_hex);
	json_bool(&j, "already_complete", d->already_complete);
	json_bool(&j, "resumed", c->resuming);
	json_u64(&j, "items_resumed", atomic_load(&ds->items_resumed));
	json_str(&j, "key_dump", c->key_dump_cmd ? c->key_dump_cmd : "");
	json_str(&j, "writer", d->o.write_mode == CHUNK_WRITE_STAGE ? "stage" : "writev");
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
	json_u64(&j, "ttl_filtered", atomic_load(&ds->ttl_filtered));
	json_u64(&j, "server_errors", atomic_load(&s->server_errors));
	json_u64(&j, "busy_retries", atomic_load(&s->busy_retries));
	json_u64(&j, "value_bytes", bytes);
	json_u64(&j, "files", atomic_load(&ds->files));
	if (c->kf.ngroups > 1) { /* resize dumps: one directory per new owner */
		json_obj(&j, "groups");
		for (unsigned g = 0; g < c->kf.ngroups; g++) {
			json_obj(&j, c->kf.group_node[g]);
			json_str(&j, "dir", d->group_path[g]);
			json_u64(&j, "items", atomic_load(&ds->group_items[g]));
			json_obj_end(&j);
		}
		json_obj_end(&j);
	}
	json_u64(&j, "file_bytes", atomic_load(&ds->file_bytes));
	json_f64(&j, "wall_seconds", secs);
	json_f64(&j, "key_dump_seconds",
		 c->keys_done_mono_ns > 0 ? (double)(c->keys_done_mono_ns - c->start_mono_ns) / 1e9
					  : 0);
	json_f64(&j, "cpu_seconds", cpu);
	json_u64(&j, "peak_rss_bytes", peak_rss_bytes());
	json_end(&j);
}

/* ---- the sink's run-side operations ------------------------------------------------- */

static void dump_need(const struct engine *e, uint64_t item_size_max, struct engine_sink_need *need)
{
	const struct dump_cmd *d = e->sink_ctx;
	dump_sink_need(d->o.write_mode, item_size_max, d->s3.on, need);
}

static int dump_prepare(struct engine *e)
{
	struct dump_cmd *d = e->sink_ctx;
	e->target = d->s3.on ? d->s3.out_text : e->o.dir;
	return prepare_out_dir(e);
}

/* Every --syncfs-interval: finished chunk files reach the disk for a reader on another
 * host. */
static void dump_poll(struct engine *e)
{
	struct dump_cmd *d = e->sink_ctx;
	int64_t now = mono_ns();
	if (d->o.syncfs_interval_s == 0 || e->dir_fd < 0)
		return;
	if (d->next_sync_ns == 0)
		d->next_sync_ns = now + (int64_t)d->o.syncfs_interval_s * 1000000000LL;
	if (now < d->next_sync_ns)
		return;
	if (syncfs(e->dir_fd) < 0)
		log_warn("syncfs %s: %s", e->o.dir, strerror(errno));
	d->next_sync_ns = now + (int64_t)d->o.syncfs_interval_s * 1000000000LL;
}

static void dump_fini(struct engine *e)
{
	struct dump_cmd *d = e->sink_ctx;
	for (unsigned g = 0; g < KEYFILTER_GROUPS_MAX; g++)
		if (d->group_fd[g] >= 0 && d->group_fd[g] != e->dir_fd)
			close(d->group_fd[g]);
}

static const struct engine_sink_ops dump_sink_ops = {
	.name = "dump",
	.thread_name = "mcw-worker",
	.verb = "dumping",
	.onto = "into",
	.src_quiet = true,
	.need = dump_need,
	.prepare = dump_prepare,
	.start = start_checkpoint,
	.worker_open = dump_sink_worker_open,
	.worker_init = dump_sink_worker_init,
	.recv_reusable = dump_sink_recv_reusable,
	.job_begin = dump_sink_job_begin,
	.on_value = dump_sink_on_value,
	.on_cqe = dump_sink_on_cqe,
	.job_end = dump_sink_job_end,
	.idle = dump_sink_idle,
	.worker_fini = dump_sink_worker_fini,
	.poll = dump_poll,
	.fini = dump_fini,
};

void dump_cmd_init(struct dump_cmd *d)
{
	memset(d, 0, sizeof(*d));
	engine_init(&d->e, &dump_sink_ops, d);
	for (unsigned g = 0; g < KEYFILTER_GROUPS_MAX; g++)
		d->group_fd[g] = -1;
}

void dump_cmd_release(struct dump_cmd *d)
{
	engine_release(&d->e);
	dump_s3_release(d);
}

static int dump_run(struct dump_cmd *d)
{
	struct engine *e = &d->e;
	int code = mcw_exit_code(engine_run(e));
	if (code != 0 && e->run.fault.err)
		log_error(
		    "finished chunk files are kept in %s; the dump is not complete (no DONE)%s",
		    e->target ? e->target : e->o.dir,
		    d->s3.on ? ": run the same command again to continue it" : "");
	if (code != 0 || d->already_complete)
		return code;
	code = mcw_exit_code(publish(d));
	if (code == 0 && !d->o.keep_spool)
		engine_remove_spool(e);
	if (code == 0 && d->o.syncfs_interval_s > 0 && syncfs(e->dir_fd) < 0)
		log_warn("syncfs %s: %s", e->o.dir, strerror(errno));
	return code;
}

int mcw_cmd_dump(int argc, char **argv)
{
	static struct dump_cmd cmd; /* large; one per process */
	struct dump_cmd *d = &cmd;
	dump_cmd_init(d);
	int code = parse_opts(argc, argv, d);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	int64_t t0 = mono_ns();
	code = dump_run(d);
	double secs = (double)(mono_ns() - t0) / 1e9;
	if (code == 0 || d->e.start_mono_ns != 0)
		summary(d, code, secs);
	engine_metrics(&d->e, metrics_phase_of(code));
	dump_cmd_release(d);
	return code;
}
