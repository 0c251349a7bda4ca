/*
 * dataset.c: see dataset.h. Values are slices of a 2 MiB pseudo-random pool (cheap to
 * produce at GB/s) whose first 8 bytes are replaced by the item number, so no two values
 * of a dataset are equal and a misplaced value is caught.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

#define POOL_BYTES (2u << 20)

static const struct dataset datasets[] = {
	{ "small", 2000000, 16, 48, 50, 300, false, 0, 0, 0, true },
	{ "mixed", 500000, 16, 64, 64, 65536, true, 2, 86400, 7 * 86400, true },
	{ "large", 20000, 16, 32, 256 * 1024, 1024 * 1024, false, 0, 0, 0, true },
	{ "demo", 300000, 12, 60, 20, 8192, true, 3, 86400, 30 * 86400, true },
};

static const struct dataset *cur;
static uint64_t cur_seed;
static char cur_prefix[64];
static uint8_t pool[POOL_BYTES];

uint64_t bench_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

char *bench_put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

const struct dataset *dataset_find(const char *name)
{
	for (size_t i = 0; i < sizeof(datasets) / sizeof(datasets[0]); i++)
		if (strcmp(name, datasets[i].name) == 0)
			return &datasets[i];
	return NULL;
}

const char *dataset_names(void)
{
	return "small|mixed|large|demo";
}

void dataset_init(const struct dataset *ds, uint64_t seed, const char *prefix)
{
	cur = ds;
	cur_seed = seed;
	snprintf(cur_prefix, sizeof(cur_prefix), "%s", prefix);
	for (size_t i = 0; i < POOL_BYTES; i += 8) {
		uint64_t v = bench_mix64(seed ^ (i * 0x2545f4914f6cdd1dull));
		memcpy(pool + i, &v, 8);
	}
}

void item_of(uint64_t i, struct item *it)
{
	const struct dataset *d = cur;
	uint64_t r = bench_mix64(cur_seed * 1000003 + i);
	uint32_t klen = d->key_min + (uint32_t)(r % (d->key_max - d->key_min + 1));
	int n = snprintf(it->key, sizeof(it->key), "%s:%s:%llx:", cur_prefix, d->name,
			 (unsigned long long)i);
	for (uint32_t k = (uint32_t)n; k < klen; k++)
		it->key[k] = "abcdefghijklmnopqrstuvwxyz0123456789"[bench_mix64(r + k) % 36];
	it->key_len = klen > (uint32_t)n ? klen : (uint32_t)n;
	uint64_t r2 = bench_mix64(r);
	if (d->log_uniform) {
		double u = (double)(r2 >> 11) / 9007199254740992.0;
		it->value_len =
		    (uint32_t)exp(log(d->val_min) + u * (log(d->val_max) - log(d->val_min)));
	} else {
		it->value_len = d->val_min + (uint32_t)(r2 % (d->val_max - d->val_min + 1));
	}
	uint64_t r3 = bench_mix64(r2);
	it->value_src = pool + r3 % (POOL_BYTES - it->value_len);
	it->flags = d->random_flags ? (uint32_t)(r3 >> 32) : 0;
	it->ttl = d->ttl_every && i % d->ttl_every == 0
		      ? d->ttl_min + (uint32_t)(bench_mix64(r3) % (d->ttl_max - d->ttl_min + 1))
		      : 0;
	it->tag = i;
}

void item_value(const struct item *it, uint8_t *dst)
{
	memcpy(dst, it->value_src, it->value_len);
	if (it->value_len >= 8)
		memcpy(dst, &it->tag, 8);
}

bool item_index_of_key(const uint8_t *key, uint32_t key_len, uint64_t *i)
{
	size_t plen = strlen(cur_prefix), nlen = strlen(cur->name);
	if (key_len < plen + nlen + 3 || memcmp(key, cur_prefix, plen) != 0 || key[plen] != ':' ||
	    memcmp(key + plen + 1, cur->name, nlen) != 0 || key[plen + 1 + nlen] != ':')
		return false;
	uint64_t v = 0;
	uint32_t p = (uint32_t)(plen + nlen + 2), digits = 0;
	for (; p < key_len && key[p] != ':'; p++, digits++) {
		char c = (char)key[p];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0 || digits >= 16)
			return false;
		v = v * 16 + (uint64_t)d;
	}
	if (digits == 0 || p == key_len)
		return false;
	*i = v;
	return true;
}
