/*
 * test_checkpoint.c: the dump's checkpoint through real files: what is written is what a
 * later load sees, a torn last line is dropped, a damaged line anywhere else or a job past
 * the listing makes the whole checkpoint untrusted, and a missing one says so.
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
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "tmp_dir.h"

static const char *ID = "0123456789abcdef0123456789abcdef";
static struct checkpoint cp; /* large: 128 KiB of bitmap */
static char dir[64];
static int dir_fd = -1;

static void fresh_dir(void)
{
	dir_fd = tmp_dir_make(dir, sizeof(dir), "ckpt");
}

static void cleanup_dir(void)
{
	tmp_dir_remove(dir, dir_fd);
	dir_fd = -1;
}

static void write_file(const char *text)
{
	int fd = openat(dir_fd, CHECKPOINT_NAME, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char *read_file(void)
{
	static char buf[4096];
	int fd = openat(dir_fd, CHECKPOINT_NAME, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void test_round_trip(void **state)
{
	(void)state;
	char err[256];
	fresh_dir();
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), -ENOENT);
	assert_int_equal(
	    checkpoint_create(&cp, dir_fd, ID, "10.0.0.5:11211", 1700000000, 4242, 0xdeadbeef), 0);
	assert_int_equal(checkpoint_job_done(&cp, 3), 0);
	assert_int_equal(checkpoint_job_done(&cp, 0), 0);
	assert_int_equal(checkpoint_keys_done(&cp, 9), 0);
	assert_int_equal(checkpoint_job_done(&cp, 8), 0);
	assert_int_equal(checkpoint_job_done(&cp, CHECKPOINT_JOBS_MAX), -ERANGE);
	checkpoint_close(&cp);

	memset(&cp, 0x5a, sizeof(cp));
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), 0);
	assert_string_equal(cp.dump_id_hex, ID);
	assert_string_equal(cp.source, "10.0.0.5:11211");
	assert_int_equal(cp.source_started_s, 1700000000);
	assert_int_equal(cp.source_pid, 4242);
	assert_int_equal(cp.options_crc, 0xdeadbeef);
	assert_true(cp.keys_done);
	assert_int_equal(cp.chunks, 9);
	assert_int_equal(cp.jobs_done, 3);
	assert_int_equal(cp.job_end, 9);
	for (uint32_t j = 0; j < 12; j++)
		assert_int_equal(checkpoint_job_is_done(&cp, j), j == 0 || j == 3 || j == 8);
	/* appends go on after a load */
	assert_int_equal(checkpoint_job_done(&cp, 5), 0);
	checkpoint_close(&cp);
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), 0);
	assert_true(checkpoint_job_is_done(&cp, 5));
	checkpoint_close(&cp);
	cleanup_dir();
}

static void test_torn_and_damaged_lines(void **state)
{
	(void)state;
	char err[256];
	fresh_dir();
	assert_int_equal(checkpoint_create(&cp, dir_fd, ID, "h:1", 1, 2, 3), 0);
	assert_int_equal(checkpoint_job_done(&cp, 1), 0);
	assert_int_equal(checkpoint_job_done(&cp, 2), 0);
	checkpoint_close(&cp);
	char good[4096];
	snprintf(good, sizeof(good), "%s", read_file());

	/* a torn last line (a crash during the append) is dropped, the rest kept */
	char torn[4200];
	snprintf(torn, sizeof(torn), "%sjob 7 c=12", good);
	write_file(torn);
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), 0);
	assert_true(checkpoint_job_is_done(&cp, 2));
	assert_false(checkpoint_job_is_done(&cp, 7));
	checkpoint_close(&cp);
	assert_string_equal(read_file(), good); /* cut off the file */

	/* one changed byte in a middle line: untrusted as a whole */
	char bad[4096];
	snprintf(bad, sizeof(bad), "%s", good);
	char *j1 = strstr(bad, "job 1");
	assert_non_null(j1);
	j1[4] = '4';
	write_file(bad);
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "damaged"));

	/* a well-sealed line that names a job past the listing: untrusted too */
	assert_int_equal(checkpoint_create(&cp, dir_fd, ID, "h:1", 1, 2, 3), 0);
	assert_int_equal(checkpoint_job_done(&cp, 5), 0);
	assert_int_equal(checkpoint_keys_done(&cp, 4), 0);
	checkpoint_close(&cp);
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "job 5"));

	/* empty (the first line never made it): untrusted */
	write_file("");
	assert_int_equal(checkpoint_load(&cp, dir_fd, err, sizeof(err)), -EBADMSG);
	cleanup_dir();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_torn_and_damaged_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
