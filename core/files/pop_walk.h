/*
 * pop_walk.h: populate's walk over one chunk file, window by window: every block checked
 * before use, records assembled from their pieces, every structural bound applied.
 *
 * This is the whole path from the bytes of a file (written by another host, so
 * untrusted even when every checksum holds) to records ready to send; populate's worker
 * feeds it windows read from disk, the populate_file fuzz target feeds it windows cut
 * from its input. A record comes out as iovecs into the window buffers (never copied),
 * and only when every piece of it lies in checked blocks of at most two consecutive
 * windows (the worker has two read buffers).
 *
 * The walk is a resumable iterator: pop_walk_next() returns one event at a time, and the
 * caller must take a POP_WALK_RECORD's record (w->rec) before calling it again.
 */
#ifndef MCW_POP_WALK_H
#define MCW_POP_WALK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "chunk_reader.h"
#include "journal.h"
#include "mcw_limits.h"

/* POP_REC_PIECES_MAX (mcw_limits.h): pieces of one record, the block it begins in and full
 * continuation blocks (docs/format.md: a block whose last record goes on is full), within
 * two read windows. A record is placed in one batch whole, so no more than a batch holds;
 * with our 256 KiB blocks that is a 512 MiB value (memcached -I 512m); larger ones are
 * skipped, counted as too large. */

struct pop_walk_file {
	uint32_t block_bytes;	       /* from the checked header */
	uint32_t nblocks;	       /* blocks to walk */
	uint32_t window_blocks;	       /* blocks per read window (at least 4) */
	const uint8_t *applied_before; /* blocks an earlier pass applied (NULL: none) */
	uint64_t item_size_max;	       /* the destination's, and whether it keeps CAS: */
	bool cas_enabled;	       /* the largest value it stores (cap_value_max) */
};

struct pop_walk_record {
	struct chunk_record_header hdr;
	const uint8_t *key;
	uint32_t first_block; /* block it begins in */
	uint32_t window0;     /* window it begins in (file windows, from 0) */
	uint32_t npieces;     /* value pieces (a record with an empty value has none) */
	struct iovec pieces[POP_REC_PIECES_MAX];
};

enum pop_walk_event {
	POP_WALK_WINDOW_DONE,	/* every block of the window is walked: give the next one */
	POP_WALK_RECORD,	/* w->rec is whole: send it */
	POP_WALK_BLOCK_BAD,	/* block w->ev_block is damaged (w->ev_status): skipped */
	POP_WALK_BLOCK_MISSING, /* block w->ev_block is cut off (truncated file): skipped */
	POP_WALK_TOO_LARGE,	/* a record larger than the destination or a read window takes,
				   beginning in block w->ev_block: skipped */
	POP_WALK_RECORD_BAD,	/* a record that breaks a bound (w->ev_why), beginning in block
				   w->ev_block: dropped */
};

struct pop_walk {
	struct pop_walk_file f;
	uint32_t nwindows;
	/* the window being walked */
	uint32_t window;
	const uint8_t *data;
	size_t len;
	bool in_window;
	uint32_t blk;
	bool cursor_open;
	struct chunk_block_view view;
	struct chunk_cursor cur;
	struct chunk_span span;
	uint32_t next_window;
	/* the record being assembled; pieces of a record not being assembled (skipped,
	 * dropped) are passed over */
	bool active;
	struct pop_walk_record rec;
	uint64_t span_value_max; /* the largest value two read windows and rec always hold */
	/* blocks walked whole: every record beginning in them was sent or skipped on purpose */
	uint8_t good[JOURNAL_BLOCKS_MAX / 8];
	/* the last event's details */
	uint32_t ev_block;
	uint32_t ev_lost; /* BLOCK_BAD, BLOCK_MISSING: records lost with it (one in assembly) */
	enum chunk_status ev_status;
	const char *ev_why;
	/* counts */
	uint32_t records_begun;
};

/* Starts a file; f->window_blocks >= 4 and f->block_bytes a checked header's. */
void pop_walk_begin(struct pop_walk *w, const struct pop_walk_file *f);

/* Gives the walk its next window (windows in order from 0): len bytes at data, fewer than
 * a whole window where the file was cut short. */
void pop_walk_window(struct pop_walk *w, uint32_t window, const uint8_t *data, size_t len);

/* The next event of the window being walked. */
enum pop_walk_event pop_walk_next(struct pop_walk *w);

/* Whether block i was walked whole (a record lost with a later block un-marks the block it
 * began in, so that a repair pass sends it). */
static inline bool pop_walk_block_good(const struct pop_walk *w, uint32_t i)
{
	return bitmap_get(w->good, i);
}

/* A record in assembly points into the window just walked: keep its buffer. */
static inline bool pop_walk_holds(const struct pop_walk *w)
{
	return w->active;
}

/* File offset of block i. */
static inline uint64_t pop_walk_block_offset(const struct pop_walk *w, uint32_t i)
{
	return MCW_HEADER_BYTES + (uint64_t)i * w->f.block_bytes;
}

#endif
