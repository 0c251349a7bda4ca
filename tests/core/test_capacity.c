/*
 * test_capacity.c: the destination sizing of capacity.c that needs no server: memcached
 * 1.6's slab classes (the table `memcached -vv` prints for the defaults, 1.6.18), the
 * memory a load needs, the largest value an item holds, and the verdicts with their
 * numbers and fixes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capacity.h"

/* memcached 1.6.18 -vv, defaults (-n 48 -f 1.25, slab_chunk_max 512K) */
static const uint64_t classes[] = {
	96,    120,    152,    192,    240,    304,    384,    480,    600,    752,
	944,   1184,   1480,   1856,   2320,   2904,   3632,   4544,   5680,   7104,
	8880,  11104,  13880,  17352,  21696,  27120,  33904,  42384,  52984,  66232,
	82792, 103496, 129376, 161720, 202152, 252696, 315872, 394840, 524288,
};

static struct server_info defaults(void)
{
	return (struct server_info){
		.chunk_size = 48,
		.slab_chunk_max = 512 * 1024,
		.growth_factor_milli = 1250,
		.cas_enabled = true,
		.item_size_max = 1024 * 1024,
		.limit_maxbytes = 64 * 1024 * 1024,
	};
}

static void test_slab_classes(void **state)
{
	(void)state;
	struct server_info d = defaults();
	uint64_t prev = 0;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		assert_int_equal(cap_slab_chunk(&d, prev + 1), classes[i]);
		assert_int_equal(cap_slab_chunk(&d, classes[i]), classes[i]);
		prev = classes[i];
	}
	/* larger than the largest chunk: chained from whole largest chunks */
	assert_int_equal(cap_slab_chunk(&d, 524289), 2 * 524288);
}

static void test_memory_need(void **state)
{
	(void)state;
	struct server_info d = defaults();
	/* one item of a 10-byte key and a 10,000-byte value: 48 + 11 + 10,002 + 8 */
	assert_int_equal(cap_item_bytes(&d, 1, 10, 10000), 10069);
	d.cas_enabled = false;
	assert_int_equal(cap_item_bytes(&d, 1, 10, 10000), 10061);
	d.cas_enabled = true;
	/* 10,069 bytes go in 11,104-byte chunks, 94 to a 1 MiB page */
	assert_int_equal(cap_memory_need(&d, 94, 94 * 10069), 1024 * 1024);
	assert_int_equal(cap_memory_need(&d, 95, 95 * 10069), 2 * 1024 * 1024);
	assert_int_equal(cap_memory_need(&d, 0, 0), 0);
}

static void test_verdicts(void **state)
{
	(void)state;
	struct server_info d = defaults();
	struct mcw_copy_allow none = { 0 }, shrink = { .shrink = true },
			      smaller = { .smaller_items = true };
	char err[1024] = "";
	/* 10,000 items of 10 KB: about 107 MiB, into -m 64 */
	struct cap_load big = { .what = "the dump's MANIFEST",
				.items = 10000,
				.item_bytes = cap_item_bytes(&d, 10000, 100000, 100000000) };
	assert_int_equal(cap_check(&d, "dst:1", &big, &none, err, sizeof(err)), -MCW_ETOOSMALL);
	assert_int_equal(mcw_exit_code(-MCW_ETOOSMALL), MCW_EXIT_TOO_SMALL);
	assert_non_null(strstr(err, "10000 items"));
	assert_non_null(strstr(err, "-m 64"));
	assert_non_null(strstr(err, "--allow-shrink"));
	assert_int_equal(cap_check(&d, "dst:1", &big, &shrink, err, sizeof(err)), 0);
	d.limit_maxbytes = 128 * 1024 * 1024;
	assert_int_equal(cap_check(&d, "dst:1", &big, &none, err, sizeof(err)), 0);
	/* the source stores items up to 2 MiB, the destination up to 1 MiB */
	struct cap_load wide = {
		.what = "x", .items = 1, .item_bytes = 100, .item_size_max = 2 * 1024 * 1024
	};
	assert_int_equal(cap_check(&d, "dst:1", &wide, &none, err, sizeof(err)), -EOPNOTSUPP);
	assert_int_equal(mcw_exit_code(-EOPNOTSUPP), MCW_EXIT_UNAVAILABLE);
	assert_non_null(strstr(err, "-I 2m"));
	assert_int_equal(cap_check(&d, "dst:1", &wide, &smaller, err, sizeof(err)), 0);
	wide.item_size_max = 0; /* unknown: an older MANIFEST */
	assert_int_equal(cap_check(&d, "dst:1", &wide, &none, err, sizeof(err)), 0);
}

static void test_out_of_memory(void **state)
{
	(void)state;
	const char *msg = "SERVER_ERROR out of memory storing object";
	char text[512];
	assert_true(cap_is_out_of_memory(msg, strlen(msg)));
	assert_false(cap_is_out_of_memory("SERVER_ERROR object too large for cache", 39));
	/* -M: the first answer stops */
	assert_true(cap_oom_stops(false, "dst:1", 1, text, sizeof(text)));
	assert_non_null(strstr(text, "-M"));
	/* an evicting server: a stuck slab class, after a few */
	assert_false(cap_oom_stops(true, "dst:1", CAP_OOM_ERRORS_MAX - 1, text, sizeof(text)));
	assert_true(cap_oom_stops(true, "dst:1", CAP_OOM_ERRORS_MAX, text, sizeof(text)));
}

/* The largest value a destination stores (decision 6; the exact limit is also checked
 * against a real memcached in test_populate.py). */
static void test_value_max(void **state)
{
	(void)state;
	/* measured on memcached 1.6.18 -I 1m: 1,048,513 bytes for a 4-byte key, flags 0 */
	assert_int_equal(cap_value_max(1048576, true, 4, 0), 1048513);
	assert_int_equal(cap_value_max(1048576, true, 4, 7), 1048509);	/* flags take 4 */
	assert_int_equal(cap_value_max(1048576, false, 4, 0), 1048521); /* no CAS */
	assert_int_equal(cap_value_max(1048576, true, 250, 0), 1048267);
	assert_int_equal(cap_value_max(10, true, 250, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slab_classes),  cmocka_unit_test(test_value_max),
		cmocka_unit_test(test_memory_need),   cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
