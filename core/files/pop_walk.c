/*
 * pop_walk.c: populate's walk over a chunk file (pop_walk.h).
 *
 * Bounds, so that no file, however crafted, can make the walk hold more than it has:
 *  1. A record is assembled only if its value fits span_value_max: (k - 2) full payloads
 *     where k is the smaller of the blocks per read window and POP_REC_PIECES_MAX. Since
 *     a block whose last record goes on is full (chunk_reader.c refuses any other), such
 *     a record spans at most k - 1 blocks: at most two consecutive windows, and fewer
 *     pieces than rec can hold. Larger ones are skipped (TOO_LARGE).
 *  2. Should a record still need more pieces or a third window, it is dropped as damaged
 *     (RECORD_BAD): never an assertion, never a stall waiting for a buffer it holds.
 *  3. A record lost after its first block was walked un-marks that block, so the block
 *     is not journaled as applied and a pass after a repair sends the record.
 */
#include <string.h>

#include "base.h"
#include "populate_private.h"
#include "pop_walk.h"

void pop_walk_begin(struct pop_walk *w, const struct pop_walk_file *f)
{
	ASSERT(f->window_blocks >= 4 && f->block_bytes >= 2 * MCW_ALIGN_BYTES);
	ASSERT(f->nblocks <= JOURNAL_BLOCKS_MAX);
	memset(w, 0, sizeof(*w));
	w->f = *f;
	w->nwindows = (f->nblocks + f->window_blocks - 1) / f->window_blocks;
	uint32_t k = MIN(f->window_blocks, (uint32_t)POP_REC_PIECES_MAX);
	w->span_value_max = (uint64_t)(k - 2) * CHUNK_PAYLOAD_MAX(f->block_bytes);
}

void pop_walk_window(struct pop_walk *w, uint32_t window, const uint8_t *data, size_t len)
{
	ASSERT(!w->in_window && window == w->next_window && window < w->nwindows);
	w->window = window;
	w->next_window = window + 1;
	w->data = data;
	w->len = len;
	w->in_window = true;
	w->cursor_open = false;
	w->blk = window * w->f.window_blocks;
}

/* The record in assembly is lost: 1 if there was one. */
static uint32_t drop(struct pop_walk *w)
{
	if (!w->active)
		return 0;
	w->active = false;
	bitmap_clear(w->good, w->rec.first_block); /* bound 3 */
	return 1;
}

static enum pop_walk_event record_bad(struct pop_walk *w, const char *why)
{
	w->ev_block = w->rec.first_block;
	w->ev_why = why;
	drop(w);
	return POP_WALK_RECORD_BAD;
}

/* Opens the cursor on the current block; false with *ev set if it is unusable. */
static bool block_open(struct pop_walk *w, enum pop_walk_event *ev)
{
	uint32_t bb = w->f.block_bytes;
	uint64_t off = (uint64_t)(w->blk - w->window * w->f.window_blocks) * bb;
	size_t avail = w->len > off ? (size_t)MIN((uint64_t)bb, w->len - off) : 0;
	enum chunk_status st = chunk_block_check(w->data + off, avail, bb, w->blk, &w->view);
	uint32_t orphan = 0;
	if (st == CHUNK_OK)
		st = chunk_cursor_open(&w->cur, &w->view, &w->span, &orphan);
	if (st == CHUNK_OK) {
		bitmap_set(w->good, w->blk);
		return true;
	}
	chunk_span_lost(&w->span); /* what continues from here is orphaned */
	w->ev_block = w->blk;
	w->ev_status = st;
	w->ev_lost = drop(w);
	*ev = st == CHUNK_ERR_SHORT ? POP_WALK_BLOCK_MISSING : POP_WALK_BLOCK_BAD;
	return false;
}

/* Takes one piece; true with *ev set when it makes an event. */
static bool take_piece(struct pop_walk *w, const struct chunk_piece *pc, enum pop_walk_event *ev)
{
	if (pc->first) {
		ASSERT(!w->active); /* chunk_reader: a record begins only after a span ends */
		w->records_begun++;
		if (w->f.applied_before && bitmap_get(w->f.applied_before, w->blk))
			return false; /* sent by an earlier pass */
		uint64_t vmax = cap_value_max(w->f.item_size_max, w->f.cas_enabled, pc->hdr.key_len,
					      pc->hdr.client_flags);
		if (pc->hdr.value_len > MIN(vmax, w->span_value_max)) {
			w->ev_block = w->blk;
			*ev = POP_WALK_TOO_LARGE;
			return true;
		}
		w->active = true;
		w->rec.hdr = pc->hdr;
		w->rec.key = pc->key;
		w->rec.first_block = w->blk;
		w->rec.window0 = w->window;
		w->rec.npieces = 0;
	} else if (!w->active) {
		return false;
	}
	if (pc->value_len > 0) {
		if (w->rec.npieces == POP_REC_PIECES_MAX) {
			*ev = record_bad(w, "its value is cut into more pieces than a record has");
			return true;
		}
		w->rec.pieces[w->rec.npieces++] =
		    (struct iovec){ (void *)pc->value, pc->value_len };
	}
	if (!pc->last)
		return false;
	w->active = false;
	*ev = POP_WALK_RECORD;
	return true;
}

static enum pop_walk_event window_end(struct pop_walk *w)
{
	bool last = w->window + 1 == w->nwindows;
	if (w->active && last)
		return record_bad(w, "its value goes on past the last block of the file");
	if (w->active && w->rec.window0 < w->window)
		return record_bad(w, "its value spans more than two read windows");
	w->in_window = false;
	return POP_WALK_WINDOW_DONE;
}

enum pop_walk_event pop_walk_next(struct pop_walk *w)
{
	ASSERT(w->in_window);
	uint32_t end = MIN(w->f.nblocks, (w->window + 1) * w->f.window_blocks);
	for (;;) {
		enum pop_walk_event ev;
		if (w->blk == end)
			return window_end(w);
		if (!w->cursor_open) {
			if (!block_open(w, &ev)) {
				w->blk++;
				return ev;
			}
			w->cursor_open = true;
		}
		struct chunk_piece pc;
		if (!chunk_cursor_next(&w->cur, &pc)) {
			w->cursor_open = false;
			w->blk++;
			continue;
		}
		if (take_piece(w, &pc, &ev))
			return ev;
	}
}
