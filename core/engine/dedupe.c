/*
 * dedupe.c: open addressing with linear probing over 64-bit identities; 0 marks an empty
 * slot. Load is kept at or below 3/4 so probes stay short. Every check is a cache miss
 * into a table of tens of MiB, so callers prefetch a few items ahead (keyreader.c).
 */
#include <string.h>

#include "base.h"
#include "dedupe.h"

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

uint64_t hash64(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0x100000001b3ull);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
	}
	uint64_t tail = 0;
	memcpy(&tail, p + i, n - i);
	return mix64(h ^ tail ^ ((uint64_t)(n - i) << 56));
}

void dedupe_init(struct dedupe *d, void *mem, size_t bytes)
{
	memset(d, 0, sizeof(*d));
	d->slots = mem;
	d->nslots = bytes / sizeof(uint64_t);
	d->used_max = d->nslots / 4 * 3;
}

uint64_t dedupe_capacity(const struct dedupe *d)
{
	return d->used_max;
}

uint64_t dedupe_id(uint64_t cas, const uint8_t *key, size_t key_len)
{
	/* cas and key hashes live in separate halves of the identity space */
	uint64_t id = cas != 0 ? cas & ~(1ull << 63) : hash64(key, key_len) | (1ull << 63);
	return id == 0 ? 1 : id;
}

/* Any table size, no power of two needed: the high half of a 64x64 product. */
static uint64_t home_slot(const struct dedupe *d, uint64_t id)
{
	return (uint64_t)(((unsigned __int128)mix64(id) * d->nslots) >> 64);
}

void dedupe_prefetch(const struct dedupe *d, uint64_t id)
{
	__builtin_prefetch(&d->slots[home_slot(d, id)], 1);
}

enum dedupe_result dedupe_check(struct dedupe *d, uint64_t id)
{
	ASSERT_HOT(id != 0);
	for (uint64_t i = home_slot(d, id);; i = i + 1 == d->nslots ? 0 : i + 1) {
		if (d->slots[i] == id)
			return DEDUPE_DUPLICATE;
		if (d->slots[i] == 0) {
			if (d->used >= d->used_max) {
				d->unchecked++;
				return DEDUPE_UNCHECKED;
			}
			d->slots[i] = id;
			d->used++;
			return DEDUPE_NEW;
		}
	}
}
