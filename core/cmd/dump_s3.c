/*
 * dump_s3.c: `mcwarm dump --out s3://BUCKET/PREFIX` (issue 15): what differs from a dump
 * into a directory. The engine, the sink and the checkpoint are the same; the chunk
 * writers get the object backend (chunk_upload.h) and the main thread here owns one
 * objs_client for everything around the run:
 *
 *   options -> check the store (list PREFIX/: credentials, bucket, what it holds)
 *   -> [resume: end the unfinished uploads of the journals, delete the temporary objects
 *      and the objects of unfinished jobs] -> run -> MANIFEST, DONE (objs_put with crc)
 *
 * The checkpoint, the key chunks and the upload journals stay local in --state DIR
 * (DIR/.mcwarm), as in a dump directory: S3 has no append and a checkpoint line per job
 * should not cost a request. The store holds only what readers need (docs/format.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "crcline.h"
#include "dump.h"
#include "manifest.h"

#define TMP_DIR	      ".mcwarm/tmp/"
#define JOURNAL_NAMES "uploads-%u"

int dump_s3_store_cause(struct dump_cmd *d)
{
	return mcw_store_cause(objs_last_error(&d->s3.client)->cls);
}

static int s3_failed(struct dump_cmd *d, const char *what)
{
	log_error("%s %s: %s", what, d->s3.out_text, objs_last_error(&d->s3.client)->text);
	return dump_s3_store_cause(d);
}

int dump_s3_option(struct dump_cmd *d, const char *out)
{
	struct dump_s3 *s = &d->s3;
	struct objs_error err;
	s->on = true;
	s->out_text = out;
	if (objs_url_parse(out, &s->url, &err) < 0) {
		log_error("--out %s: %s", out, err.text);
		return mcw_exit_code(mcw_store_cause(err.cls));
	}
	size_t n = strlen(s->url.prefix);
	snprintf(s->prefix, sizeof(s->prefix), "%s%s", s->url.prefix,
		 n > 0 && s->url.prefix[n - 1] != '/' ? "/" : "");
	if (objs_config_from_env(&s->cfg, &err) < 0) {
		log_error("--out %s: %s", out, err.text);
		return mcw_exit_code(mcw_store_cause(err.cls));
	}
	if (d->e.o.dir == NULL)
		return cli_usage_error("dump", "--out s3://... needs --state DIR: a local "
					       "directory for the checkpoint (new, or the one of "
					       "the dump to continue)");
	if (d->o.write_mode != CHUNK_WRITE_STAGE)
		return cli_usage_error("dump", "--writer writev writes files only; --out s3:// "
					       "uploads from the staging blocks (--writer stage)");
	if (d->o.syncfs_interval_s > 0)
		return cli_usage_error("dump", "--syncfs-interval is for a directory, not s3://");
	return 0;
}

/* ---- what the prefix holds ---------------------------------------------------------- */

struct survey {
	struct dump_cmd *d;
	const struct checkpoint *cp; /* prune: keep the files of finished jobs */
	bool prune;
	bool has_done;
	char first[OBJS_KEY_MAX_BYTES + 1];
	long objects;
	int rc;
	struct manifest_entry *v; /* collect */
	size_t n, cap;
	bool collect;
	char *err;
	size_t err_cap;
};

/* The name under the prefix, or NULL for a key outside it. */
static const char *rel_name(const struct dump_cmd *d, const char *key)
{
	size_t n = strlen(d->s3.prefix);
	return strncmp(key, d->s3.prefix, n) == 0 ? key + n : NULL;
}

static int collect_one(struct survey *sv, const char *key, const char *name, uint64_t size)
{
	struct manifest_entry e = { 0 };
	struct chunk_footer ft;
	if (!chunk_name_parse(name, &e.job, &e.part, &e.crc))
		return 0;
	snprintf(e.name, sizeof(e.name), "%.63s", name);
	int64_t got = size >= sizeof(ft) ? objs_get_range(&sv->d->s3.client, sv->d->s3.url.bucket,
							  key, size - sizeof(ft), &ft, sizeof(ft))
					 : 0;
	if (got < 0)
		return sv->rc = (int)got;
	if (manifest_entry_check(&e, &ft, (size_t)got, size, sv->err, sv->err_cap) < 0)
		return sv->rc = -EBADMSG;
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? 2 * sv->cap : 256;
		struct manifest_entry *nv = realloc(sv->v, sv->cap * sizeof(*nv));
		ASSERT(nv != NULL);
		sv->v = nv;
	}
	sv->v[sv->n++] = e;
	return 0;
}

/* The prune: temporary objects always, chunks of jobs the checkpoint does not name done
 * (all chunks without a checkpoint). */
static int prune_one(struct survey *sv, const char *key, const char *name)
{
	uint32_t job, part, crc;
	bool tmp = strncmp(name, TMP_DIR, strlen(TMP_DIR)) == 0;
	bool chunk = chunk_name_parse(name, &job, &part, &crc);
	if (!tmp && !(chunk && (sv->cp == NULL || !checkpoint_job_is_done(sv->cp, job))))
		return 0;
	int rc = objs_delete(&sv->d->s3.client, sv->d->s3.url.bucket, key);
	return rc == -ENOENT ? 0 : (sv->rc = rc);
}

static int survey_one(void *arg, const char *key, uint64_t size, const char *etag)
{
	struct survey *sv = arg;
	const char *name = rel_name(sv->d, key);
	(void)etag;
	if (name == NULL)
		return 0;
	if (sv->objects++ == 0)
		snprintf(sv->first, sizeof(sv->first), "%s", name);
	if (strcmp(name, DONE_NAME) == 0)
		sv->has_done = true;
	if (sv->prune)
		return prune_one(sv, key, name);
	if (sv->collect)
		return collect_one(sv, key, name, size);
	return 0;
}

static int survey_run(struct dump_cmd *d, struct survey *sv)
{
	sv->d = d;
	int rc = objs_list(&d->s3.client, d->s3.url.bucket, d->s3.prefix, MCW_S3_LIST_PAGE_KEYS,
			   survey_one, sv);
	return rc < 0 ? rc : sv->rc;
}

long dump_s3_collect(struct dump_cmd *d, struct manifest_entry **out, char *err, size_t cap)
{
	struct survey sv = { .collect = true, .err = err, .err_cap = cap };
	int rc = survey_run(d, &sv);
	if (rc < 0) {
		if (rc != -EBADMSG)
			snprintf(err, cap, "cannot list %s: %s", d->s3.out_text,
				 objs_last_error(&d->s3.client)->text);
		free(sv.v);
		return rc;
	}
	manifest_sort(sv.v, sv.n);
	*out = sv.v;
	return (long)sv.n;
}

/* ---- unfinished uploads ------------------------------------------------------------- */

struct journal_scan {
	struct dump_cmd *d;
	struct pending {
		char id[OBJS_UPLOAD_ID_MAX_BYTES];
		char key[OBJS_KEY_MAX_BYTES + 1];
	} * v;
	size_t n, cap;
};

static void pending_add(struct journal_scan *js, const char *id, const char *key)
{
	for (size_t i = 0; i < js->n; i++)
		if (strcmp(js->v[i].id, id) == 0)
			return;
	if (js->n == js->cap) {
		js->cap = js->cap ? 2 * js->cap : 16;
		struct pending *nv = realloc(js->v, js->cap * sizeof(*nv));
		ASSERT(nv != NULL);
		js->v = nv;
	}
	snprintf(js->v[js->n].id, sizeof(js->v[js->n].id), "%s", id);
	snprintf(js->v[js->n].key, sizeof(js->v[js->n].key), "%s", key);
	js->n++;
}

static int listed_upload(void *arg, const char *key, const char *upload_id)
{
	pending_add(arg, upload_id, key); /* ended after the listing (complete uses scratch) */
	return 0;
}

static bool journal_line(void *arg, char *line)
{
	struct journal_scan *js = arg;
	char id[OBJS_UPLOAD_ID_MAX_BYTES];
	int at = 0;
	if (sscanf(line, "done %1023s%n", id, &at) == 1 && line[at] == 0) {
		for (size_t i = 0; i < js->n; i++)
			if (strcmp(js->v[i].id, id) == 0)
				js->v[i] = js->v[--js->n];
		return true;
	}
	if (sscanf(line, "upload %1023s %n", id, &at) != 1 || at == 0 || line[at] == 0)
		return false;
	pending_add(js, id, line + at);
	return true;
}

/* Ends every upload the journals of an earlier run name as begun and not done (and any
 * other the store lists under PREFIX/.mcwarm/tmp/), then removes the journals. 0 or an
 * cause. */
static int end_unfinished(struct dump_cmd *d)
{
	struct engine *e = &d->e;
	struct journal_scan js = { .d = d };
	char name[32];
	int code = 0;
	for (unsigned i = 0; i < MCW_THREADS_MAX; i++) {
		snprintf(name, sizeof(name), JOURNAL_NAMES, i);
		int fd = openat(e->spool_fd, name, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		long bad = crcline_load(fd, journal_line, &js);
		close(fd);
		if (bad != 0)
			log_warn(
			    "%s/%s is damaged at byte %ld: the uploads it names after that are "
			    "not ended (S3's lifecycle rule AbortIncompleteMultipartUpload "
			    "ends them)",
			    e->spool_path, name, bad);
	}
	/* Where the store lists unfinished uploads (AWS, not s3rver), also those begun in the
	 * moment between the store's answer and the journal line of a killed run. */
	char tmp_prefix[OBJS_KEY_MAX_BYTES + 16];
	snprintf(tmp_prefix, sizeof(tmp_prefix), "%s%s", d->s3.prefix, TMP_DIR);
	if (objs_mpu_list(&d->s3.client, d->s3.url.bucket, tmp_prefix, listed_upload, &js) < 0 &&
	    objs_last_error(&d->s3.client)->cls != OBJS_ERR_UNSUPPORTED)
		code = s3_failed(d, "cannot list the unfinished uploads of");
	for (size_t i = 0; i < js.n && code == 0; i++) {
		log_info("ending the unfinished upload of s3://%s/%s", d->s3.url.bucket,
			 js.v[i].key);
		if (chunk_upload_discard(&d->s3.client, d->s3.url.bucket, js.v[i].key, js.v[i].id) <
		    0)
			code = s3_failed(d, "cannot end an unfinished upload of");
	}
	free(js.v);
	for (unsigned i = 0; code == 0 && i < MCW_THREADS_MAX; i++) {
		snprintf(name, sizeof(name), JOURNAL_NAMES, i);
		unlinkat(e->spool_fd, name, 0);
	}
	return code;
}

int dump_s3_prune(struct dump_cmd *d, const struct checkpoint *cp)
{
	int code = end_unfinished(d);
	if (code != 0)
		return code;
	struct survey sv = { .prune = true, .cp = cp };
	if (survey_run(d, &sv) < 0)
		return s3_failed(d, "cannot clean up the unfinished dump in");
	return 0;
}

/* ---- which output the spool belongs to ------------------------------------------------ */

#define OUT_MARK "s3-out"

int dump_s3_state_mark(struct dump_cmd *d)
{
	int fd = openat(d->e.spool_fd, OUT_MARK, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = fd < 0 ? -errno : crcline_append(fd, "out %s", d->s3.out_text);
	if (fd >= 0)
		close(fd);
	if (ret < 0) {
		log_error("cannot write %s/%s: %s", d->e.spool_path, OUT_MARK, strerror(-ret));
		return ret;
	}
	return 0;
}

static bool mark_line(void *arg, char *line)
{
	snprintf(arg, OBJS_KEY_MAX_BYTES + 128, "%s", line);
	return true;
}

const char *dump_s3_state_mismatch(struct dump_cmd *d)
{
	static char seen[OBJS_KEY_MAX_BYTES + 128], want[OBJS_KEY_MAX_BYTES + 128];
	int fd = openat(d->e.spool_fd, OUT_MARK, O_RDWR | O_CLOEXEC);
	seen[0] = 0;
	if (fd >= 0) {
		(void)crcline_load(fd, mark_line, seen);
		close(fd);
	}
	if (!d->s3.on)
		return fd >= 0 ? "it is the state of a dump to an object store (--out s3://)"
			       : NULL;
	snprintf(want, sizeof(want), "out %s", d->s3.out_text);
	if (fd < 0)
		return "it is a dump directory, not the state of a dump to s3://";
	return strcmp(seen, want) == 0 ? NULL : "it is the state of a dump to another s3:// URL";
}

/* ---- the run ------------------------------------------------------------------------ */

int dump_s3_prepare(struct dump_cmd *d, bool resume)
{
	struct dump_s3 *s = &d->s3;
	if (d->e.kf.ngroups > 1) {
		log_error("--out s3:// takes one dump; a resize dump (--nodes with --keep) writes "
			  "one per new owner: run one dump per owner with its own prefix");
		return -EINVAL;
	}
	s->scratch = malloc(MCW_S3_LIST_SCRATCH_BYTES); /* start-up only */
	if (s->scratch == NULL ||
	    objs_client_init(&s->client, &s->cfg, s->scratch, MCW_S3_LIST_SCRATCH_BYTES) < 0) {
		log_error("cannot set up the S3 client (out of memory)");
		return -ENOMEM;
	}
	s->client_ready = true;
	struct survey sv = { 0 };
	if (survey_run(d, &sv) < 0)
		return s3_failed(d, "cannot list");
	if (resume)
		return 0; /* resume_prepare cleans up, knowing the checkpoint */
	if (sv.has_done) {
		log_info("%s already holds a complete dump (DONE): nothing to do", s->out_text);
		d->already_complete = d->e.nothing_to_do = true;
		return 0;
	}
	if (sv.objects > 0) {
		log_error("%s is not empty (it holds '%s') and %s has no checkpoint of a dump to "
			  "continue: dump into a new prefix so no earlier dump is mixed in",
			  s->out_text, sv.first, d->e.o.dir);
		return -EINVAL;
	}
	return 0;
}

int dump_s3_worker_init(struct dump_cmd *d, struct dump_worker *dw, struct engine_worker *w)
{
	char name[32];
	snprintf(name, sizeof(name), JOURNAL_NAMES, w->id);
	dw->journal_fd =
	    openat(d->e.spool_fd, name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (dw->journal_fd < 0)
		return -errno;
	struct chunk_upload_opts uo = {
		.cfg = &d->s3.cfg,
		.bucket = d->s3.url.bucket,
		.prefix = d->s3.prefix,
		.part_mem = w->sink_part[1],
		.limits = rate_limits_active(&d->e.limits) ? &d->e.limits : NULL,
		.journal_fd = dw->journal_fd,
		.id = w->id,
	};
	ASSERT(w->sink_part_bytes[1] >= MCW_S3_PART_BUFS * (size_t)MCW_S3_PART_BYTES);
	dw->up_ready = true;
	return chunk_upload_start(&dw->up, &uo);
}

void dump_s3_worker_fini(struct dump_worker *dw, bool failed)
{
	if (!dw->up_ready)
		return;
	chunk_upload_stop(&dw->up, failed);
	if (dw->journal_fd >= 0)
		close(dw->journal_fd);
	dw->journal_fd = -1;
	dw->up_ready = false;
}

static int put_object(void *arg, const char *name, const char *data, size_t len)
{
	struct dump_cmd *d = arg;
	char key[OBJS_KEY_MAX_BYTES + 16];
	snprintf(key, sizeof(key), "%s%s", d->s3.prefix, name);
	return objs_put(&d->s3.client, d->s3.url.bucket, key, data, len, mcw_crc32c(0, data, len));
}

int dump_s3_publish(struct dump_cmd *d, struct manifest_info *mi, const struct manifest_entry *e,
		    size_t n)
{
	char err[512];
	if (manifest_publish_with(mi, e, n, put_object, d, err, sizeof(err)) < 0)
		return s3_failed(d, "cannot put MANIFEST and DONE into");
	/* the journals only name finished uploads now; the spool goes after this */
	end_unfinished(d);
	unlinkat(d->e.spool_fd, OUT_MARK, 0);
	return 0;
}

void dump_s3_release(struct dump_cmd *d)
{
	if (d->s3.client_ready)
		objs_client_fini(&d->s3.client);
	free(d->s3.scratch);
	d->s3.scratch = NULL;
	d->s3.client_ready = false;
}

int dump_s3_worker_cause(struct dump_worker *dw)
{
	char text[8];
	if (!dw->up_ready)
		return -EIO;
	bool local; /* the upload journal: a local file */
	enum objs_class c = chunk_upload_error(&dw->up, text, sizeof(text), &local);
	return c == OBJS_OK || local ? -EIO : mcw_store_cause(c);
}
