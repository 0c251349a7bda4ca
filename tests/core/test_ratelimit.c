/*
 * test_ratelimit.c: token buckets (core/net/ratelimit.c) over simulated time, so no assertion
 * depends on how fast this machine is: the rate a pipe reaches over a long run (woken on
 * time or late), the burst after an idle moment (two batches at most), byte debts charged
 * after the fact, batch sizes under a limit, limits changed while running, and the limits
 * file read again when it changes (malformed, gone, back).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base.h"
#include "ratelimit.h"

#define T0_NS	  (1000 * NS_PER_SEC) /* simulated clock start (0 means "never taken") */
#define BATCH_MAX 512
#define MSG_BYTES 512
/* A pipe wakes at most once a millisecond and its bucket holds two batches: one pipe
 * cannot go faster than two full batches per millisecond, whatever the limit says. */
#define PIPE_OPS_MAX (2.0 * BATCH_MAX * 1000)

/* Runs one pipe for secs simulated seconds: a batch of the size the bucket allows goes
 * whenever take says 0, else the clock jumps to the wake time, late_pct percent late.
 * Returns the requests sent. */
static uint64_t run_ops(struct rate_bucket *b, int64_t start_ns, double secs, unsigned late_pct)
{
	int64_t now = start_ns, end = start_ns + (int64_t)(secs * NS_PER_SEC);
	uint64_t sent = 0;
	while (now < end) {
		unsigned n = rate_bucket_batch(b, BATCH_MAX);
		int64_t wait = rate_bucket_take(b, n, 0, now);
		if (wait == 0) {
			sent += n;
			continue;
		}
		assert_true(wait >= 1000000); /* wakes at most every millisecond */
		now += wait + wait * late_pct / 100;
	}
	return sent;
}

static void test_no_limit(void **state)
{
	(void)state;
	struct rate_bucket b;
	rate_bucket_init(&b, NULL);
	assert_int_equal(rate_bucket_batch(&b, BATCH_MAX), BATCH_MAX);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(rate_bucket_take(&b, 512, 1 << 20, T0_NS), 0);
	rate_bucket_charge(&b, 1ull << 40);
	assert_int_equal(rate_bucket_take(&b, 512, 0, T0_NS), 0);

	/* limits that are all zero: no limit either, and no byte debt */
	struct rate_limits l;
	rate_limits_init(&l, 0, 0, 4, NULL);
	assert_false(rate_limits_active(&l));
	rate_bucket_init(&b, &l);
	assert_int_equal(rate_bucket_batch(&b, BATCH_MAX), BATCH_MAX);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(rate_bucket_take(&b, 512, 1 << 20, T0_NS + i), 0);
		rate_bucket_charge(&b, 1 << 30);
	}
}

static void test_ops_rate_over_time(void **state)
{
	(void)state;
	static const struct {
		uint64_t ops_per_s;
		unsigned shares;
		double secs;
	} c[] = {
		{ 100000, 2, 10 }, /* 50 per batch, one batch per ms */
		{ 10, 1, 200 },	   /* the smallest batch (8) every 0.8 s */
		{ 1000000, 4, 5 }, /* 250 per batch */
		{ 4000000, 1, 2 }, /* above what one pipe can reach (see pipe_max) */
		{ 2500, 3, 60 },   /* shares that do not divide the rate */
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		static const unsigned late_pct[] = { 0, 50, 150 };
		for (size_t k = 0; k < ARRAY_LEN(late_pct); k++) {
			unsigned late = late_pct[k];
			struct rate_limits l;
			struct rate_bucket b;
			rate_limits_init(&l, c[i].ops_per_s, 0, c[i].shares, NULL);
			assert_true(rate_limits_active(&l));
			rate_bucket_init(&b, &l);
			uint64_t batch = rate_bucket_batch(&b, BATCH_MAX);
			double rate = (double)c[i].ops_per_s / c[i].shares;
			double share = MIN(rate, PIPE_OPS_MAX) * c[i].secs;
			uint64_t sent = run_ops(&b, T0_NS, c[i].secs, late);
			/* never above the share (plus the first batch and one bucket's worth) */
			if ((double)sent > share + 3.0 * (double)batch ||
			    (late == 0 && (double)sent < share - 2.0 * (double)batch))
				fail_msg(
				    "%llu ops/s over %u shares, %u%% late: sent %llu in %.0f s, "
				    "share %.0f (batch %llu)",
				    (unsigned long long)c[i].ops_per_s, c[i].shares, late,
				    (unsigned long long)sent, c[i].secs, share,
				    (unsigned long long)batch);
			/* a pipe woken late sends two batches at once, so waking less than one
			 * batch interval late costs almost nothing (below the pipe's ceiling) */
			if (late == 50 && rate < PIPE_OPS_MAX / 2 && (double)sent < 0.95 * share)
				fail_msg("%llu ops/s: late wake-ups lost too much: %llu of %.0f",
					 (unsigned long long)c[i].ops_per_s,
					 (unsigned long long)sent, share);
		}
	}
}

static void test_burst_after_idle(void **state)
{
	(void)state;
	struct rate_limits l;
	struct rate_bucket b;
	rate_limits_init(&l, 64000, 0, 1, NULL);
	rate_bucket_init(&b, &l);
	unsigned n = rate_bucket_batch(&b, BATCH_MAX);
	assert_int_equal(n, 64);
	/* the first batch goes at once, the second waits for its tokens: 1 ms */
	assert_int_equal(rate_bucket_take(&b, n, 0, T0_NS), 0);
	int64_t wait = rate_bucket_take(&b, n, 0, T0_NS);
	assert_true(wait >= 1000000 && wait <= 1000000 + 1000);
	/* after a minute of silence the bucket holds two batches, not a minute's worth */
	int64_t now = T0_NS + 60 * NS_PER_SEC;
	assert_int_equal(rate_bucket_take(&b, n, 0, now), 0);
	assert_int_equal(rate_bucket_take(&b, n, 0, now), 0);
	wait = rate_bucket_take(&b, n, 0, now);
	assert_true(wait > 0);
	/* half the wait is not enough, the whole wait is */
	assert_true(rate_bucket_take(&b, n, 0, now + wait / 2) > 0);
	assert_int_equal(rate_bucket_take(&b, n, 0, now + wait), 0);
}

static void test_byte_debt(void **state)
{
	(void)state;
	struct rate_limits l;
	struct rate_bucket b;
	rate_limits_init(&l, 0, MIB, 1, NULL);
	assert_true(rate_limits_active(&l));
	rate_bucket_init(&b, &l);
	/* a get's size is known only from its reply: charged after the batch went */
	assert_int_equal(rate_bucket_take(&b, 512, 0, T0_NS), 0);
	rate_bucket_charge(&b, 10 * MIB);
	int64_t wait = rate_bucket_take(&b, 512, 0, T0_NS + 1);
	/* ten seconds of debt at 1 MiB/s */
	assert_true(wait > 9 * NS_PER_SEC && wait < 11 * NS_PER_SEC);
	assert_true(rate_bucket_take(&b, 512, 0, T0_NS + 1 + wait / 2) > 0);
	assert_int_equal(rate_bucket_take(&b, 512, 0, T0_NS + 1 + wait), 0);

	/* over a long run the charged bytes stay within the rate plus one value */
	rate_bucket_init(&b, &l);
	int64_t now = T0_NS, end = T0_NS + 30 * NS_PER_SEC;
	uint64_t charged = 0;
	const uint64_t value = 100 * KIB;
	while (now < end) {
		wait = rate_bucket_take(&b, 1, 0, now);
		if (wait > 0) {
			now += wait;
			continue;
		}
		rate_bucket_charge(&b, value);
		charged += value;
	}
	double allowed = 30.0 * (double)MIB;
	if ((double)charged > allowed + 2.0 * (double)value ||
	    (double)charged < allowed - 2.0 * (double)value)
		fail_msg("charged %llu bytes in 30 s at 1 MiB/s", (unsigned long long)charged);
}

static void test_batch_size(void **state)
{
	(void)state;
	static const struct {
		uint64_t ops_per_s;
		unsigned shares, max, want;
	} c[] = {
		{ 0, 1, 512, 512 },	  /* no ops limit */
		{ 1000000, 4, 512, 250 }, /* a thousandth of the share per second */
		{ 1000000, 1, 512, 512 }, /* never above max */
		{ 1000000, 1, 100, 100 }, { 10, 1, 512, 8 }, /* never below RATELIMIT_BATCH_MIN */
		{ 7999, 1, 512, 8 },	  { 9000, 1, 512, 9 },
		{ 9000, 1, 4, 4 }, /* max wins over the minimum */
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		struct rate_limits l;
		struct rate_bucket b;
		rate_limits_init(&l, c[i].ops_per_s, 0, c[i].shares, NULL);
		rate_bucket_init(&b, &l);
		unsigned got = rate_bucket_batch(&b, c[i].max);
		if (got != c[i].want)
			fail_msg("%llu ops/s, %u shares, max %u: batch %u, want %u",
				 (unsigned long long)c[i].ops_per_s, c[i].shares, c[i].max, got,
				 c[i].want);
	}
	/* shares 0 means one */
	struct rate_limits l;
	rate_limits_init(&l, 100000, 0, 0, NULL);
	assert_int_equal(l.shares, 1);
}

static void test_limits_change_while_running(void **state)
{
	(void)state;
	struct rate_limits l;
	struct rate_bucket b;
	rate_limits_init(&l, 10000, 0, 1, NULL);
	rate_bucket_init(&b, &l);
	uint64_t slow = run_ops(&b, T0_NS, 10, 0);
	/* the main thread raises the limit: the same bucket picks it up */
	atomic_store(&l.ops_per_s, 100000);
	uint64_t fast = run_ops(&b, T0_NS + 10 * NS_PER_SEC, 10, 0);
	assert_true(slow <= 100000 + 3 * 10 && slow >= 100000 - 2 * 10);
	assert_true(fast <= 1000000 + 3 * 100 && fast >= 1000000 - 2 * 100);
	/* and lifted altogether */
	atomic_store(&l.ops_per_s, 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(rate_bucket_take(&b, 512, 0, T0_NS + 21 * NS_PER_SEC), 0);
}

/* ---- the limits file ---- */

static char dir[64], path[128];
static int64_t mtime_s = 1700000000;

/* Writes the file with a new modification time (the poll compares times, and two writes
 * within one clock tick would otherwise look alike). */
static void write_limits(const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	struct timespec ts[2] = { { mtime_s, 0 }, { mtime_s, 0 } };
	mtime_s++;
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static void test_limits_file(void **state)
{
	(void)state;
	char msg[MSG_BYTES];
	snprintf(dir, sizeof(dir), "/tmp/mcw-test-ratelimit-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/limits", dir);

	struct rate_limits l;
	rate_limits_init(&l, 777, 0, 2, path);
	assert_true(rate_limits_active(&l)); /* a file may set limits later */
	/* not there yet: the command-line limits hold */
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), 0);
	assert_int_equal(atomic_load(&l.ops_per_s), 777);

	write_limits("# set by the operator\nmax-ops = 5000\n\n  max-bytes = 2M  # two\n");
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), 1);
	assert_int_equal(atomic_load(&l.ops_per_s), 5000);
	assert_int_equal(atomic_load(&l.bytes_per_s), 2 * MIB);
	assert_non_null(strstr(msg, "5000 ops/s"));
	assert_non_null(strstr(msg, path));
	/* unchanged: not read again */
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), 0);

	/* a missing line means no limit of that kind */
	write_limits("max-bytes = 1G\n");
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), 1);
	assert_int_equal(atomic_load(&l.ops_per_s), 0);
	assert_int_equal(atomic_load(&l.bytes_per_s), GIB);
	assert_non_null(strstr(msg, "no ops limit"));

	/* malformed: the limits stay, the message names the line */
	static const char *const bad[] = {
		"max-ops = 10\nmax-opps = 5\n",
		"max-ops = lots\n",
		"max-ops 10\n",
		"max-ops = -1\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		write_limits(bad[i]);
		assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), -EINVAL);
		assert_int_equal(atomic_load(&l.ops_per_s), 0);
		assert_int_equal(atomic_load(&l.bytes_per_s), GIB);
		char where[160];
		snprintf(where, sizeof(where), "%s:%d:", path, i == 0 ? 2 : 1);
		if (strstr(msg, where) == NULL)
			fail_msg("\"%s\": message \"%s\" does not name %s", bad[i], msg, where);
	}

	/* gone: said once, the limits stay; back: read again */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), -ENOENT);
	assert_non_null(strstr(msg, "is gone"));
	assert_int_equal(atomic_load(&l.bytes_per_s), GIB);
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), 0);
	write_limits("max-ops = 300\n");
	assert_int_equal(rate_limits_poll(&l, msg, sizeof(msg)), 1);
	assert_int_equal(atomic_load(&l.ops_per_s), 300);
	assert_int_equal(atomic_load(&l.bytes_per_s), 0);

	/* a bucket sees the file's limits at its next batch: 300 / 2 shares */
	struct rate_bucket b;
	rate_bucket_init(&b, &l);
	uint64_t sent = run_ops(&b, T0_NS, 100, 0);
	assert_true(sent <= 15000 + 3 * 8 && sent >= 15000 - 2 * 8);

	rate_limits_poll_log(&l); /* unchanged: nothing to say */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_limit),
		cmocka_unit_test(test_ops_rate_over_time),
		cmocka_unit_test(test_burst_after_idle),
		cmocka_unit_test(test_byte_debt),
		cmocka_unit_test(test_batch_size),
		cmocka_unit_test(test_limits_change_while_running),
		cmocka_unit_test(test_limits_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
