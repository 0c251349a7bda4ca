/*
 * tls.h: TLS to memcached (memcached -Z) with OpenSSL, for every connection mcwarm opens.
 *
 * A connection is named by its fd everywhere in mcwarm. net_connect (net.c) calls
 * tls_handshake right after TCP connect when the side asks for TLS; the session is then
 * registered under the fd, so the blocking helpers (net_send_all, net_recv, net_exchange)
 * find it with tls_conn_of and go through it, and everything else keeps passing fds.
 *
 * Ring-driven pipes (mgpipe, mspipe) cannot let OpenSSL touch the socket: io_uring does. They
 * attach a tls_pipe, which moves the session onto memory: ciphertext areas lent by the
 * pipe's owner (carved from the memory budget, MCW_TLS_PIPE_BYTES), "seal" turns
 * plaintext into ciphertext before a send, "open" turns received ciphertext into the
 * plaintext receive area. OpenSSL keeps its own record buffers per session (about
 * 50 KiB, allocated at the handshake): a fixed overhead per connection.
 *
 * Kernel TLS: tls_kernel_probe says whether the kernel offers the "tls" ULP; mcwarm
 * always uses the user-space path (through memory BIOs) and says so in the log.
 */
#ifndef MCW_TLS_H
#define MCW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mcw_limits.h"

struct net_secure;
struct hostport;
struct tls_conn; /* an OpenSSL session (SSL) after its handshake */

/* Builds the side's SSL_CTX once (CA file or the system store, client certificate and
 * key, TLS 1.2 at least, server certificate verified). 0 or -EINVAL with err. */
int tls_side_prepare(struct net_secure *s, char *err, size_t cap);
/* Drops the side's SSL_CTX (net_secure_release). */
void tls_side_release(struct net_secure *s);

/* Runs the client handshake over a connected blocking socket within timeout_ms and
 * registers the session under fd. 0, or -EKEYREJECTED (certificate refused), -EPROTO
 * (the server does not speak TLS), -ETIMEDOUT, -ECONNRESET, with err for an operator. */
int tls_handshake(int fd, const struct net_secure *s, const struct hostport *hp, int timeout_ms,
		  char *err, size_t cap);

/* The session registered under fd, or NULL for a plain connection. */
struct tls_conn *tls_conn_of(int fd);
/* Forgets the session under fd; notify: first tell the server (close_notify), when the
 * session is still on its socket. Without notify: a stale session of a number that a
 * new socket now has (its connection was closed without net_close). */
void tls_conn_forget(int fd, bool notify);

/* Blocking I/O over a session whose socket is blocking (with SO_RCVTIMEO). */
int tls_send_all(struct tls_conn *t, const void *buf, size_t len);
/* Bytes, 0 on the server's close, -ETIMEDOUT, -EPROTO (garbage) or -errno. */
ssize_t tls_recv(struct tls_conn *t, void *buf, size_t cap);

/* "TLS 1.3, TLS_AES_256_GCM_SHA384, user space (no kernel TLS)": for logs. */
const char *tls_describe(struct tls_conn *t, char *buf, size_t cap);

/* Does this kernel offer kernel TLS (the "tls" TCP ULP)? Probed once on a socket. */
bool tls_kernel_probe(int fd);

/* ---- ring-driven pipes ------------------------------------------------------------- */

/* The ciphertext areas of one pipe: sealed requests waiting to go or in flight, and
 * received ciphertext not yet opened. Bytes of cout [0, out_sent) are on the wire. */
struct tls_pipe {
	struct tls_conn *conn;
	uint8_t *cout;
	size_t out_cap, out_len, out_sent;
	uint8_t *cin;
	size_t in_cap, in_rd, in_wr;
	char error[200];
};

/* MCW_TLS_SEAL_BYTES and MCW_TLS_PIPE_BYTES (a pipe's ciphertext areas): mcw_limits.h */

/* Moves conn's session onto area (MCW_TLS_PIPE_BYTES): from now on only seal and open
 * move its bytes; the socket is the ring's. */
void tls_pipe_attach(struct tls_pipe *p, struct tls_conn *conn, uint8_t *area, size_t bytes);
/* Seals len plaintext bytes after the ciphertext already waiting. 0 or -EPROTO. */
int tls_pipe_seal(struct tls_pipe *p, const void *plain, size_t len);
/* The ring sent n bytes from cout: drops them and keeps what was sealed behind them. */
void tls_pipe_sent(struct tls_pipe *p, size_t n);
/* Where the next ciphertext receive goes; NULL when the area is full (open first). */
uint8_t *tls_pipe_recv_area(struct tls_pipe *p, size_t *len);
/* Where a pipe's next ring receive goes: p's ciphertext area (p: a TLS connection), else
 * plain; NULL when that is full (the owner consumes, or opens ciphertext, first). */
uint8_t *tls_ring_recv_area(struct tls_pipe *p, uint8_t *plain, size_t plain_len, size_t *len);
void tls_pipe_received(struct tls_pipe *p, size_t n);
/* Opens received ciphertext into plain (up to cap): bytes (0: nothing complete yet),
 * -EPIPE when the server ended the session, -EPROTO with p->error. */
ssize_t tls_pipe_open(struct tls_pipe *p, uint8_t *plain, size_t cap);

#endif
