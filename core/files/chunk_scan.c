/*
 * chunk_scan.c: mcw_chunk_file_scan (core.h), whole records out of a chunk file for
 * tools and checks. Reads with pread one block at a time; a value that spans blocks is
 * assembled in a buffer that grows to the largest value seen (never the data path).
 * Nothing is allocated from a length the file claims beyond what the file holds: the
 * block buffer is at most the file's size, and a value longer than the file is damage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "chunk_reader.h"
#include "core.h"
#include "crc.h"

struct scan {
	int (*fn)(void *arg, const struct mcw_record *r);
	void *arg;
	uint8_t *val;
	size_t val_cap;
	uint64_t file_bytes; /* no value can be longer */
	bool value_too_long;
	int stopped;
};

static int on_piece(void *arg, const struct chunk_piece *p)
{
	struct scan *s = arg;
	struct mcw_record r = {
		.key = p->key,
		.key_len = p->hdr.key_len,
		.binary_key = p->hdr.flags & CHUNK_REC_F_BINARY_KEY,
		.client_flags = p->hdr.client_flags,
		.expires_at_ms = p->hdr.expires_at_ms,
		.value = p->value,
		.value_len = p->hdr.value_len,
	};
	if (!(p->first && p->last)) { /* spans blocks: assemble */
		if (p->hdr.value_len > s->file_bytes) {
			s->value_too_long = true;
			return s->stopped = -1;
		}
		if (s->val_cap < p->hdr.value_len) {
			free(s->val);
			s->val_cap = p->hdr.value_len;
			s->val = malloc(s->val_cap);
			ASSERT(s->val != NULL);
		}
		memcpy(s->val + p->value_offset, p->value, p->value_len);
		if (!p->last)
			return 0;
		r.value = s->val;
	}
	return s->stopped = s->fn(s->arg, &r);
}

static int problem(char *err, size_t cap, int *first, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int problem(char *err, size_t cap, int *first, const char *fmt, ...)
{
	if (*first == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
		*first = -EBADMSG;
	}
	return *first;
}

int mcw_chunk_file_scan(const char *path, int (*fn)(void *arg, const struct mcw_record *r),
			void *arg, char *err, size_t err_cap)
{
	struct scan s = { .fn = fn, .arg = arg };
	struct chunk_header h;
	struct chunk_footer ft;
	struct stat sb;
	int bad = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		int e = fd < 0 ? errno : EINVAL;
		snprintf(err, err_cap, "%s: cannot open as a regular file", path);
		if (fd >= 0)
			close(fd);
		return -e;
	}
	uint64_t size = (uint64_t)sb.st_size;
	uint8_t page[MCW_HEADER_BYTES];
	ssize_t n = pread(fd, page, sizeof(page), 0);
	if (chunk_header_check(page, n < 0 ? 0 : (size_t)n, &h) != CHUNK_OK) {
		close(fd);
		return problem(err, err_cap, &bad, "%s: bad header", path);
	}
	n = size >= 2 * MCW_ALIGN_BYTES ? pread(fd, page, sizeof(page), (off_t)(size - 4096)) : 0;
	bool footer = chunk_footer_check(page, n < 0 ? 0 : (size_t)n, &ft) == CHUNK_OK &&
		      ft.f.file_bytes == size;
	if (!footer)
		problem(err, err_cap, &bad, "%s: no valid footer (truncated or unfinished)", path);
	uint64_t end = footer ? size - MCW_FOOTER_BYTES : size;
	s.file_bytes = size;
	uint8_t *buf = malloc((size_t)MIN((uint64_t)h.f.block_bytes, size));
	ASSERT(buf != NULL);
	struct chunk_span span = { 0 };
	uint32_t crc = mcw_crc32c(0, &h, sizeof(h));
	uint32_t index = 0;
	for (uint64_t off = MCW_HEADER_BYTES; off < end && s.stopped == 0;
	     off += h.f.block_bytes, index++) {
		size_t want = (size_t)MIN((uint64_t)h.f.block_bytes, end - off);
		n = pread(fd, buf, want, (off_t)off);
		crc = mcw_crc32c(crc, buf, n < 0 ? 0 : (size_t)n);
		struct chunk_block_view v;
		if (n < 0 ||
		    chunk_block_check(buf, (size_t)n, h.f.block_bytes, index, &v) != CHUNK_OK ||
		    chunk_block_walk(&v, &span, on_piece, &s).status != CHUNK_OK) {
			problem(err, err_cap, &bad, "%s: block %u at offset %llu is damaged", path,
				index, (unsigned long long)off);
			chunk_span_lost(&span);
		}
	}
	if (s.value_too_long)
		problem(err, err_cap, &bad, "%s: a record claims a value longer than the file",
			path);
	if (footer && s.stopped == 0 && crc != ft.f.file_crc)
		problem(err, err_cap, &bad, "%s: whole-file checksum mismatch", path);
	free(buf);
	free(s.val);
	close(fd);
	return bad;
}
