/*
 * net.c: connections to memcached and blocking socket helpers with deadlines. Used for
 * set-up exchanges and the key dump reader; the value data path goes through io_uring
 * instead. A connection is TLS when its side says so (tls.c handshakes it and the
 * helpers here go through the session), and authenticated right after connecting when
 * the side has an --auth-file (memcached -Y: a `set` whose data is "user password").
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "base.h"
#include "net.h"
#include "tls.h"

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

static int tcp_connect(const struct hostport *hp, int timeout_ms, char *err, size_t err_cap)
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
	struct tls_conn *t = tls_conn_of(fd);
	if (t != NULL)
		return tls_send_all(t, buf, len);
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
	struct tls_conn *t = tls_conn_of(fd);
	if (t != NULL)
		return tls_recv(t, buf, cap);
	for (;;) {
		ssize_t n = recv(fd, buf, cap, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	}
}

ssize_t net_recv_gather(int fd, void *buf, size_t cap, size_t enough, unsigned gather_us)
{
	ssize_t n = net_recv(fd, buf, cap);
	if (n <= 0 || (size_t)n >= enough || (size_t)n == cap || tls_conn_of(fd) != NULL)
		return n;
	struct timespec ts = { .tv_sec = gather_us / 1000000,
			       .tv_nsec = (long)(gather_us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	ssize_t more = recv(fd, (char *)buf + n, cap - (size_t)n, MSG_DONTWAIT);
	return more > 0 ? n + more : n;
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

/* ---- TLS and authentication ----------------------------------------------------------- */

/* "user:password" or "user password" on the file's first line into s->auth. */
static int auth_load(struct net_secure *s, char *err, size_t cap)
{
	const char *opt = s->auth_opt ? s->auth_opt : "auth-file";
	char buf[MCW_AUTH_BYTES_MAX];
	int fd = open(s->auth_file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, cap, "--%s %s: %s", opt, s->auth_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 077)
		log_warn("--%s %s can be read by other users (mode %03o): chmod 600 it", opt,
			 s->auth_file, (unsigned)(st.st_mode & 0777));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	size_t user_len = strcspn(buf, ": ");
	if (n < 0 || buf[user_len] == '\0' || user_len == 0 || buf[user_len + 1] == '\0') {
		snprintf(err, cap,
			 "--%s %s: the first line must be 'user:password' or 'user password' (as "
			 "in memcached's -Y file)",
			 opt, s->auth_file);
		return -EINVAL;
	}
	buf[user_len] = ' ';
	s->auth_len = strlen(buf);
	memcpy(s->auth, buf, s->auth_len);
	return 0;
}

int net_secure_prepare(struct net_secure *s, char *err, size_t cap)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&mu);
	if (!s->prepared) {
		s->prepared = true;
		s->prepare_ret =
		    s->tls ? tls_side_prepare(s, s->prepare_err, sizeof(s->prepare_err)) : 0;
		if (s->prepare_ret == 0 && s->auth_file != NULL)
			s->prepare_ret = auth_load(s, s->prepare_err, sizeof(s->prepare_err));
	}
	pthread_mutex_unlock(&mu);
	if (s->prepare_ret < 0)
		snprintf(err, cap, "%s", s->prepare_err);
	return s->prepare_ret;
}

void net_secure_release(struct net_secure *s)
{
	if (s->tls)
		tls_side_release(s);
	explicit_bzero(s->auth, sizeof(s->auth));
	s->auth_len = 0;
	s->prepared = false;
}

static bool line_complete(const char *buf, size_t len, size_t *reply_len)
{
	const char *nl = memchr(buf, '\n', len);
	if (nl == NULL)
		return false;
	*reply_len = (size_t)(nl - buf) + 1;
	return true;
}

/* One request whose answer is one line; names a server that wants credentials. */
static int exchange_line(int fd, const struct hostport *hp, const char *req, const char *want,
			 const char *what, char *err, size_t cap)
{
	char buf[256];
	ssize_t n = net_exchange(fd, req, buf, sizeof(buf) - 1, line_complete);
	if (n >= 0 && (size_t)n == strlen(want) && memcmp(buf, want, (size_t)n) == 0)
		return 0;
	if (n == -EKEYREJECTED) {
		snprintf(err, cap,
			 "TLS: %s refused our client certificate (give one its "
			 "ssl_ca_cert trusts with --%s-cert FILE --%s-key FILE)",
			 hp->text, hp->sec->opt, hp->sec->opt);
		return -EKEYREJECTED;
	}
	if (n == -EPIPE && hp->sec->tls && hp->sec->cert_file == NULL) {
		snprintf(err, cap,
			 "TLS: %s closed the connection after the handshake: it refused our client "
			 "certificate (we gave none: if it runs ssl_verify_mode, give one its "
			 "ssl_ca_cert trusts with --%s-cert FILE --%s-key FILE)",
			 hp->text, hp->sec->opt, hp->sec->opt);
		return -EKEYREJECTED;
	}
	if (n < 0) {
		snprintf(err, cap, "%s with %s failed: %s", what, hp->text,
			 n == -ETIMEDOUT ? "no answer within the timeout"
			 : n == -EPIPE	 ? "the server closed the connection"
					 : strerror((int)-n));
		return n == -ETIMEDOUT ? -ETIMEDOUT : -EPROTO;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	const char *opt = hp->sec->auth_opt ? hp->sec->auth_opt : "auth-file";
	bool authenticating = hp->sec->auth_len > 0;
	if (authenticating) /* memcached 1.6 says "CLIENT_ERROR unauthenticated" */
		snprintf(err, cap,
			 "%s refused the credentials of --%s %s (\"%s\"): check the user and "
			 "password against the server's -Y file",
			 hp->text, opt, hp->sec->auth_file, buf);
	else if (strstr(buf, "unauthenticated") != NULL)
		snprintf(err, cap,
			 "%s requires authentication (memcached -Y): give its credentials with "
			 "--%s FILE",
			 hp->text, opt);
	else
		snprintf(err, cap, "%s answered %s with \"%.60s\"", hp->text, what, buf);
	return -EACCES;
}

/* After TLS: authenticates, or proves the session works with an mn round trip (a server
 * that refuses our client certificate says so only once the handshake is over). */
static int secure_greet(int fd, const struct hostport *hp, int timeout_ms, char *err, size_t cap)
{
	const struct net_secure *s = hp->sec;
	char req[MCW_AUTH_BYTES_MAX + 64];
	int ret = net_set_recv_timeout(fd, timeout_ms);
	if (ret < 0)
		return ret;
	if (s->auth_len > 0) {
		snprintf(req, sizeof(req), "set mcwarm_auth 0 0 %zu\r\n%.*s\r\n", s->auth_len,
			 (int)s->auth_len, s->auth);
		ret = exchange_line(fd, hp, req, "STORED\r\n", "authentication", err, cap);
	} else {
		ret = exchange_line(fd, hp, "mn\r\n", "MN\r\n", "the first request", err, cap);
	}
	explicit_bzero(req, sizeof(req));
	net_set_recv_timeout(fd, 0);
	return ret;
}

int net_connect(const struct hostport *hp, int timeout_ms, char *err, size_t err_cap)
{
	struct net_secure *s = hp->sec;
	bool secure = s != NULL && (s->tls || s->auth_file != NULL);
	int ret = secure ? net_secure_prepare(s, err, err_cap) : 0;
	if (ret < 0)
		return ret;
	int fd = tcp_connect(hp, timeout_ms, err, err_cap);
	if (fd < 0)
		return fd;
	tls_conn_forget(fd, false); /* invariant 1 of tls.c */
	if (!secure)
		return fd;
	ret = s->tls ? tls_handshake(fd, s, hp, timeout_ms, err, err_cap) : 0;
	if (ret == 0)
		ret = secure_greet(fd, hp, timeout_ms, err, err_cap);
	if (ret < 0) {
		net_close(fd);
		return ret;
	}
	return fd;
}

void net_close(int fd)
{
	tls_conn_forget(fd, true);
	close(fd);
}

int net_connect_cause(int connect_ret)
{
	switch (connect_ret) {
	case -EKEYREJECTED:
	case -EACCES:
		return -EKEYREJECTED;
	case -EINVAL:
		return -EINVAL;
	default:
		return -EHOSTUNREACH;
	}
}
