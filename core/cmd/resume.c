/*
 * resume.c: `mcwarm dump` into a directory that holds an unfinished dump continues it.
 *
 * What is kept is what the checkpoint (checkpoint.h) names: the chunk files of finished
 * jobs (key chunks whose files all have their final names), and the key listing when it
 * had ended. Everything else of the old run is removed first: temporary files, the
 * files of unfinished jobs (they are fetched again), and, when the listing had not
 * ended, the key chunks of unfinished jobs. Then:
 *  - listing ended: the workers take the unfinished jobs from the old key chunks; no
 *    new listing;
 *  - listing not ended: a new listing starts and numbers its key chunks after the old
 *    ones; the dedupe table is loaded first with every key of the finished jobs and the
 *    new listing identifies items by key (not CAS), so a key already dumped is not dumped
 *    again: every key once, with the value it had when it was first fetched.
 * A checkpoint that cannot be trusted (damaged, a finished file that fails its footer)
 * is reported and the dump starts over in the same directory. A checkpoint of another
 * source, another source process (restarted since: its items are gone) or other options
 * is refused: the operator decides.
 * With --out s3:// the checkpoint stays in --state DIR and the pruning happens in the
 * prefix (dump_s3_prune), after the uploads the old run left unfinished are ended.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "crc.h"
#include "dump.h"
#include "manifest.h"

/* Chains text into a crc: the crc of everything put so far, of any length. */
static uint32_t crc_put(uint32_t crc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static uint32_t crc_put(uint32_t crc, const char *fmt, ...)
{
	char piece[MCP_KEY_MAX + 64]; /* a tag and a number, or a tag and a key prefix */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(piece, sizeof(piece), fmt, ap);
	va_end(ap);
	ASSERT(n >= 0 && (size_t)n < sizeof(piece));
	return mcw_crc32c(crc, piece, (size_t)n);
}

static uint32_t crc_str(uint32_t crc, const char *s)
{
	return mcw_crc32c(crc, s, strlen(s));
}

/* The crc of the options' text ("source=... crawl=... include=..."), built piece by piece
 * so that no length of filters or node lists is cut off. */
uint32_t dump_options_crc(const struct engine_opts *o)
{
	const struct keyfilter_opts *f = &o->filter;
	uint32_t crc = crc_str(crc_str(0, "source="), o->source.text);
	crc = crc_put(crc, " crawl=%d min_ttl=%lld", (int)o->crawl, (long long)o->min_ttl_s);
	for (unsigned i = 0; i < f->ninclude; i++)
		crc = crc_str(crc_str(crc, " include="), f->include[i]);
	for (unsigned i = 0; i < f->nexclude; i++)
		crc = crc_str(crc_str(crc, " exclude="), f->exclude[i]);
	if (f->ring_set)
		crc = crc_put(crc, " ring=%d/%u/%d", (int)f->ring.kind, f->ring.points,
			      (int)f->ring.partial_delim);
	crc = crc_str(crc_str(crc, " nodes="), f->nodes ? f->nodes : "");
	crc = crc_str(crc_str(crc, " from="), f->ring_from ? f->ring_from : "");
	crc = crc_str(crc_str(crc, " to="), f->ring_to ? f->ring_to : "");
	for (unsigned i = 0; i < f->nkeep; i++)
		crc = crc_str(crc_str(crc, " keep="), f->keep[i]);
	return crc;
}

static bool is_ours(const char *name, uint32_t *job)
{
	uint32_t part, crc;
	size_t len = strlen(name);
	if (len > 4 && strcmp(name + len - 4, ".tmp") == 0 && strncmp(name, "chunk-", 6) == 0) {
		*job = UINT32_MAX; /* never kept */
		return true;
	}
	return chunk_name_parse(name, job, &part, &crc);
}

/* A listing of dir_fd from its start (the fd stays the caller's), or NULL (logged). */
static DIR *list_dir(int dir_fd, const char *path)
{
	int fd = dup(dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		log_error("cannot list %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	rewinddir(d);
	return d;
}

/* Removes the chunk files in dir_fd that resuming does not keep (all when cp is NULL).
 * -errno on failure. */
static int prune_dir(int dir_fd, const struct checkpoint *cp, const char *path)
{
	DIR *d = list_dir(dir_fd, path);
	if (d == NULL)
		return -EIO;
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d)) != NULL) {
		uint32_t job;
		if (!is_ours(de->d_name, &job))
			continue;
		if (cp != NULL && checkpoint_job_is_done(cp, job))
			continue;
		if (unlinkat(dir_fd, de->d_name, 0) < 0) {
			ret = -errno; /* before the log line, which may change errno */
			log_error("cannot remove %s/%s: %s", path, de->d_name, strerror(-ret));
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Removes the key chunks resuming does not keep (all when cp is NULL) and, when cp is
 * NULL, the checkpoint. */
static int prune_spool(struct engine *e, const struct checkpoint *cp)
{
	DIR *d = list_dir(e->spool_fd, e->spool_path);
	if (d == NULL)
		return -EIO;
	struct dirent *de;
	int ret = 0;
	while ((de = readdir(d)) != NULL) {
		unsigned seq;
		char rest;
		bool chunk = sscanf(de->d_name, "keys-%u.mc%c", &seq, &rest) == 2 && rest == 'k';
		bool keep = chunk && cp != NULL &&
			    (cp->keys_done ? seq < cp->chunks : checkpoint_job_is_done(cp, seq));
		bool ckpt = strcmp(de->d_name, CHECKPOINT_NAME) == 0;
		if ((!chunk && !ckpt) || keep || (ckpt && cp != NULL))
			continue;
		if (unlinkat(e->spool_fd, de->d_name, 0) < 0) {
			ret = -errno; /* before the log line, which may change errno */
			log_error("cannot remove %s/%s: %s", e->spool_path, de->d_name,
				  strerror(-ret));
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Adds the records of the kept files to the counts (publish checks them). 0, or -errno
 * when a kept file cannot be read or fails its footer (err says which). */
static int count_kept(struct dump_cmd *d, char *err, size_t cap)
{
	for (unsigned g = 0; g < d->e.kf.ngroups; g++) {
		struct manifest_entry *e = NULL;
		long n = dump_collect(d, g, &e, err, cap);
		if (n < 0)
			return (int)n;
		uint64_t records = 0, bytes = 0, vbytes = 0;
		for (long i = 0; i < n; i++) {
			records += e[i].records;
			bytes += e[i].file_bytes;
			vbytes += e[i].value_bytes;
		}
		free(e);
		atomic_fetch_add(&d->st.group_items[g], records);
		atomic_fetch_add(&d->e.st.items, records);
		atomic_fetch_add(&d->st.items_resumed, records);
		atomic_fetch_add(&d->st.files, (uint64_t)n);
		atomic_fetch_add(&d->st.file_bytes, bytes);
		atomic_fetch_add(&d->e.st.value_bytes, vbytes);
	}
	return 0;
}

/* Removes what resuming does not keep from the output: each group's directory, or the
 * prefix of --out s3:// (with the uploads a killed run left unfinished). 0 or a cause. */
static int prune_out(struct dump_cmd *d, const struct checkpoint *cp)
{
	if (d->s3.on)
		return dump_s3_prune(d, cp);
	for (unsigned g = 0; g < d->e.kf.ngroups; g++) {
		int ret = prune_dir(d->group_fd[g], cp, d->group_path[g]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int resume_prepare(struct dump_cmd *d)
{
	char err[512];
	struct checkpoint *cp = &d->e.ckpt;
	int ret = checkpoint_load(cp, d->e.spool_fd, err, sizeof(err));
	if (ret == -EBADMSG) {
		log_warn("%s in %s: starting the dump over", err, d->e.spool_path);
		return resume_wipe(d);
	}
	if (ret < 0) {
		log_error("%s/%s: %s", d->e.spool_path, CHECKPOINT_NAME, err);
		return ret;
	}
	const char *why = NULL;
	if (strcmp(cp->source, d->e.o.source.text) != 0)
		why = "it is a dump of another server";
	else if (cp->options_crc != dump_options_crc(&d->e.o))
		why = "it was started with other key filters, --crawl or --min-ttl";
	else if (cp->source_pid != d->e.src.pid ||
		 cp->source_started_s != d->e.src.time_s - (int64_t)d->e.src.uptime_s)
		why = "the source has restarted since (its items then are gone)";
	else
		why = dump_s3_state_mismatch(d);
	if (why != NULL) {
		log_error("%s holds an unfinished dump of %s (dump %s) that cannot be continued: "
			  "%s. Continue it with its own options, or dump into a new directory",
			  d->e.o.dir, cp->source, cp->dump_id_hex, why);
		checkpoint_close(cp);
		return -EINVAL;
	}
	ret = prune_out(d, cp);
	if (ret < 0)
		return ret;
	ret = prune_spool(&d->e, cp);
	if (ret < 0)
		return ret;
	ret = count_kept(d, err, sizeof(err));
	if (ret < 0) {
		if (d->s3.on && ret != -EBADMSG) {
			log_error("%s", err); /* the store failed, not a file */
			return dump_s3_store_cause(d);
		}
		log_warn("%s: a finished file of the unfinished dump is damaged: starting the "
			 "dump over",
			 err);
		checkpoint_close(cp);
		memset(&d->st, 0, sizeof(d->st));
		memset(&d->e.st, 0, sizeof(d->e.st));
		return resume_wipe(d);
	}
	d->e.resuming = true;
	if (cp->keys_done) {
		d->e.chunks_ready = cp->chunks;
		d->e.keys_done = true;
	} else {
		d->e.chunks_ready = d->e.next_job =
		    cp->job_end; /* the new listing goes on from here */
	}
	log_info("continuing dump %s of %s: %u key chunks finished (%llu items kept), key "
		 "listing %s",
		 cp->dump_id_hex, cp->source, cp->jobs_done,
		 (unsigned long long)atomic_load(&d->st.items_resumed),
		 cp->keys_done ? "complete" : "to be done again");
	return 0;
}

int resume_wipe(struct dump_cmd *d)
{
	int ret = prune_out(d, NULL);
	if (ret < 0)
		return ret;
	ret = prune_spool(&d->e, NULL);
	if (ret < 0)
		return ret;
	d->e.resuming = false;
	return 0;
}

int resume_load_dedupe(struct dump_cmd *d)
{
	if (!d->e.resuming || d->e.ckpt.keys_done)
		return 0;
	/* worker 0's key input is free until the workers start */
	struct engine_worker *w = &d->e.workers[0];
	struct keychunk_view kv;
	uint32_t n;
	uint64_t loaded = 0;
	for (uint32_t seq = 0; seq < d->e.ckpt.job_end; seq++) {
		if (!checkpoint_job_is_done(&d->e.ckpt, seq))
			continue;
		if (!engine_load_keys(&d->e, w, seq, &kv, &n))
			return d->e.run.fault.err;
		uint32_t pos = 0;
		const uint8_t *key;
		uint16_t klen;
		uint8_t flags;
		while (keychunk_next(&kv, &pos, &key, &klen, &flags)) {
			(void)dedupe_check(&d->e.dedupe, dedupe_id(0, key, klen));
			loaded++;
		}
	}
	if (loaded > dedupe_capacity(&d->e.dedupe))
		log_warn("the dedupe table holds %llu of the %llu keys already dumped: items past "
			 "that may be dumped twice (populate keeps the first); a larger --memory "
			 "avoids it",
			 (unsigned long long)dedupe_capacity(&d->e.dedupe),
			 (unsigned long long)loaded);
	return 0;
}
