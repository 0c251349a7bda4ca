/*
 * manifest.c: collect, publish and load a dump's MANIFEST and DONE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "chunk_reader.h"
#include "crc.h"
#include "manifest.h"
#include "mcw_limits.h"

static int cmp_entry(const void *a, const void *b)
{
	const struct manifest_entry *x = a, *y = b;
	if (x->job != y->job)
		return x->job < y->job ? -1 : 1;
	return x->part < y->part ? -1 : x->part > y->part;
}

int manifest_entry_check(struct manifest_entry *e, const struct chunk_footer *ft, size_t n,
			 uint64_t size, char *err, size_t cap)
{
	struct chunk_footer f;
	enum chunk_status st = chunk_footer_check(ft, n, &f);
	if (st != CHUNK_OK || f.f.file_crc != e->crc || f.f.file_bytes != size) {
		snprintf(err, cap, "chunk %s: footer %s", e->name,
			 st != CHUNK_OK ? chunk_status_name(st) : "does not match the file name");
		return -EBADMSG;
	}
	e->records = f.f.record_count;
	e->file_bytes = f.f.file_bytes;
	e->value_bytes = f.f.value_bytes;
	e->key_bytes = f.f.key_bytes;
	return 0;
}

static int read_footer(int dir_fd, struct manifest_entry *e, char *err, size_t cap)
{
	struct chunk_footer ft;
	struct stat sb;
	int fd = openat(dir_fd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		snprintf(err, cap, "cannot open chunk %s: %s", e->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	ssize_t n = sb.st_size >= (off_t)sizeof(ft)
			? pread(fd, &ft, sizeof(ft), sb.st_size - (off_t)sizeof(ft))
			: 0;
	close(fd);
	return manifest_entry_check(e, &ft, n < 0 ? 0 : (size_t)n, (uint64_t)sb.st_size, err, cap);
}

void manifest_sort(struct manifest_entry *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_entry);
}

long manifest_collect(int dir_fd, struct manifest_entry **out, char *err, size_t err_cap)
{
	int fd = dup(dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	size_t n = 0, cap = 0;
	struct manifest_entry *v = NULL;
	struct dirent *de;
	if (d == NULL) {
		int ret = -errno;
		snprintf(err, err_cap, "cannot list the output directory: %s", strerror(-ret));
		return ret;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct manifest_entry e = { 0 };
		if (!chunk_name_parse(de->d_name, &e.job, &e.part, &e.crc))
			continue;
		snprintf(e.name, sizeof(e.name), "%.63s",
			 de->d_name); /* parse checked the length */
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			struct manifest_entry *nv = realloc(v, cap * sizeof(*v));
			ASSERT(nv != NULL);
			v = nv;
		}
		v[n++] = e;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		int ret = read_footer(dir_fd, &v[i], err, err_cap);
		if (ret < 0) {
			free(v);
			return ret;
		}
	}
	manifest_sort(v, n);
	*out = v;
	return (long)n;
}

struct text {
	char *buf;
	size_t len, cap;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		t->cap = t->cap ? 2 * t->cap : 4096;
		t->buf = realloc(t->buf, t->cap);
		ASSERT(t->buf != NULL);
	}
}

/* temp name, write, fsync, rename, fsync the directory */
static int write_atomic(int dir_fd, const char *name, const char *data, size_t len)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			int e = errno;
			close(fd);
			unlinkat(dir_fd, tmp, 0);
			return -e;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0 || renameat(dir_fd, tmp, dir_fd, name) < 0 ||
	    fsync(dir_fd) < 0)
		return -errno;
	return 0;
}

static int put_file(void *arg, const char *name, const char *data, size_t len)
{
	return write_atomic(*(const int *)arg, name, data, len);
}

int manifest_publish(int dir_fd, struct manifest_info *info, const struct manifest_entry *e,
		     size_t n, char *err, size_t err_cap)
{
	return manifest_publish_with(info, e, n, put_file, &dir_fd, err, err_cap);
}

int manifest_publish_with(struct manifest_info *info, const struct manifest_entry *e, size_t n,
			  manifest_put_fn put, void *arg, char *err, size_t err_cap)
{
	struct text t = { 0 };
	info->files = n;
	info->records = info->value_bytes = info->key_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		info->records += e[i].records;
		info->value_bytes += e[i].value_bytes;
		info->key_bytes += e[i].key_bytes;
	}
	text_add(&t, "mcwarm-manifest 1\ndump_id %s\nsource %s\nsource_version %s\n",
		 info->dump_id_hex, info->source, info->source_version);
	text_add(&t, "started_unix_ns %" PRId64 "\nfinished_unix_ns %" PRId64 "\n",
		 info->started_unix_ns, info->finished_unix_ns);
	text_add(&t, "files %" PRIu64 "\nrecords %" PRIu64 "\nvalue_bytes %" PRIu64 "\n",
		 info->files, info->records, info->value_bytes);
	/* lines an older reader does not know and skips; populate sizes the destination */
	text_add(&t, "key_bytes %" PRIu64 "\nsource_item_size_max %" PRIu64 "\n", info->key_bytes,
		 info->source_item_size_max);
	for (size_t i = 0; i < n; i++)
		text_add(&t, "chunk %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", e[i].name,
			 e[i].records, e[i].file_bytes, e[i].value_bytes);
	info->crc = mcw_crc32c(0, t.buf, t.len); /* of the body, as the crc32c line says */
	text_add(&t, "crc32c %08x\n", info->crc);
	int ret = put(arg, MANIFEST_NAME, t.buf, t.len);
	if (ret == 0) {
		t.len = 0;
		text_add(&t,
			 "mcwarm-done 1\ndump_id %s\nmanifest_crc32c %08x\nfiles %" PRIu64
			 "\nrecords %" PRIu64 "\n",
			 info->dump_id_hex, info->crc, info->files, info->records);
		text_add(&t, "crc32c %08x\n", mcw_crc32c(0, t.buf, t.len));
		ret = put(arg, DONE_NAME, t.buf, t.len);
	}
	free(t.buf);
	if (ret < 0)
		snprintf(err, err_cap, "cannot write the manifest: %s", strerror(-ret));
	return ret;
}

/* Checks that the last line of text (n bytes, text[n] writable) is "crc32c X" covering the
 * rest; cuts it off. Returns the body's length or -EBADMSG with err set. */
static long text_checked(char *text, size_t n, const char *name, uint32_t *crc_out, char *err,
			 size_t cap)
{
	text[n] = '\0';
	char *last = n > 0 ? memrchr(text, '\n', n - 1) : NULL;
	size_t body = last ? (size_t)(last - text) + 1 : 0;
	unsigned crc;
	if (last == NULL || sscanf(last + 1, "crc32c %8x", &crc) != 1 ||
	    !mcw_crc_matches(crc, mcw_crc32c(0, text, body))) {
		snprintf(err, cap, "%s is damaged (checksum mismatch)", name);
		return -EBADMSG;
	}
	text[body] = '\0';
	*crc_out = crc;
	return (long)body;
}

/* Reads a whole small file into a new buffer (one byte more than the file). */
static long read_small(int dir_fd, const char *name, char **out, char *err, size_t cap)
{
	struct stat sb;
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > (off_t)MANIFEST_TEXT_MAX) {
		close(fd);
		snprintf(err, cap, "%s is not a regular file of sane size", name);
		return -EBADMSG;
	}
	char *buf = malloc((size_t)sb.st_size + 1);
	ASSERT(buf != NULL);
	ssize_t n = pread(fd, buf, (size_t)sb.st_size, 0);
	close(fd);
	if (n != sb.st_size) {
		free(buf);
		snprintf(err, cap, "%s is damaged (checksum mismatch)", name);
		return -EBADMSG;
	}
	*out = buf;
	return (long)n;
}

long manifest_load(int dir_fd, struct manifest_info *info, struct manifest_entry **out, char *err,
		   size_t err_cap)
{
	char *done = NULL, *man = NULL;
	long nd = read_small(dir_fd, DONE_NAME, &done, err, err_cap);
	if (nd < 0)
		return nd;
	long nm = read_small(dir_fd, MANIFEST_NAME, &man, err, err_cap);
	if (nm == -ENOENT) {
		man = NULL;
		nm = 0;
	} else if (nm < 0) {
		free(done);
		return nm;
	}
	long ret = manifest_parse(done, (size_t)nd, man, (size_t)nm, info, out, err, err_cap);
	free(done);
	free(man);
	return ret;
}

long manifest_parse(char *done, size_t done_len, char *man, size_t man_len,
		    struct manifest_info *info, struct manifest_entry **out, char *err,
		    size_t err_cap)
{
	unsigned man_crc = 0;
	uint32_t crc_done, crc_man;
	long ret = text_checked(done, done_len, DONE_NAME, &crc_done, err, err_cap);
	if (ret < 0)
		return ret;
	memset(info, 0, sizeof(*info));
	if (sscanf(done, "mcwarm-done 1\ndump_id %32s\nmanifest_crc32c %8x", info->dump_id_hex,
		   &man_crc) != 2 ||
	    strspn(info->dump_id_hex, "0123456789abcdef") != 32) {
		snprintf(err, err_cap, "DONE has an unknown layout");
		return -EBADMSG;
	}
	if (man == NULL) {
		snprintf(err, err_cap, "DONE is there but %s is missing: the dump is damaged",
			 MANIFEST_NAME);
		return -EBADMSG;
	}
	long body = text_checked(man, man_len, MANIFEST_NAME, &crc_man, err, err_cap);
	if (body < 0)
		return body;
	if (crc_man != man_crc) {
		snprintf(err, err_cap,
			 "DONE and MANIFEST disagree (manifest crc %08x, DONE says %08x)", crc_man,
			 man_crc);
		return -EBADMSG;
	}
	size_t n = 0, cap = 0;
	struct manifest_entry *v = NULL;
	bool same_dump = false;
	for (char *line = strtok(man, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		struct manifest_entry e = { 0 };
		if (sscanf(line, "chunk %63s %" SCNu64 " %" SCNu64 " %" SCNu64, e.name, &e.records,
			   &e.file_bytes, &e.value_bytes) == 4 &&
		    chunk_name_parse(e.name, &e.job, &e.part, &e.crc)) {
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				v = realloc(v, cap * sizeof(*v));
				ASSERT(v != NULL);
			}
			v[n++] = e;
		} else if (strncmp(line, "dump_id ", 8) == 0) {
			same_dump = strcmp(line + 8, info->dump_id_hex) == 0;
		} else {
			if (strncmp(line, "source ", 7) == 0) /* not source_version */
				sscanf(line, "source %299s", info->source);
			sscanf(line, "source_version %31s", info->source_version);
			sscanf(line, "files %" SCNu64, &info->files);
			sscanf(line, "records %" SCNu64, &info->records);
			sscanf(line, "value_bytes %" SCNu64, &info->value_bytes);
			sscanf(line, "key_bytes %" SCNu64, &info->key_bytes);
			sscanf(line, "source_item_size_max %" SCNu64, &info->source_item_size_max);
			sscanf(line, "started_unix_ns %" SCNd64, &info->started_unix_ns);
			sscanf(line, "finished_unix_ns %" SCNd64, &info->finished_unix_ns);
		}
	}
	info->crc = man_crc;
	if (!same_dump) {
		snprintf(err, err_cap, "MANIFEST is not for dump %s, as DONE says",
			 info->dump_id_hex);
		free(v);
		return -EBADMSG;
	}
	if (n != info->files) {
		snprintf(err, err_cap, "MANIFEST lists %zu chunks but says %" PRIu64, n,
			 info->files);
		free(v);
		return -EBADMSG;
	}
	*out = v;
	return (long)n;
}
