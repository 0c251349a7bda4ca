/*
 * populate_s3.c: the object store's side of populate's orchestrator (--from
 * s3://BUCKET/PREFIX): its S3 client, the listing that is the pass's queue, DONE and
 * MANIFEST read whole, and the first chunk's header. The workers read chunk objects
 * through their own fetch threads (populate_fetch.c); this client is used by the
 * orchestrator thread only.
 *
 * Layout under PREFIX/ (docs/format.md): the names a dump writes on a volume. Every
 * object whose name parses as a final chunk name is a chunk; DONE and MANIFEST close the
 * set; anything else (PREFIX/.mcwarm/..., other names, deeper keys) is ignored.
 *
 * A failure of the store (credentials, bucket, retries exhausted) ends the run with the
 * cause mcw_store_cause(its class) (exit objs_exit_code of it, where the command ends) and
 * the client's text, which names the bucket and the fix.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "chunk_reader.h"
#include "manifest.h"
#include "populate_private.h"

static_assert(POP_S3_FETCH_SCRATCH_BYTES >= OBJS_SCRATCH_MIN_BYTES, "objstore's minimum");

void pop_s3_key(const struct pop_opts *o, const char *name, char key[OBJS_KEY_MAX_BYTES + 1])
{
	int n = snprintf(key, OBJS_KEY_MAX_BYTES + 1, "%s%s", o->url.prefix, name);
	ASSERT(n > 0 && n <= OBJS_KEY_MAX_BYTES); /* parse_from_s3 bounds the prefix */
}

static int s3_failed(struct pop_ctx *c, const char *what)
{
	const struct objs_error *e = objs_last_error(&c->s3);
	int err = mcw_store_cause(e->cls);
	pop_fail(c, err, "%s %s: %s", what, c->o.from_dir, e->text);
	return err;
}

int pop_s3_open(struct pop_ctx *c, void *scratch, size_t scratch_bytes)
{
	struct objs_error e = { 0 };
	if (objs_config_from_env(&c->s3cfg, &e) < 0) {
		log_error("%s", e.text);
		return mcw_store_cause(e.cls);
	}
	int ret = objs_client_init(&c->s3, &c->s3cfg, scratch, scratch_bytes);
	if (ret < 0) {
		log_error("cannot start the S3 client: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

struct list_arg {
	struct pop_ctx *c;
	pop_s3_chunk_cb cb;
	void *arg;
	bool done;
};

static int list_one(void *arg, const char *key, uint64_t size, const char *etag)
{
	struct list_arg *l = arg;
	size_t plen = strlen(l->c->o.url.prefix);
	uint32_t job, part, crc;
	if (strncmp(key, l->c->o.url.prefix, plen) != 0)
		return 0; /* not under the prefix: a store that ignored it */
	const char *name = key + plen;
	if (strcmp(name, DONE_NAME) == 0)
		l->done = true;
	else if (chunk_name_parse(name, &job, &part, &crc))
		l->cb(l->c, name, size, etag, l->arg);
	return 0;
}

int pop_s3_list(struct pop_ctx *c, pop_s3_chunk_cb cb, void *arg, bool *done_out)
{
	/* DONE and MANIFEST sort before "chunk-" (S3 lists in UTF-8 binary order), and DONE is
	 * written after every chunk: a listing that saw DONE lists every chunk of the dump */
	struct list_arg l = { .c = c, .cb = cb, .arg = arg };
	int ret = objs_list(&c->s3, c->o.url.bucket, c->o.url.prefix, POP_S3_LIST_PAGE_KEYS,
			    list_one, &l);
	if (ret < 0)
		return s3_failed(c, "cannot list");
	*done_out = l.done;
	return 0;
}

/* A small object read whole into a new buffer with one spare byte. -ENOENT, -EBADMSG or
 * -errno; a store failure other than a missing object ends the run. */
static long get_small(struct pop_ctx *c, const char *name, char **out, char *err, size_t cap)
{
	char key[OBJS_KEY_MAX_BYTES + 1];
	uint64_t size;
	pop_s3_key(&c->o, name, key);
	int ret = objs_head(&c->s3, c->o.url.bucket, key, &size, NULL);
	if (ret == -ENOENT)
		return -ENOENT;
	if (ret < 0) {
		snprintf(err, cap, "cannot read %s: %s", name, objs_last_error(&c->s3)->text);
		s3_failed(c, "cannot read " DONE_NAME "/" MANIFEST_NAME " of");
		return ret;
	}
	if (size == 0 || size > MANIFEST_TEXT_MAX) {
		snprintf(err, cap, "%s is empty or larger than %llu bytes: damaged", name,
			 (unsigned long long)MANIFEST_TEXT_MAX);
		return -EBADMSG;
	}
	char *buf = malloc(size + 1);
	ASSERT(buf != NULL);
	int64_t n = objs_get_range(&c->s3, c->o.url.bucket, key, 0, buf, size);
	if (n < 0 || (uint64_t)n != size) {
		free(buf);
		if (n == -ENOENT)
			return -ENOENT;
		if (n < 0) {
			snprintf(err, cap, "cannot read %s: %s", name,
				 objs_last_error(&c->s3)->text);
			s3_failed(c, "cannot read " DONE_NAME "/" MANIFEST_NAME " of");
			return n;
		}
		snprintf(err, cap, "%s is shorter than listed (%lld of %llu bytes): damaged", name,
			 (long long)n, (unsigned long long)size);
		return -EBADMSG;
	}
	*out = buf;
	return (long)n;
}

long pop_s3_manifest_load(struct pop_ctx *c, struct manifest_info *mi, struct manifest_entry **e,
			  char *err, size_t cap)
{
	char *done = NULL, *man = NULL;
	long nd = get_small(c, DONE_NAME, &done, err, cap);
	if (nd < 0)
		return nd;
	long nm = get_small(c, MANIFEST_NAME, &man, err, cap);
	if (nm < 0 && nm != -ENOENT) {
		free(done);
		return nm == -EBADMSG ? nm : -EIO;
	}
	long ret = manifest_parse(done, (size_t)nd, man, nm < 0 ? 0 : (size_t)nm, mi, e, err, cap);
	free(done);
	free(man);
	return ret;
}

struct first_arg {
	char name[CHUNK_NAME_MAX];
	uint64_t size;
};

static void first_chunk(struct pop_ctx *c, const char *name, uint64_t size, const char *etag,
			void *arg)
{
	struct first_arg *f = arg;
	(void)c, (void)etag;
	if (f->name[0] == '\0' && size >= MCW_HEADER_BYTES) {
		snprintf(f->name, sizeof(f->name), "%s", name);
		f->size = size;
	}
}

bool pop_s3_first_header(struct pop_ctx *c, struct chunk_header *h)
{
	struct first_arg f = { { 0 }, 0 };
	bool done;
	if (pop_s3_list(c, first_chunk, &f, &done) != 0 || f.name[0] == '\0')
		return false;
	char key[OBJS_KEY_MAX_BYTES + 1];
	static uint8_t page[MCW_HEADER_BYTES]; /* the orchestrator's thread only */
	pop_s3_key(&c->o, f.name, key);
	int64_t n = objs_get_range(&c->s3, c->o.url.bucket, key, 0, page, sizeof(page));
	if (n < 0 && n != -ENOENT) {
		s3_failed(c, "cannot read the first chunk of");
		return false;
	}
	return n > 0 && chunk_header_check(page, (size_t)n, h) == CHUNK_OK;
}
