/*
 * s3.c: `--backend s3`: the warm-up's dump goes through an object store instead of a
 * volume (issue 15). No volume steps: the writer runs `mcwarm dump --out s3://...` with
 * its checkpoint in WORK/dump-<n>, the reader `mcwarm populate --from s3://... --follow`
 * (reader.c); this file owns the controller's own few requests to the store.
 *
 *   pair prefix   PREFIX/<source host_port>/ (PREFIX from --volume s3://BUCKET/PREFIX):
 *                 both hosts derive it from the plan alone
 *   attempt n     PAIR/dump-<n>/, the layout of a dump (docs/format.md)
 *   readers       PAIR/.mcwarm/readers/reading-<dest> while a reader (--side ro) works,
 *                 done-<dest> once it verified; release waits while a reading-* is left
 *   teardown      every object under PAIR/ deleted (objs_delete_prefix)
 *
 * One client, made on first use from the AWS environment (objs_config_from_env), with
 * one scratch buffer of OBJS_SCRATCH_MIN_BYTES; failures come back as the exit code of
 * their class (objs_exit_code) and the client's text, which names the fix.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "ctl_private.h"
#include "objstore.h"

#define READERS_DIR ".mcwarm/readers/"

static struct objs_client client;
static char *scratch;
static bool client_ready;

/* The plan's bucket and pair prefix (PREFIX/<source host_port>/). 0 or an exit code. */
static int pair_of(const struct ctl_plan *p, struct objs_url *u, char *err, size_t cap)
{
	struct objs_error e = { 0 };
	if (objs_url_parse(p->vol.path, u, &e) < 0)
		return snprintf(err, cap, "--volume %s: %s", p->vol.path, e.text),
		       objs_exit_code(e.cls);
	char slug[sizeof(p->source)];
	snprintf(slug, sizeof(slug), "%s", p->source);
	for (char *c = slug; *c; c++)
		if (*c == ':' || *c == '/')
			*c = '_';
	size_t n = strlen(u->prefix);
	char pair[OBJS_KEY_MAX_BYTES + 1];
	int len = snprintf(pair, sizeof(pair), "%s%s%s/", u->prefix,
			   n > 0 && u->prefix[n - 1] != '/' ? "/" : "", slug);
	if (len < 0 || (size_t)len + CTL_S3_NAME_MAX > OBJS_KEY_MAX_BYTES)
		return snprintf(err, cap,
				"--volume %s: the prefix with the source's name is too long for "
				"S3 keys (at most %d bytes): use a shorter prefix",
				p->vol.path, OBJS_KEY_MAX_BYTES - CTL_S3_NAME_MAX),
		       MCW_EXIT_USAGE;
	memcpy(u->prefix, pair, (size_t)len + 1);
	return 0;
}

/* The client, made once. 0 or an exit code. */
static int connect_store(char *err, size_t cap)
{
	struct objs_config cfg;
	struct objs_error e = { 0 };
	if (client_ready)
		return 0;
	if (objs_config_from_env(&cfg, &e) < 0)
		return snprintf(err, cap, "%s", e.text), objs_exit_code(e.cls);
	if (scratch == NULL)
		scratch = malloc(OBJS_SCRATCH_MIN_BYTES);
	if (scratch == NULL || objs_client_init(&client, &cfg, scratch, OBJS_SCRATCH_MIN_BYTES) < 0)
		return snprintf(err, cap, "cannot start the S3 client (out of memory)"),
		       MCW_EXIT_SOFTWARE;
	client_ready = true;
	return 0;
}

/* The last request's failure: its text, and the exit code of its class. */
static int store_failed(char *err, size_t cap, const char *what)
{
	const struct objs_error *e = objs_last_error(&client);
	snprintf(err, cap, "%s: %s", what, e->text);
	return objs_exit_code(e->cls);
}

struct first_key {
	char name[OBJS_KEY_MAX_BYTES + 1];
	unsigned found;
};

static int note_key(void *arg, const char *key, uint64_t size, const char *etag)
{
	struct first_key *f = arg;
	(void)size;
	(void)etag;
	if (f->found++ == 0)
		snprintf(f->name, sizeof(f->name), "%s", key);
	return 0;
}

static int stop_at_first(void *arg, const char *key, uint64_t size, const char *etag)
{
	note_key(arg, key, size, etag);
	return 1;
}

/* The keys under the pair prefix + name: the first (f->name) and, with all, how many
 * (bounded by the listing's own limit on pages). 0 or an exit code. */
static int list_under(const struct ctl_plan *p, const char *name, bool all, struct first_key *f,
		      char *err, size_t cap)
{
	struct objs_url u;
	char key[OBJS_KEY_MAX_BYTES + 64];
	int code = pair_of(p, &u, err, cap);
	if (code == 0)
		code = connect_store(err, cap);
	if (code != 0)
		return code;
	memset(f, 0, sizeof(*f));
	snprintf(key, sizeof(key), "%s%s", u.prefix, name);
	int ret = objs_list(&client, u.bucket, key, all ? 0 : 1, all ? note_key : stop_at_first, f);
	if (ret < 0) {
		char what[OBJS_KEY_MAX_BYTES + OBJS_BUCKET_MAX_BYTES + 128];
		snprintf(what, sizeof(what), "cannot list s3://%s/%s", u.bucket, key);
		return store_failed(err, cap, what);
	}
	return 0;
}

void ctl_s3_pair_url(char *out, size_t cap, const struct ctl_plan *p, const char *name)
{
	struct objs_url u;
	char err[512];
	if (pair_of(p, &u, err, sizeof(err)) != 0) {
		snprintf(out, cap, "%s", p->vol.path);
		return;
	}
	snprintf(out, cap, "s3://%s/%s%s", u.bucket, u.prefix, name);
}

void ctl_s3_dump_url(char *out, size_t cap, const struct ctl_plan *p, unsigned n)
{
	char name[32];
	snprintf(name, sizeof(name), "dump-%u", n);
	ctl_s3_pair_url(out, cap, p, name);
}

int ctl_s3_check(const struct ctl_plan *p, char *err, size_t cap)
{
	struct first_key f;
	return list_under(p, "", false, &f, err, cap);
}

int ctl_s3_has(const struct ctl_plan *p, const char *name, bool *yes, char *err, size_t cap)
{
	struct first_key f;
	int code = list_under(p, name, false, &f, err, cap);
	*yes = code == 0 && f.found > 0;
	return code;
}

int ctl_s3_count(const struct ctl_plan *p, const char *name, unsigned *n, char *err, size_t cap)
{
	struct first_key f;
	int code = list_under(p, name, true, &f, err, cap);
	*n = code == 0 ? f.found : 0;
	return code;
}

int ctl_s3_reader_mark(const struct ctl_plan *p, const char *mark, char *err, size_t cap)
{
	struct objs_url u;
	char dest[sizeof(p->dest)], key[OBJS_KEY_MAX_BYTES + 400];
	int code = pair_of(p, &u, err, cap);
	if (code == 0)
		code = connect_store(err, cap);
	if (code != 0)
		return code;
	snprintf(dest, sizeof(dest), "%s", p->dest);
	for (char *c = dest; *c; c++)
		if (*c == ':' || *c == '/')
			*c = '_';
	/* done first, then reading goes: release never sees neither while a reader works */
	static const char *const marks[] = { "done", "reading" };
	for (unsigned i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "%s" READERS_DIR "%s-%s", u.prefix, marks[i], dest);
		bool put = mark != NULL && strcmp(mark, marks[i]) == 0;
		int ret = put ? objs_put(&client, u.bucket, key, p->dest, strlen(p->dest),
					 mcw_crc32c(0, p->dest, strlen(p->dest)))
			      : objs_delete(&client, u.bucket, key);
		if (ret < 0 && !(ret == -ENOENT && !put))
			return store_failed(err, cap,
					    put ? "cannot mark this reader in the store"
						: "cannot update this reader's mark");
	}
	return 0;
}

int ctl_s3_readers_gone(const struct ctl_plan *p, char *err, size_t cap)
{
	struct first_key f;
	int code = list_under(p, READERS_DIR "reading-", true, &f, err, cap);
	if (code != 0 || f.found == 0)
		return code;
	const char *who = strstr(f.name, "reading-");
	return snprintf(err, cap,
			"%u reader%s still reading the dump (%s): release it after every "
			"mcwarm-ctl warm --side ro has finished; try later",
			f.found, f.found == 1 ? " is" : "s are", who ? who + 8 : f.name),
	       MCW_EXIT_TEMPFAIL;
}

int ctl_s3_delete(const struct ctl_plan *p, char *err, size_t cap)
{
	struct objs_url u;
	int code = pair_of(p, &u, err, cap);
	if (code == 0)
		code = connect_store(err, cap);
	if (code != 0)
		return code;
	int64_t n = objs_delete_prefix(&client, u.bucket, u.prefix);
	if (n < 0) {
		char what[OBJS_KEY_MAX_BYTES + OBJS_BUCKET_MAX_BYTES + 64];
		snprintf(what, sizeof(what), "cannot delete s3://%s/%s", u.bucket, u.prefix);
		return store_failed(err, cap, what);
	}
	fprintf(stderr, "mcwarm-ctl: deleted %lld objects under s3://%s/%s\n", (long long)n,
		u.bucket, u.prefix);
	return 0;
}

void ctl_s3_close(void)
{
	if (client_ready)
		objs_client_fini(&client);
	client_ready = false;
	free(scratch);
	scratch = NULL;
}
