/*
 * dataset.h: the benchmark datasets, generated from a seed. Item i of a dataset is a pure
 * function of (dataset, seed, prefix, i), so a loader can write it and a checker can
 * recompute it from nothing but the key (which carries i in hex).
 */
#ifndef MCW_BENCH_DATASET_H
#define MCW_BENCH_DATASET_H

#include <stdbool.h>
#include <stdint.h>

struct dataset {
	const char *name;
	uint64_t items;
	uint32_t key_min, key_max;
	uint32_t val_min, val_max;
	bool log_uniform;
	unsigned ttl_every; /* every n-th item has a TTL; 0 none */
	uint32_t ttl_min, ttl_max;
	bool random_flags;
};

struct item {
	char key[256];
	uint32_t key_len;
	uint32_t value_len;
	uint32_t flags;
	uint32_t ttl;		  /* relative seconds; 0 never */
	const uint8_t *value_src; /* use item_value() for the bytes */
	uint64_t tag;
};

/* NULL if unknown. */
const struct dataset *dataset_find(const char *name);
const char *dataset_names(void);

/* Prepares the value pool for a seed; call once before item_of. */
void dataset_init(const struct dataset *ds, uint64_t seed, const char *prefix);
void item_of(uint64_t i, struct item *it);
/* The value's bytes into dst (value_len bytes). */
void item_value(const struct item *it, uint8_t *dst);
/* Recovers i from a key made by item_of; false if the key is not one of ours. */
bool item_index_of_key(const uint8_t *key, uint32_t key_len, uint64_t *i);

/* splitmix64's finaliser of x + the golden gamma: a well-mixed 64-bit value. */
uint64_t bench_mix64(uint64_t x);
/* Decimal digits of v at p; returns the end (no snprintf on the hot paths). */
char *bench_put_u64(char *p, uint64_t v);

#endif
