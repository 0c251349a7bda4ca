/*
 * chunk_reader.h: decoding chunk files (chunk_format.h) from caller buffers.
 *
 * Every length in a file is untrusted: checks come before use, nothing is read past the
 * bytes the caller says it has, nothing is allocated from a size found in a file.
 * Decoders return a closed enum. Records come out as pieces: a record whose value spans
 * blocks arrives as one piece per block, so values are never copied to be reassembled.
 */
#ifndef MCW_CHUNK_READER_H
#define MCW_CHUNK_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_format.h"
#include "mcw_limits.h"

enum chunk_status {
	CHUNK_OK = 0,
	CHUNK_ERR_SHORT,   /* fewer bytes than the structure needs (truncated) */
	CHUNK_ERR_MAGIC,   /* not a chunk structure at this offset */
	CHUNK_ERR_VERSION, /* a major version this reader does not know */
	CHUNK_ERR_CRC,	   /* checksum mismatch */
	CHUNK_ERR_FIELD,   /* a field out of range or inconsistent with another */
};

const char *chunk_status_name(enum chunk_status s);

/* Checks a header page; on CHUNK_OK *out is a copy. */
enum chunk_status chunk_header_check(const void *page, size_t len, struct chunk_header *out);
/* Checks a footer page; on CHUNK_OK *out is a copy. */
enum chunk_status chunk_footer_check(const void *page, size_t len, struct chunk_footer *out);

struct chunk_block_view {
	struct chunk_block_header h;
	const uint8_t *payload; /* points into the caller's buffer */
	uint32_t payload_cap;	/* the most payload a block of this file holds */
};

/* Checks the block at buf (len bytes available from its start): magic, index, lengths
 * within block_bytes and len, crc32c. The record structure is checked when a cursor is
 * opened on it. */
enum chunk_status chunk_block_check(const uint8_t *buf, size_t len, uint32_t block_bytes,
				    uint32_t expect_index, struct chunk_block_view *out);

/* A record, or the part of its value that lies in one block. */
struct chunk_piece {
	bool first; /* the record begins here: hdr and key are set */
	bool last;  /* the record ends here */
	struct chunk_record_header hdr;
	const uint8_t *key;    /* first piece: in the block; later pieces: in the span */
	const uint8_t *value;  /* this piece of the value, in the block */
	uint32_t value_len;    /* bytes in this piece */
	uint32_t value_offset; /* where this piece sits in the whole value */
};

/* Carries a record whose value goes on into the next block. Zero it before block 0; after
 * a block that could not be used, chunk_span_lost() it: the next block's continuation is
 * then skipped as orphaned. A continuation anywhere else (block 0, or after a block that
 * ended its records) is a structure error. */
struct chunk_span {
	bool active;
	bool lost; /* the block before was unusable: a continuation is expected and orphaned */
	uint32_t value_left;
	uint32_t value_offset;
	struct chunk_record_header hdr;
	uint8_t key[MCP_KEY_MAX];
};

static inline void chunk_span_lost(struct chunk_span *span)
{
	span->active = false;
	span->lost = true;
}

/* A resumable walk over one block's pieces: open validates the block against the span
 * (nothing is emitted from a block that fails), next yields one piece at a time. */
struct chunk_cursor {
	const struct chunk_block_view *b;
	struct chunk_span *span;
	uint32_t pos;	      /* payload offset of the next record */
	uint32_t next_record; /* records of this block emitted so far */
	bool cont_pending;    /* the continuation of span is still to be emitted */
};

enum chunk_status chunk_cursor_open(struct chunk_cursor *c, const struct chunk_block_view *b,
				    struct chunk_span *span, uint32_t *orphan_bytes);
/* false when the block has no more pieces. */
bool chunk_cursor_next(struct chunk_cursor *c, struct chunk_piece *p);

/* Returns 0 to go on, anything else to stop the walk (returned as is). */
typedef int (*chunk_piece_fn)(void *arg, const struct chunk_piece *p);

struct chunk_walk_result {
	enum chunk_status status; /* CHUNK_ERR_FIELD: structure invalid, nothing was emitted */
	int stopped;		  /* non-zero value returned by fn */
	uint32_t orphan_bytes;	  /* continuation skipped: its record began in a lost block */
	uint32_t records_begun;
	uint32_t records_ended;
};

/* Validates the block's record structure against span, then emits its pieces in order.
 * A block that fails validation emits nothing and resets span. */
struct chunk_walk_result chunk_block_walk(const struct chunk_block_view *b, struct chunk_span *span,
					  chunk_piece_fn fn, void *arg);

#endif
