/*
 * test_crc.c: crc32c against the standard check value and known vectors, chaining, and
 * combination against direct computation over random splits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc.h"

static void test_check_values(void **state)
{
	(void)state;
	assert_int_equal(mcw_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(mcw_crc32c(0, "", 0), 0);
	uint8_t zeros[32] = { 0 };
	assert_int_equal(mcw_crc32c(0, zeros, 32), 0x8a9136aau); /* RFC 3720 B.4 */
	uint8_t ones[32];
	memset(ones, 0xff, 32);
	assert_int_equal(mcw_crc32c(0, ones, 32), 0x62a8ab43u);
	/* chaining equals one pass */
	assert_int_equal(mcw_crc32c(mcw_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void test_combine(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	uint8_t *buf = malloc(n);
	uint32_t x = 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245 + 12345;
		buf[i] = (uint8_t)(x >> 16);
	}
	for (int t = 0; t < 300; t++) {
		x = x * 1103515245 + 12345;
		size_t a = (x >> 8) % n;
		x = x * 1103515245 + 12345;
		size_t b = (x >> 8) % (n - a + 1);
		uint32_t whole = mcw_crc32c(0, buf, a + b);
		uint32_t c =
		    mcw_crc32c_combine(mcw_crc32c(0, buf, a), mcw_crc32c(0, buf + a, b), b);
		assert_int_equal(whole, c);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_values),
		cmocka_unit_test(test_combine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
