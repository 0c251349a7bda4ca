/*
 * test_dedupe.c: the key reader's duplicate table: CAS identity, key-hash identity when
 * there is no CAS, and the full table keeping (not dropping) what it cannot check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dedupe.h"

static void test_cas_and_keys(void **state)
{
	(void)state;
	size_t bytes = (1 << 20) + 24; /* not a power of two: any size works */
	void *mem = calloc(1, bytes);
	struct dedupe d;
	dedupe_init(&d, mem, bytes);
	uint64_t cap = dedupe_capacity(&d);
	assert_int_equal(cap, ((1 << 20) + 24) / 8 / 4 * 3);
	for (uint64_t cas = 1; cas <= 50000; cas++)
		assert_int_equal(dedupe_check(&d, dedupe_id(cas, (const uint8_t *)"k", 1)),
				 DEDUPE_NEW);
	for (uint64_t cas = 1; cas <= 50000; cas++)
		assert_int_equal(dedupe_check(&d, dedupe_id(cas, (const uint8_t *)"other", 5)),
				 DEDUPE_DUPLICATE);
	/* no CAS: the key decides; the same key with a new CAS is a new item version */
	assert_int_equal(dedupe_check(&d, dedupe_id(0, (const uint8_t *)"alpha", 5)), DEDUPE_NEW);
	assert_int_equal(dedupe_check(&d, dedupe_id(0, (const uint8_t *)"alpha", 5)),
			 DEDUPE_DUPLICATE);
	assert_int_equal(dedupe_check(&d, dedupe_id(0, (const uint8_t *)"alphb", 5)), DEDUPE_NEW);
	/* fill up: items past capacity are kept unchecked, never reported as duplicates */
	uint64_t unchecked = 0;
	for (uint64_t cas = 100000; cas < 100000 + cap; cas++) {
		enum dedupe_result r = dedupe_check(&d, dedupe_id(cas, (const uint8_t *)"x", 1));
		assert_int_not_equal(r, DEDUPE_DUPLICATE);
		unchecked += r == DEDUPE_UNCHECKED;
	}
	assert_true(unchecked > 0);
	assert_int_equal(d.unchecked, unchecked);
	free(mem);
}

static void test_hash_spread(void **state)
{
	(void)state;
	/* similar keys must not collide in 64 bits */
	char key[32];
	uint64_t seen[4096];
	for (int i = 0; i < 4096; i++) {
		int n = snprintf(key, sizeof(key), "user:%08d", i);
		seen[i] = hash64((const uint8_t *)key, (size_t)n);
		for (int j = 0; j < i; j++)
			assert_true(seen[j] != seen[i]);
	}
	assert_true(hash64((const uint8_t *)"a", 1) != hash64((const uint8_t *)"a\0", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cas_and_keys),
		cmocka_unit_test(test_hash_spread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
