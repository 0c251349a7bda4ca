/*
 * fuzz_populate_file.c: libFuzzer target for populate's path from a chunk file's bytes to
 * records ready to send (pop_walk: block checks, record assembly, every structural bound),
 * without the network: whole records go to a sink that checks them.
 *
 * The input is a chunk file. Its header is checked as populate checks it; its blocks are
 * cut into read windows of 4 to 8 blocks (from the input's length, so windows of every
 * size meet every structure), each copied into a buffer of exactly its length that is
 * freed when the walk moves two windows on, as populate's two read buffers are reused:
 * AddressSanitizer reports any read past a window or into a window given back. Checked:
 * a record's pieces add up to its value length, lie in the windows it may use, and its
 * key is 1 to 250 bytes; the walk ends holding nothing. Checksums are accepted as they
 * come (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) so that the structure is what is fuzzed.
 */
#include <stdlib.h>
#include <string.h>

#include "pop_walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pop_walk walk;

static void check_record(const struct pop_walk_record *r, uint32_t window)
{
	uint64_t sum = 0;
	if (r->hdr.key_len == 0 || r->hdr.key_len > 250 || r->npieces > POP_REC_PIECES_MAX ||
	    r->window0 + 1 < window)
		abort();
	volatile uint8_t sink = r->key[0] ^ r->key[r->hdr.key_len - 1];
	for (uint32_t i = 0; i < r->npieces; i++) {
		const uint8_t *p = r->pieces[i].iov_base;
		size_t n = r->pieces[i].iov_len;
		if (n == 0)
			abort();
		sink ^= p[0] ^ p[n - 1];
		sum += n;
	}
	(void)sink;
	if (sum != r->hdr.value_len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chunk_header h;
	if (chunk_header_check(data, size, &h) != CHUNK_OK || h.f.block_bytes > 64 * 1024)
		return 0;
	uint64_t region = size - MCW_HEADER_BYTES;
	uint64_t nblocks = (region + h.f.block_bytes - 1) / h.f.block_bytes;
	if (nblocks > JOURNAL_BLOCKS_MAX)
		return 0;
	uint8_t applied[JOURNAL_BLOCKS_MAX / 8];
	memset(applied, 0x24, sizeof(applied)); /* blocks 2 and 5 of every 8: applied before */
	struct pop_walk_file f = {
		.block_bytes = h.f.block_bytes,
		.nblocks = (uint32_t)nblocks,
		.window_blocks = 4 + (uint32_t)(size % 5),
		.applied_before = size % 3 == 0 ? applied : NULL,
		.item_size_max = 1024 * 1024,
		.cas_enabled = true,
	};
	pop_walk_begin(&walk, &f);
	uint8_t *bufs[2] = { NULL, NULL };
	uint64_t window_bytes = (uint64_t)f.window_blocks * f.block_bytes;
	for (uint32_t w = 0; w < walk.nwindows; w++) {
		uint64_t off = MCW_HEADER_BYTES + w * window_bytes;
		size_t len = (size_t)(size - off < window_bytes ? size - off : window_bytes);
		free(bufs[w % 2]); /* the window before last: nothing may point into it now */
		bufs[w % 2] = malloc(len);
		memcpy(bufs[w % 2], data + off, len);
		pop_walk_window(&walk, w, bufs[w % 2], len);
		enum pop_walk_event ev;
		while ((ev = pop_walk_next(&walk)) != POP_WALK_WINDOW_DONE) {
			if (ev == POP_WALK_RECORD)
				check_record(&walk.rec, w);
			else if (walk.ev_block > w * f.window_blocks + f.window_blocks)
				abort(); /* an event names a block not walked yet */
		}
	}
	if (pop_walk_holds(&walk))
		abort();
	free(bufs[0]);
	free(bufs[1]);
	return 0;
}
