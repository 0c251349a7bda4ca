/*
 * net.h: TCP connections to memcached servers, outside the io_uring data path: connect
 * with a timeout, and blocking request/response exchanges (stats, version, the key
 * dump) with a deadline on every wait.
 */
#ifndef MCW_NET_H
#define MCW_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct hostport {
	char host[256];
	uint16_t port;
	char text[300]; /* as given, for messages */
};

/* "host:port" or "[v6addr]:port". 0 or -EINVAL. */
int hostport_parse(const char *s, struct hostport *out);

/* Connects (TCP_NODELAY, blocking mode afterwards). Returns the fd or -errno; on failure
 * err explains it for an operator. */
int net_connect(const struct hostport *hp, int timeout_ms, char *err, size_t err_cap);

/* Sets the receive timeout used by net_recv (SO_RCVTIMEO). */
int net_set_recv_timeout(int fd, int timeout_ms);

int net_send_all(int fd, const void *buf, size_t len);
/* recv with the socket's timeout: bytes, 0 on EOF, -ETIMEDOUT, or -errno. */
ssize_t net_recv(int fd, void *buf, size_t cap);

/* Sends req and reads until is_complete(buf, len, &reply_len) says the reply is whole.
 * Returns the reply length, -ETIMEDOUT, -EPIPE on EOF, -EMSGSIZE if cap is too small. */
ssize_t net_exchange(int fd, const char *req, char *buf, size_t cap,
		     bool (*is_complete)(const char *buf, size_t len, size_t *reply_len));

#endif
