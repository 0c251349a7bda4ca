/*
 * test_net.c: net_recv_gather over a socket pair: what a short read gathers comes whole and
 * in order, a large read never waits, and an end of stream or failure after a short read
 * is left for the next call (the caller sees the bytes first, then the end).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "net.h"

struct writer {
	int fd;
	const char *text;
	unsigned pieces; /* written in this many writes, 100 us apart */
	bool close_after;
};

static void *write_pieces(void *arg)
{
	struct writer *w = arg;
	size_t len = strlen(w->text), at = 0;
	for (unsigned i = 0; i < w->pieces; i++) {
		size_t n = (len - at) / (w->pieces - i);
		assert_int_equal(write(w->fd, w->text + at, n), (ssize_t)n);
		at += n;
		nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
	}
	if (w->close_after)
		shutdown(w->fd, SHUT_WR);
	return NULL;
}

/* Reads everything w writes through net_recv_gather until the end of the stream. */
static size_t read_all(struct writer *w, int rfd, char *buf, size_t cap, size_t enough,
		       unsigned *calls)
{
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_pieces, w), 0);
	size_t len = 0;
	*calls = 0;
	for (;;) {
		ssize_t n = net_recv_gather(rfd, buf + len, cap - len, enough, 2000);
		assert_true(n >= 0);
		(*calls)++;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	pthread_join(t, NULL);
	return len;
}

static void test_short_writes_arrive_whole_and_in_order(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char text[4001];
	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = (char)('a' + i % 26);
	text[sizeof(text) - 1] = '\0';
	struct writer w = { sv[1], text, 40, true };
	char buf[8192];
	unsigned calls;
	size_t len = read_all(&w, sv[0], buf, sizeof(buf), 1024, &calls);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(buf, text, len);
	/* the end comes as its own call, after the bytes before it */
	assert_true(calls >= 2);
	close(sv[0]);
	close(sv[1]);
}

static void test_enough_bytes_return_at_once_and_a_full_buffer_too(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "0123456789", 10), 10);
	char buf[16];
	/* enough reached: returned as is */
	assert_int_equal(net_recv_gather(sv[0], buf, sizeof(buf), 4, 1000000), 10);
	assert_memory_equal(buf, "0123456789", 10);
	/* the buffer full: nothing more fits, so no wait */
	assert_int_equal(write(sv[1], "abcdef", 6), 6);
	assert_int_equal(net_recv_gather(sv[0], buf, 3, 64, 1000000), 3);
	assert_int_equal(net_recv_gather(sv[0], buf + 3, 3, 3, 1000000), 3);
	assert_memory_equal(buf, "abcdef", 6);
	close(sv[1]);
	assert_int_equal(net_recv_gather(sv[0], buf, sizeof(buf), 4, 1000), 0);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_writes_arrive_whole_and_in_order),
		cmocka_unit_test(test_enough_bytes_return_at_once_and_a_full_buffer_too),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
