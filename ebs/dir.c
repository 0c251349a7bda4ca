/*
 * dir.c: the dir backend: an existing (or new) directory stands for the volume; both
 * attachments are the directory itself and nothing is mounted. For one machine and tests.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "ebs_private.h"

static int dir_create(struct ebs_volume *v, char *err, size_t cap)
{
	int ret = ebs_mkdirs(v->path);
	if (ret < 0)
		return ebs_error(err, cap, ret, "cannot create the directory %s: %s", v->path,
				 strerror(-ret));
	return 0;
}

static int dir_attach(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at,
		      char *err, size_t cap)
{
	(void)a;
	struct stat sb;
	if (stat(v->path, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return ebs_error(err, cap, -ENOENT, "%s is not a directory: run mcwarm-ctl create",
				 v->path);
	snprintf(at->device, sizeof(at->device), "%s", v->path);
	return 0;
}

static int dir_detach(const struct ebs_volume *v, struct ebs_attachment *at, char *err, size_t cap)
{
	(void)v;
	(void)err;
	(void)cap;
	at->device[0] = '\0';
	return 0;
}

static int dir_destroy(struct ebs_volume *v, char *err, size_t cap)
{
	(void)v; /* the directory is the operator's: mcwarm removes only what it wrote in it */
	(void)err;
	(void)cap;
	return 0;
}

static int dir_describe(const struct ebs_volume *v, struct ebs_status *st, char *err, size_t cap)
{
	(void)err;
	(void)cap;
	struct stat sb;
	st->exists = stat(v->path, &sb) == 0 && S_ISDIR(sb.st_mode);
	snprintf(st->state, sizeof(st->state), "%s", st->exists ? "directory" : "missing");
	return 0;
}

const struct ebs_ops ebs_dir_ops = {
	.create = dir_create,
	.attach = dir_attach,
	.detach = dir_detach,
	.destroy = dir_destroy,
	.describe = dir_describe,
};
