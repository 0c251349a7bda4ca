/*
 * keyspool.c: key chunk files. Written once by the key reader, read once by a worker.
 * Every key's length is checked at load so iteration needs no further checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "crc.h"
#include "keyspool.h"
#include "mcw_limits.h"

static_assert(sizeof(struct keychunk_header) == 4096, "key chunk header is one page");
#define KEYCHUNK_MAGIC "MCWKEYS1"

void keychunk_builder_reset(struct keychunk_builder *b, uint8_t *buf, size_t cap)
{
	ASSERT(cap >= sizeof(struct keychunk_header) + MCW_KEY_RECORD_HEADER + MCP_KEY_MAX &&
	       ((uintptr_t)buf % MCW_ALIGN_BYTES) == 0);
	b->buf = buf;
	b->cap = MIN(cap, (size_t)MCW_KEYCHUNK_BYTES);
	b->used = sizeof(struct keychunk_header);
	b->count = 0;
}

bool keychunk_add(struct keychunk_builder *b, const uint8_t *key, size_t key_len, uint8_t flags)
{
	ASSERT(key_len >= 1 && key_len <= MCP_KEY_MAX);
	size_t need = MCW_KEY_RECORD_HEADER + key_len;
	if (b->count == MCW_KEYCHUNK_KEYS_MAX || b->used + need > b->cap)
		return false;
	uint8_t *p = b->buf + b->used;
	uint16_t len = (uint16_t)key_len;
	memcpy(p, &len, 2);
	p[2] = flags;
	p[3] = 0;
	memcpy(p + MCW_KEY_RECORD_HEADER, key, key_len);
	b->used += need;
	b->count++;
	return true;
}

size_t keychunk_finish(struct keychunk_builder *b, const uint8_t dump_id[16], uint32_t seq,
		       uint16_t group)
{
	struct keychunk_header *h = (struct keychunk_header *)b->buf;
	size_t total = ROUND_UP(b->used, MCW_ALIGN_BYTES);
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, KEYCHUNK_MAGIC, 8);
	h->version = 1;
	h->group = group;
	h->header_bytes = sizeof(*h);
	memcpy(h->dump_id, dump_id, 16);
	h->seq = seq;
	h->key_count = b->count;
	h->payload_bytes = (uint32_t)(b->used - sizeof(*h));
	h->payload_crc = mcw_crc32c(0, b->buf + sizeof(*h), h->payload_bytes);
	h->crc = mcw_crc32c(0, h, offsetof(struct keychunk_header, crc));
	memset(b->buf + b->used, 0, total - b->used);
	return total;
}

void keychunk_name(char out[32], uint32_t seq)
{
	snprintf(out, 32, "keys-%06u.mck", seq);
}

static int corrupt(char *err, size_t cap, uint32_t seq, const char *what)
{
	snprintf(err, cap, "key chunk keys-%06u.mck is corrupt: %s", seq, what);
	return -EIO;
}

int keychunk_load(int dir_fd, uint32_t seq, const uint8_t dump_id[16], uint8_t *buf, size_t cap,
		  struct keychunk_view *out, char *err, size_t err_cap)
{
	char name[32];
	keychunk_name(name, seq);
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int ret = -errno;
		snprintf(err, err_cap, "cannot open key chunk %s: %s", name, strerror(-ret));
		return ret;
	}
	ssize_t n = pread(fd, buf, cap, 0);
	int e = errno;
	close(fd);
	if (n < 0) {
		snprintf(err, err_cap, "cannot read key chunk %s: %s", name, strerror(e));
		return -e;
	}
	const struct keychunk_header *h = (const struct keychunk_header *)buf;
	if ((size_t)n < sizeof(*h))
		return corrupt(err, err_cap, seq, "shorter than its header");
	if (memcmp(h->magic, KEYCHUNK_MAGIC, 8) != 0 ||
	    !mcw_crc_matches(h->crc, mcw_crc32c(0, h, offsetof(struct keychunk_header, crc))))
		return corrupt(err, err_cap, seq, "header checksum");
	if (h->seq != seq || memcmp(h->dump_id, dump_id, 16) != 0)
		return corrupt(err, err_cap, seq, "belongs to another dump or position");
	if (h->payload_bytes > (size_t)n - sizeof(*h))
		return corrupt(err, err_cap, seq, "truncated payload");
	const uint8_t *p = buf + sizeof(*h);
	if (!mcw_crc_matches(h->payload_crc, mcw_crc32c(0, p, h->payload_bytes)))
		return corrupt(err, err_cap, seq, "payload checksum");
	uint32_t pos = 0, count = 0;
	while (pos < h->payload_bytes) {
		uint16_t len;
		if (pos + MCW_KEY_RECORD_HEADER > h->payload_bytes)
			return corrupt(err, err_cap, seq, "record header past the end");
		memcpy(&len, p + pos, 2);
		if (len == 0 || len > MCP_KEY_MAX ||
		    pos + MCW_KEY_RECORD_HEADER + len > h->payload_bytes)
			return corrupt(err, err_cap, seq, "key length");
		pos += MCW_KEY_RECORD_HEADER + len;
		count++;
	}
	if (count != h->key_count)
		return corrupt(err, err_cap, seq, "key count");
	out->payload = p;
	out->payload_bytes = h->payload_bytes;
	out->count = count;
	out->seq = seq;
	out->group = h->group;
	return 0;
}

bool keychunk_next(const struct keychunk_view *v, uint32_t *pos, const uint8_t **key,
		   uint16_t *key_len, uint8_t *flags)
{
	if (*pos >= v->payload_bytes)
		return false;
	const uint8_t *p = v->payload + *pos;
	memcpy(key_len, p, 2);
	*flags = p[2];
	*key = p + MCW_KEY_RECORD_HEADER;
	*pos += MCW_KEY_RECORD_HEADER + *key_len;
	return true;
}
