/*
 * tls.c: OpenSSL sessions for memcached connections (see tls.h).
 *
 * Owns each side's SSL_CTX, the registry of sessions by fd, blocking I/O through a
 * session, and the "ring BIO" that lets io_uring carry a session's records through
 * memory the pipe's owner lent. Does not own sockets: net.c connects and closes them.
 *
 * Invariants:
 *  1. A session is registered under its fd from its handshake until tls_conn_forget, or
 *     until a new handshake on the same fd number replaces it.
 *  2. After tls_pipe_attach, OpenSSL reads only the pipe's cin and writes only its cout;
 *     it never touches the socket again.
 *  3. cout never overflows: the owner seals at most one batch (MCW_BATCH_REQ_BYTES)
 *     before the ring takes it, and the area holds MCW_TLS_SEAL_BYTES of that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base.h"
#include "net.h"
#include "tls.h"

static _Atomic(SSL *) sessions[MCW_TLS_FDS_MAX];

static SSL *ssl_of(struct tls_conn *t)
{
	return (SSL *)t;
}

/* The reason of this thread's newest OpenSSL error ("" if none); clears the queue. */
static const char *ssl_reason(unsigned long *code)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	if (code != NULL)
		*code = e;
	ERR_clear_error();
	return r ? r : "";
}

/* ---- contexts ----------------------------------------------------------------------- */

static int ctx_fail(SSL_CTX *ctx, char *err, size_t cap, const char *fmt, const char *file)
{
	snprintf(err, cap, fmt, file, ssl_reason(NULL));
	SSL_CTX_free(ctx);
	return -EINVAL;
}

void tls_side_release(struct net_secure *s)
{
	SSL_CTX_free(s->ctx); /* NULL: nothing */
	s->ctx = NULL;
}

int tls_side_prepare(struct net_secure *s, char *err, size_t cap)
{
	const char *opt = s->opt ? s->opt : "tls";
	/* OpenSSL's socket BIO writes with write(): a server that closes in the middle of a
	 * handshake (a restart) must give EPIPE, not kill the process */
	signal(SIGPIPE, SIG_IGN);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return ctx_fail(ctx, err, cap, "TLS: cannot set up OpenSSL%s: %s", "");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int ok = s->ca_file ? SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL)
			    : SSL_CTX_set_default_verify_paths(ctx);
	if (!ok)
		return ctx_fail(ctx, err, cap,
				"TLS: cannot load the CA certificates '%s': %s (a PEM file of the "
				"CA that signed the server's certificate)",
				s->ca_file ? s->ca_file : "system store");
	if (s->cert_file == NULL && s->key_file != NULL) {
		snprintf(err, cap, "--%s-key needs --%s-cert", opt, opt);
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	if (s->cert_file != NULL) {
		const char *key = s->key_file ? s->key_file : s->cert_file;
		if (SSL_CTX_use_certificate_chain_file(ctx, s->cert_file) != 1)
			return ctx_fail(ctx, err, cap,
					"TLS: cannot load the client certificate '%s': %s",
					s->cert_file);
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1)
			return ctx_fail(
			    ctx, err, cap,
			    "TLS: cannot load the client key '%s' (or it does not match "
			    "the certificate): %s",
			    key);
	}
	s->ctx = (struct ssl_ctx_st *)ctx;
	return 0;
}

/* ---- handshake ---------------------------------------------------------------------- */

static bool is_ip_literal(const char *name)
{
	unsigned char a[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

static void set_timeouts(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool is_client_cert_refusal(int reason)
{
	return reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
	       reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
	       reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
	       reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ||
	       reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN;
}

static bool is_plain_text_reply(int reason)
{
	return reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
	       reason == SSL_R_UNKNOWN_PROTOCOL;
}

/* Names what went wrong in a handshake for an operator. Returns -errno. */
static int handshake_error(SSL *ssl, int r, int saved_errno, const char *addr, const char *name,
			   const char *opt, int timeout_ms, char *err, size_t cap)
{
	int kind = SSL_get_error(ssl, r);
	long v = SSL_get_verify_result(ssl);
	unsigned long code;
	const char *why = ssl_reason(&code);
	int reason = ERR_GET_REASON(code);
	if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
		if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			snprintf(err, cap,
				 "TLS: the certificate of %s does not name '%s' (give a name it "
				 "was issued for with --%s-server-name NAME)",
				 addr, name, opt);
		else
			snprintf(err, cap,
				 "TLS: the certificate of %s failed verification: %s (give the CA "
				 "that signed it with --%s-ca FILE)",
				 addr, X509_verify_cert_error_string(v), opt);
		return -EKEYREJECTED;
	}
	if (is_client_cert_refusal(reason)) {
		snprintf(err, cap,
			 "TLS: %s refused our client certificate: %s (it wants one its "
			 "ssl_ca_cert trusts: --%s-cert FILE --%s-key FILE)",
			 addr, why, opt, opt);
		return -EKEYREJECTED;
	}
	if (is_plain_text_reply(reason)) {
		snprintf(err, cap,
			 "TLS: %s answered the TLS handshake in plain text (%s): it does not speak "
			 "TLS on this port (drop --%s, or use its TLS port)",
			 addr, why, opt);
		return -EPROTO;
	}
	if (kind == SSL_ERROR_WANT_READ || kind == SSL_ERROR_WANT_WRITE ||
	    (kind == SSL_ERROR_SYSCALL && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))) {
		snprintf(err, cap,
			 "TLS: no handshake answer from %s within %d ms (is this a TLS port? "
			 "memcached -Z)",
			 addr, timeout_ms);
		return -ETIMEDOUT;
	}
	if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING || kind == SSL_ERROR_SYSCALL ||
	    kind == SSL_ERROR_ZERO_RETURN) {
		snprintf(err, cap,
			 "TLS: %s closed the connection during the handshake (is this a TLS port? "
			 "does it accept TLS 1.2 or newer?)",
			 addr);
		return -ECONNRESET;
	}
	snprintf(err, cap, "TLS: handshake with %s failed: %s", addr, why[0] ? why : "unknown");
	return -EPROTO;
}

static void log_first(const struct net_secure *s, SSL *ssl, const char *addr)
{
	static atomic_bool logged;
	char d[160];
	(void)s;
	if (!atomic_exchange(&logged, true))
		log_info("TLS to %s: %s", addr, tls_describe((struct tls_conn *)ssl, d, sizeof(d)));
}

int tls_handshake(int fd, const struct net_secure *s, const struct hostport *hp, int timeout_ms,
		  char *err, size_t cap)
{
	const char *opt = s->opt ? s->opt : "tls";
	if (fd >= MCW_TLS_FDS_MAX) {
		snprintf(err, cap, "TLS: connection %d is beyond the %d that TLS can track", fd,
			 MCW_TLS_FDS_MAX);
		return -EMFILE;
	}
	SSL *ssl = SSL_new((SSL_CTX *)s->ctx);
	if (ssl == NULL) {
		snprintf(err, cap, "TLS: cannot create a session: %s", ssl_reason(NULL));
		return -ENOMEM;
	}
	const char *name = s->server_name ? s->server_name : hp->host;
	if (is_ip_literal(name)) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
	} else {
		SSL_set1_host(ssl, name);
		SSL_set_tlsext_host_name(ssl, name);
	}
	SSL_set_fd(ssl, fd);
	set_timeouts(fd, timeout_ms);
	ERR_clear_error();
	errno = 0;
	int r = SSL_connect(ssl);
	if (r != 1) {
		int ret = handshake_error(ssl, r, errno, hp->text, name, opt, timeout_ms, err, cap);
		SSL_free(ssl);
		return ret;
	}
	set_timeouts(fd, 0);
	SSL *old = atomic_exchange(&sessions[fd], ssl);
	if (old != NULL)
		SSL_free(old);
	log_first(s, ssl, hp->text);
	return 0;
}

struct tls_conn *tls_conn_of(int fd)
{
	if (fd < 0 || fd >= MCW_TLS_FDS_MAX)
		return NULL;
	return (struct tls_conn *)atomic_load(&sessions[fd]);
}

void tls_conn_forget(int fd, bool notify)
{
	if (fd < 0 || fd >= MCW_TLS_FDS_MAX)
		return;
	SSL *ssl = atomic_exchange(&sessions[fd], NULL);
	if (ssl == NULL)
		return;
	if (notify && SSL_get_fd(ssl) == fd) /* still on its socket: tell the server */
		SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}

const char *tls_describe(struct tls_conn *t, char *buf, size_t cap)
{
	SSL *ssl = ssl_of(t);
	snprintf(buf, cap, "%s, %s, in user space through memory buffers (kernel TLS: %s)",
		 SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		 tls_kernel_probe(SSL_get_fd(ssl)) ? "offered, not used" : "not offered");
	return buf;
}

bool tls_kernel_probe(int fd)
{
	static atomic_int known = -1; /* -1 unknown, 0 no, 1 yes */
	int k = atomic_load(&known);
	if (k >= 0)
		return k == 1;
	/* A fresh socket of the same family asks the kernel for the ULP without touching a
	 * live connection: ENOENT means no tls module; ENOTCONN means it is there. */
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	int family =
	    fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &l) == 0 ? ss.ss_family : AF_INET;
	int probe = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes = false;
	if (probe >= 0) {
		yes = setsockopt(probe, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ||
		      errno != ENOENT;
		close(probe);
	}
	atomic_store(&known, yes ? 1 : 0);
	return yes;
}

/* ---- blocking I/O ------------------------------------------------------------------- */

int tls_send_all(struct tls_conn *t, const void *buf, size_t len)
{
	SSL *ssl = ssl_of(t);
	size_t done = 0;
	while (done < len) {
		size_t n = 0;
		ERR_clear_error();
		if (SSL_write_ex(ssl, (const char *)buf + done, len - done, &n) != 1) {
			ssl_reason(NULL);
			return -EPIPE;
		}
		done += n;
	}
	return 0;
}

ssize_t tls_recv(struct tls_conn *t, void *buf, size_t cap)
{
	SSL *ssl = ssl_of(t);
	size_t n = 0;
	ERR_clear_error();
	errno = 0;
	int r = SSL_read_ex(ssl, buf, cap, &n);
	if (r == 1)
		return (ssize_t)n;
	int saved = errno;
	int kind = SSL_get_error(ssl, r);
	unsigned long code;
	const char *why = ssl_reason(&code);
	if (kind == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (kind == SSL_ERROR_WANT_READ || saved == EAGAIN || saved == EWOULDBLOCK)
		return -ETIMEDOUT;
	if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return 0;
	if (is_client_cert_refusal(ERR_GET_REASON(code))) {
		log_error("TLS: the server refused our client certificate: %s (give one its "
			  "ssl_ca_cert trusts with --tls-cert/--tls-key or --dest-tls-cert/"
			  "--dest-tls-key)",
			  why);
		return -EKEYREJECTED;
	}
	if (why[0] != '\0')
		log_debug("TLS read failed: %s", why);
	return kind == SSL_ERROR_SYSCALL && saved != 0 ? -saved : -EPROTO;
}

/* ---- the ring BIO: OpenSSL's bytes go to and come from the pipe's areas -------------- */

static int ring_bio_write(BIO *b, const char *data, int len)
{
	struct tls_pipe *p = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ASSERT(p->out_len + (size_t)len <= p->out_cap); /* invariant 3 */
	memcpy(p->cout + p->out_len, data, (size_t)len);
	p->out_len += (size_t)len;
	return len;
}

static int ring_bio_read(BIO *b, char *data, int len)
{
	struct tls_pipe *p = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	size_t n = MIN((size_t)len, p->in_wr - p->in_rd);
	if (n == 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	memcpy(data, p->cin + p->in_rd, n);
	p->in_rd += n;
	return (int)n;
}

static long ring_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b, (void)num, (void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *ring_method;

static void ring_method_create(void)
{
	ring_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mcwarm ring");
	ASSERT(ring_method != NULL);
	BIO_meth_set_write(ring_method, ring_bio_write);
	BIO_meth_set_read(ring_method, ring_bio_read);
	BIO_meth_set_ctrl(ring_method, ring_bio_ctrl);
}

void tls_pipe_attach(struct tls_pipe *p, struct tls_conn *conn, uint8_t *area, size_t bytes)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	ASSERT(bytes >= MCW_TLS_PIPE_BYTES);
	pthread_once(&once, ring_method_create);
	memset(p, 0, sizeof(*p));
	p->conn = conn;
	p->in_cap = MCW_TLS_RECV_CIPHER_BYTES;
	p->cin = area;
	p->cout = area + p->in_cap;
	p->out_cap = bytes - p->in_cap;
	BIO *b = BIO_new(ring_method);
	ASSERT(b != NULL);
	BIO_set_data(b, p);
	BIO_set_init(b, 1);
	SSL_set_bio(ssl_of(conn), b, b); /* frees the socket BIO (invariant 2) */
}

int tls_pipe_seal(struct tls_pipe *p, const void *plain, size_t len)
{
	size_t n = 0;
	ERR_clear_error();
	if (len > 0 && SSL_write_ex(ssl_of(p->conn), plain, len, &n) != 1) {
		snprintf(p->error, sizeof(p->error), "TLS: cannot seal a request: %s",
			 ssl_reason(NULL));
		return -EPROTO;
	}
	ASSERT(n == len);
	return 0;
}

void tls_pipe_sent(struct tls_pipe *p, size_t n)
{
	ASSERT(n <= p->out_len);
	memmove(p->cout, p->cout + n, p->out_len - n);
	p->out_len -= n;
	p->out_sent = 0;
}

uint8_t *tls_pipe_recv_area(struct tls_pipe *p, size_t *len)
{
	if (p->in_rd == p->in_wr) {
		p->in_rd = p->in_wr = 0;
	} else if (p->in_rd > 0) {
		memmove(p->cin, p->cin + p->in_rd, p->in_wr - p->in_rd);
		p->in_wr -= p->in_rd;
		p->in_rd = 0;
	}
	*len = p->in_cap - p->in_wr;
	return *len > 0 ? p->cin + p->in_wr : NULL;
}

uint8_t *tls_ring_recv_area(struct tls_pipe *p, uint8_t *plain, size_t plain_len, size_t *len)
{
	if (p != NULL)
		return tls_pipe_recv_area(p, len);
	*len = plain_len;
	return plain_len > 0 ? plain : NULL;
}

void tls_pipe_received(struct tls_pipe *p, size_t n)
{
	ASSERT(p->in_wr + n <= p->in_cap);
	p->in_wr += n;
}

ssize_t tls_pipe_open(struct tls_pipe *p, uint8_t *plain, size_t cap)
{
	size_t total = 0;
	while (total < cap) {
		size_t n = 0;
		ERR_clear_error();
		int r = SSL_read_ex(ssl_of(p->conn), plain + total, cap - total, &n);
		if (r == 1) {
			total += n;
			continue;
		}
		int kind = SSL_get_error(ssl_of(p->conn), r);
		unsigned long code;
		const char *why = ssl_reason(&code);
		if (kind == SSL_ERROR_WANT_READ || kind == SSL_ERROR_WANT_WRITE)
			break;
		if (total > 0)
			break; /* hand over what came first; the error comes back next time */
		if (kind == SSL_ERROR_ZERO_RETURN)
			return -EPIPE;
		snprintf(p->error, sizeof(p->error), "TLS: cannot open the server's records: %s",
			 why[0] ? why : "unknown error");
		return -EPROTO;
	}
	return (ssize_t)total;
}
