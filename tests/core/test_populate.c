/*
 * test_populate.c: the populator's rules that need no server: the TTL sent for a record
 * (design decision 2) and the largest value a destination stores (decision 6; the exact
 * limit is also checked against a real memcached in test_populate.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "populate_private.h"

#define DAY 86400

static void test_exptime(void **state)
{
	(void)state;
	int64_t now = 1800000000000LL; /* ms */
	int64_t dest_now = 1799999990;
	assert_int_equal(pop_exptime(0, now, 1, dest_now), 0);		    /* never expires: T0 */
	assert_int_equal(pop_exptime(now + 300500, now, 1, dest_now), 300); /* rounds down */
	assert_int_equal(pop_exptime(now + 1999, now, 1, dest_now), 1);
	assert_int_equal(pop_exptime(now + 999, now, 1, dest_now), -1);	   /* < 1 s: expired */
	assert_int_equal(pop_exptime(now - 5000, now, 1, dest_now), -1);   /* already expired */
	assert_int_equal(pop_exptime(now + 30000, now, 60, dest_now), -1); /* below --min-ttl */
	assert_int_equal(pop_exptime(now + 30LL * DAY * 1000, now, 1, dest_now), 30 * DAY);
	/* beyond 30 days: absolute, on the destination's clock */
	assert_int_equal(pop_exptime(now + (30LL * DAY + 1) * 1000, now, 1, dest_now),
			 dest_now + 30 * DAY + 1);
	assert_int_equal(pop_exptime(now + 400LL * DAY * 1000, now, 1, dest_now),
			 dest_now + 400 * DAY);
}

static void test_value_max(void **state)
{
	(void)state;
	/* measured on memcached 1.6.18 -I 1m: 1,048,513 bytes for a 4-byte key, flags 0 */
	assert_int_equal(pop_value_max(1048576, true, 4, 0), 1048513);
	assert_int_equal(pop_value_max(1048576, true, 4, 7), 1048509);	/* flags take 4 */
	assert_int_equal(pop_value_max(1048576, false, 4, 0), 1048521); /* no CAS */
	assert_int_equal(pop_value_max(1048576, true, 250, 0), 1048267);
	assert_int_equal(pop_value_max(10, true, 250, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exptime),
		cmocka_unit_test(test_value_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
