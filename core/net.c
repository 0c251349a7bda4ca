/*
 * net.c: blocking socket helpers with deadlines. Used for set-up exchanges and the key
 * dump reader; the value data path goes through io_uring instead.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "base.h"
#include "net.h"

int hostport_parse(const char *s, struct hostport *out)
{
	const char *colon;
	size_t host_len;
	memset(out, 0, sizeof(*out));
	snprintf(out->text, sizeof(out->text), "%s", s);
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -EINVAL;
		host_len = (size_t)(close - s - 1);
		memcpy(out->host, s + 1, MIN(host_len, sizeof(out->host) - 1));
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s)
			return -EINVAL;
		host_len = (size_t)(colon - s);
		if (host_len >= sizeof(out->host))
			return -EINVAL;
		memcpy(out->host, s, host_len);
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535 || colon[1] == '\0')
		return -EINVAL;
	out->port = (uint16_t)port;
	return 0;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int ret = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (ret < 0 && errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ret = poll(&p, 1, timeout_ms);
		if (ret == 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		int soerr = 0;
		socklen_t l = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
		if (ret < 0 || soerr != 0) {
			int e = ret < 0 ? errno : soerr;
			close(fd);
			return -e;
		}
	} else if (ret < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int net_connect(const struct hostport *hp, int timeout_ms, char *err, size_t err_cap)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
	struct addrinfo *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", hp->port);
	int gai = getaddrinfo(hp->host, port, &hints, &res);
	if (gai != 0) {
		snprintf(err, err_cap, "cannot resolve %s: %s (check the host name)", hp->host,
			 gai_strerror(gai));
		return -EHOSTUNREACH;
	}
	int fd = -ENOENT;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = connect_one(ai, timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, err_cap,
			 "cannot connect to %s: %s (is memcached running there and reachable?)",
			 hp->text, fd == -ETIMEDOUT ? "timed out" : strerror(-fd));
	}
	return fd;
}

int net_set_recv_timeout(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

int net_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t net_recv(int fd, void *buf, size_t cap)
{
	for (;;) {
		ssize_t n = recv(fd, buf, cap, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	}
}

ssize_t net_exchange(int fd, const char *req, char *buf, size_t cap,
		     bool (*is_complete)(const char *buf, size_t len, size_t *reply_len))
{
	int ret = net_send_all(fd, req, strlen(req));
	if (ret < 0)
		return ret;
	size_t len = 0, reply_len = 0;
	while (!is_complete(buf, len, &reply_len)) {
		if (len == cap)
			return -EMSGSIZE;
		ssize_t n = net_recv(fd, buf + len, cap - len);
		if (n < 0)
			return n;
		if (n == 0)
			return -EPIPE;
		len += (size_t)n;
	}
	return (ssize_t)reply_len;
}
