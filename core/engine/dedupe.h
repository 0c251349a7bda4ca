/*
 * dedupe.h: the key reader's set of keys already listed, in a fixed table from the
 * budget. An item is identified by its CAS (unique per stored item while CAS is on) or,
 * when the server has no CAS for it, by a 64-bit hash of its key. When the table is
 * full, later items are kept without the check and counted: a duplicate then costs one
 * extra record, absorbed at populate by add mode; no key is ever dropped for it.
 */
#ifndef MCW_DEDUPE_H
#define MCW_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dedupe {
	uint64_t *slots;
	uint64_t nslots;
	uint64_t used;
	uint64_t used_max;  /* load factor limit */
	uint64_t unchecked; /* items kept without a check because the table was full */
};

enum dedupe_result { DEDUPE_NEW, DEDUPE_DUPLICATE, DEDUPE_UNCHECKED };

/* Uses mem (bytes / 8 slots), which must be zeroed (fresh budget memory is). */
void dedupe_init(struct dedupe *d, void *mem, size_t bytes);

/* An item's identity: its CAS, or a hash of its key when the server gave no CAS. */
uint64_t dedupe_id(uint64_t cas, const uint8_t *key, size_t key_len);
/* Starts loading the slot of id into the cache; call a few items ahead of the check. */
void dedupe_prefetch(const struct dedupe *d, uint64_t id);
enum dedupe_result dedupe_check(struct dedupe *d, uint64_t id);

/* Keys the table can hold before it stops checking. */
uint64_t dedupe_capacity(const struct dedupe *d);

/* 64-bit hash of a byte string (not cryptographic; well mixed). */
uint64_t hash64(const uint8_t *p, size_t n);

#endif
