/*
 * chunk_reader.c: verification and record walking for chunk files.
 *
 * A block is walked in two passes: the first checks every record boundary against the
 * payload length and the span carried from the previous block, the second emits pieces.
 * So a block with a valid crc but an impossible structure (a writer bug, a crafted file)
 * is reported whole and never half-applied.
 */
#include <string.h>

#include "base.h"
#include "chunk_reader.h"
#include "crc.h"

const char *chunk_status_name(enum chunk_status s)
{
	switch (s) {
	case CHUNK_OK:
		return "ok";
	case CHUNK_ERR_SHORT:
		return "truncated";
	case CHUNK_ERR_MAGIC:
		return "bad magic";
	case CHUNK_ERR_VERSION:
		return "unsupported version";
	case CHUNK_ERR_CRC:
		return "checksum mismatch";
	case CHUNK_ERR_FIELD:
		return "invalid field";
	}
	return "unknown";
}

enum chunk_status chunk_header_check(const void *page, size_t len, struct chunk_header *out)
{
	if (len < sizeof(*out))
		return CHUNK_ERR_SHORT;
	memcpy(out, page, sizeof(*out));
	if (memcmp(out->f.magic, CHUNK_MAGIC, 8) != 0)
		return CHUNK_ERR_MAGIC;
	if (!mcw_crc_matches(out->crc, mcw_crc32c(0, out, offsetof(struct chunk_header, crc))))
		return CHUNK_ERR_CRC;
	if (out->f.version_major != CHUNK_VERSION_MAJOR)
		return CHUNK_ERR_VERSION;
	if (out->f.header_bytes != MCW_HEADER_BYTES || out->f.block_bytes < 2 * MCW_ALIGN_BYTES ||
	    out->f.block_bytes % MCW_ALIGN_BYTES != 0 || out->f.block_bytes > 64 * MIB)
		return CHUNK_ERR_FIELD;
	return CHUNK_OK;
}

enum chunk_status chunk_footer_check(const void *page, size_t len, struct chunk_footer *out)
{
	if (len < sizeof(*out))
		return CHUNK_ERR_SHORT;
	memcpy(out, page, sizeof(*out));
	if (memcmp(out->f.magic, CHUNK_FOOTER_MAGIC, 8) != 0)
		return CHUNK_ERR_MAGIC;
	if (!mcw_crc_matches(out->crc, mcw_crc32c(0, out, offsetof(struct chunk_footer, crc))))
		return CHUNK_ERR_CRC;
	if (out->f.file_bytes < MCW_HEADER_BYTES + MCW_FOOTER_BYTES ||
	    out->f.file_bytes % MCW_ALIGN_BYTES != 0 ||
	    out->f.last_block_bytes % MCW_ALIGN_BYTES != 0)
		return CHUNK_ERR_FIELD;
	return CHUNK_OK;
}

enum chunk_status chunk_block_check(const uint8_t *buf, size_t len, uint32_t block_bytes,
				    uint32_t expect_index, struct chunk_block_view *out)
{
	if (len < MCW_BLOCK_HEADER_BYTES)
		return CHUNK_ERR_SHORT;
	memcpy(&out->h, buf, sizeof(out->h));
	if (out->h.magic != CHUNK_BLOCK_MAGIC)
		return CHUNK_ERR_MAGIC;
	uint32_t payload = out->h.payload_bytes;
	if (payload > block_bytes - MCW_BLOCK_HEADER_BYTES)
		return CHUNK_ERR_FIELD;
	if (len < MCW_BLOCK_HEADER_BYTES + (size_t)payload)
		return CHUNK_ERR_SHORT;
	out->payload = buf + MCW_BLOCK_HEADER_BYTES;
	out->payload_cap = block_bytes - MCW_BLOCK_HEADER_BYTES;
	uint32_t crc = mcw_crc32c(0, out->payload, payload);
	crc = mcw_crc32c(crc, &out->h, offsetof(struct chunk_block_header, crc));
	if (!mcw_crc_matches(out->h.crc, crc))
		return CHUNK_ERR_CRC;
	if (out->h.index != expect_index || out->h.cont_bytes > payload)
		return CHUNK_ERR_FIELD;
	return CHUNK_OK;
}

/* First pass: is every record boundary inside the payload, and does the block agree with
 * the span it continues? A block whose last value goes on is full, as the writer leaves
 * it: so a value spans no more blocks than its length needs, and a continuation chain
 * cannot be made long with short blocks (the populator relies on it, pop_walk.c). */
static bool block_structure_ok(const struct chunk_block_view *b, const struct chunk_span *span)
{
	const struct chunk_block_header *h = &b->h;
	uint32_t payload = h->payload_bytes;
	bool continues = h->flags & CHUNK_BLOCK_F_CONTINUES;
	uint64_t pos = h->cont_bytes;

	if ((h->flags & ~CHUNK_BLOCK_F_CONTINUES) || (continues && payload != b->payload_cap))
		return false;
	if (span->active) {
		uint32_t expect = MIN(span->value_left, payload);
		if (h->cont_bytes != expect)
			return false;
		if (span->value_left > payload) /* the value goes on past this block */
			return continues && h->record_count == 0;
	} else if (h->cont_bytes > 0 && !span->lost) {
		return false; /* continues nothing */
	} else if (h->cont_bytes == payload && h->record_count == 0) {
		return true; /* the middle of a value whose record began in a lost block */
	}
	for (uint32_t i = 0; i < h->record_count; i++) {
		struct chunk_record_header rh;
		if (pos + sizeof(rh) > payload)
			return false;
		memcpy(&rh, b->payload + pos, sizeof(rh));
		uint64_t head = sizeof(rh) + (uint64_t)rh.key_len;
		if (rh.key_len == 0 || rh.key_len > MCP_KEY_MAX || rh.value_len > CHUNK_VALUE_MAX ||
		    rh.reserved != 0 || (rh.flags & ~CHUNK_REC_F_BINARY_KEY) ||
		    pos + head > payload)
			return false;
		uint64_t end = pos + head + rh.value_len;
		if (end > payload) /* spans: only the last record, and the flag says so */
			return i + 1 == h->record_count && continues;
		pos = end;
	}
	return pos == payload && !continues;
}

enum chunk_status chunk_cursor_open(struct chunk_cursor *c, const struct chunk_block_view *b,
				    struct chunk_span *span, uint32_t *orphan_bytes)
{
	*orphan_bytes = 0;
	if (!block_structure_ok(b, span)) {
		chunk_span_lost(span);
		return CHUNK_ERR_FIELD;
	}
	c->b = b;
	c->span = span;
	c->next_record = 0;
	c->cont_pending = span->active;
	c->pos = b->h.cont_bytes;
	if (!span->active)
		*orphan_bytes = b->h.cont_bytes;
	/* an orphaned middle block leaves the span lost: the next block continues the orphan */
	span->lost = !span->active && b->h.cont_bytes > 0 && (b->h.flags & CHUNK_BLOCK_F_CONTINUES);
	return CHUNK_OK;
}

bool chunk_cursor_next(struct chunk_cursor *c, struct chunk_piece *p)
{
	const struct chunk_block_header *h = &c->b->h;
	struct chunk_span *span = c->span;
	if (c->cont_pending) {
		c->cont_pending = false;
		*p = (struct chunk_piece){
			.first = false,
			.hdr = span->hdr,
			.key = span->key,
			.value = c->b->payload,
			.value_len = h->cont_bytes,
			.value_offset = span->value_offset,
		};
		span->value_left -= h->cont_bytes;
		span->value_offset += h->cont_bytes;
		p->last = span->value_left == 0;
		if (p->last)
			span->active = false;
		else
			c->next_record = h->record_count; /* a middle block: nothing else */
		return true;
	}
	if (c->next_record == h->record_count)
		return false;
	c->next_record++;
	*p = (struct chunk_piece){ .first = true };
	memcpy(&p->hdr, c->b->payload + c->pos, sizeof(p->hdr));
	p->key = c->b->payload + c->pos + sizeof(p->hdr);
	p->value = p->key + p->hdr.key_len;
	uint32_t in_block = h->payload_bytes - (c->pos + (uint32_t)sizeof(p->hdr) + p->hdr.key_len);
	p->value_len = MIN(p->hdr.value_len, in_block);
	p->last = p->value_len == p->hdr.value_len;
	if (!p->last) {
		span->active = true;
		span->hdr = p->hdr;
		memcpy(span->key, p->key, p->hdr.key_len);
		span->value_left = p->hdr.value_len - p->value_len;
		span->value_offset = p->value_len;
	}
	c->pos += (uint32_t)sizeof(p->hdr) + p->hdr.key_len + p->value_len;
	return true;
}

struct chunk_walk_result chunk_block_walk(const struct chunk_block_view *b, struct chunk_span *span,
					  chunk_piece_fn fn, void *arg)
{
	struct chunk_walk_result res = { .status = CHUNK_OK };
	struct chunk_cursor c;
	struct chunk_piece p;
	res.status = chunk_cursor_open(&c, b, span, &res.orphan_bytes);
	if (res.status != CHUNK_OK)
		return res;
	while (chunk_cursor_next(&c, &p)) {
		res.records_begun += p.first;
		res.records_ended += p.last;
		if ((res.stopped = fn(arg, &p)) != 0)
			break;
	}
	return res;
}
