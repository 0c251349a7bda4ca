/*
 * test_ring.c: the io_uring layer against the real kernel: setup, registered-buffer
 * O_DIRECT write and read of a real file, socket send/recv, timeouts, full SQ.
 * Skips (77) where the kernel has no io_uring.
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "uring.h"

static struct ur_ring *ring_or_skip(void)
{
	struct ur_ring *r;
	struct ur_ring_opts o = { .sq_entries = 8 };
	int ret = ur_ring_create(&o, &r);
	if (ret == -ENOSYS || ret == -EPERM) {
		fprintf(stderr, "skip: io_uring unavailable here (%s)\n", strerror(-ret));
		exit(77);
	}
	assert_int_equal(ret, 0);
	assert_non_null(ur_ring_features(r));
	return r;
}

static unsigned wait_one(struct ur_ring *r, struct ur_cqe *c)
{
	assert_int_equal(ur_submit_wait(r, 1, 5000), 0);
	return ur_reap(r, c, 1);
}

static void test_fixed_file_io(void **state)
{
	(void)state;
	struct ur_ring *r = ring_or_skip();
	size_t len = 1 << 20;
	uint8_t *buf =
	    mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7);
	struct iovec iov = { buf, 2 * len };
	assert_int_equal(ur_buffers_register(r, &iov, 1), 0);
	char path[] = "/tmp/mcw-test-ring-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	int direct = open(fdpath, O_RDWR | O_DIRECT);
	int wfd = direct >= 0 ? direct : fd;
	struct ur_cqe c;
	assert_int_equal(ur_prep_write_fixed(r, wfd, buf, len, 0, 0, 11), 0);
	assert_int_equal(wait_one(r, &c), 1);
	assert_int_equal(c.user_data, 11);
	assert_int_equal(c.res, (int)len);
	assert_int_equal(ur_prep_read_fixed(r, wfd, buf + len, len, 0, 0, 12), 0);
	assert_int_equal(wait_one(r, &c), 1);
	assert_int_equal(c.res, (int)len);
	assert_memory_equal(buf, buf + len, len);
	assert_int_equal(ur_prep_fsync(r, wfd, true, 13), 0);
	assert_int_equal(wait_one(r, &c), 1);
	assert_int_equal(c.res, 0);
	/* EOF: a read past the end returns 0 */
	assert_int_equal(ur_prep_read_fixed(r, wfd, buf + len, 4096, len, 0, 14), 0);
	assert_int_equal(wait_one(r, &c), 1);
	assert_int_equal(c.res, 0);
	if (direct >= 0)
		close(direct);
	close(fd);
	munmap(buf, 2 * len);
	ur_ring_destroy(r);
}

static void test_socket_and_timeout(void **state)
{
	(void)state;
	struct ur_ring *r = ring_or_skip();
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char in[16] = { 0 };
	struct ur_cqe c;
	assert_int_equal(ur_prep_recv(r, sv[1], in, sizeof(in), 1), 0);
	/* nothing sent yet: the wait times out */
	assert_int_equal(ur_submit_wait(r, 1, 50), -ETIME);
	assert_int_equal(ur_prep_send(r, sv[0], "hello", 5, 2), 0);
	unsigned got = 0;
	int seen_recv = 0, seen_send = 0;
	while (got < 2) {
		assert_int_equal(ur_submit_wait(r, 1, 5000), 0);
		struct ur_cqe cs[4];
		unsigned n = ur_reap(r, cs, 4);
		for (unsigned i = 0; i < n; i++) {
			if (cs[i].user_data == 1) {
				assert_int_equal(cs[i].res, 5);
				seen_recv++;
			} else {
				assert_int_equal(cs[i].user_data, 2);
				assert_int_equal(cs[i].res, 5);
				seen_send++;
			}
		}
		got += n;
	}
	assert_int_equal(seen_recv, 1);
	assert_int_equal(seen_send, 1);
	assert_memory_equal(in, "hello", 5);
	/* peer closed: recv completes with 0 */
	close(sv[0]);
	assert_int_equal(ur_prep_recv(r, sv[1], in, sizeof(in), 3), 0);
	assert_int_equal(wait_one(r, &c), 1);
	assert_int_equal(c.res, 0);
	close(sv[1]);
	ur_ring_destroy(r);
}

static void test_full_sq_flushes(void **state)
{
	(void)state;
	struct ur_ring *r = ring_or_skip();
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* more requests than SQ entries: prep submits what is queued and goes on */
	for (int i = 0; i < 20; i++)
		assert_int_equal(ur_prep_send(r, sv[0], "x", 1, (uint64_t)i), 0);
	unsigned got = 0;
	while (got < 20) {
		assert_int_equal(ur_submit_wait(r, 1, 5000), 0);
		struct ur_cqe cs[32];
		got += ur_reap(r, cs, 32);
	}
	char in[32];
	assert_int_equal(recv(sv[1], in, sizeof(in), 0), 20);
	close(sv[0]);
	close(sv[1]);
	ur_ring_destroy(r);
}

/* The gathering wait: times out with nothing in flight that completes, returns as soon as
 * one completion is there after the gathering time, and collects several sends queued
 * before it (on kernels without min_timeout it is the plain wait: the same answers). */
static void test_gather_wait(void **state)
{
	(void)state;
	struct ur_ring *r = ring_or_skip();
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char in[16] = { 0 };
	assert_int_equal(ur_prep_recv(r, sv[1], in, sizeof(in), 1), 0);
	assert_int_equal(ur_submit_wait_gather(r, 8, 1000, 50), -ETIME);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ur_prep_send(r, sv[0], "ab", 2, (uint64_t)(10 + i)), 0);
	unsigned got = 0;
	bool recv_seen = false;
	while (!recv_seen || got < 4) {
		/* 8 never come: each wait ends after its gathering time with what is there */
		assert_int_equal(ur_submit_wait_gather(r, 8, 1000, 5000), 0);
		struct ur_cqe cs[8];
		unsigned n = ur_reap(r, cs, 8);
		assert_true(n >= 1);
		for (unsigned i = 0; i < n; i++) {
			assert_true(cs[i].res > 0);
			recv_seen |= cs[i].user_data == 1;
		}
		got += n;
	}
	assert_int_equal(got, 4);
	assert_memory_equal(in, "ab", 2);
	close(sv[0]);
	close(sv[1]);
	ur_ring_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed_file_io),
		cmocka_unit_test(test_socket_and_timeout),
		cmocka_unit_test(test_full_sq_flushes),
		cmocka_unit_test(test_gather_wait),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
