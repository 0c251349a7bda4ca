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

#include "mcw_limits.h"

/* How mcwarm talks to one side (the source or the destination): TLS and memcached's
 * ASCII authentication (-Y). Filled from the command line (cli_secure_option); the files
 * are read once, at the first connection (net_secure_prepare). */
struct net_secure {
	bool tls;
	const char *ca_file;	 /* NULL: the system's trust store */
	const char *cert_file;	 /* client certificate (memcached ssl_verify_mode) */
	const char *key_file;	 /* its key; NULL: in cert_file */
	const char *server_name; /* checked in the certificate and sent as SNI; NULL: host */
	const char *auth_file;	 /* "user:password" or "user password" */
	const char *opt;	 /* "tls" or "dest-tls": option names for messages */
	const char *auth_opt;	 /* "auth-file" or "dest-auth-file" */
	/* set by net_secure_prepare */
	bool prepared;
	int prepare_ret;
	char prepare_err[300];
	struct ssl_ctx_st *ctx;
	char auth[MCW_AUTH_BYTES_MAX]; /* "user password" */
	size_t auth_len;
};

struct hostport {
	char host[256];
	uint16_t port;
	char text[300];		/* as given, for messages */
	struct net_secure *sec; /* NULL: plain TCP, no authentication */
};

/* "host:port" or "[v6addr]:port". 0 or -EINVAL. */
int hostport_parse(const char *s, struct hostport *out);

/* Reads the side's files once (thread-safe; later calls return the first result).
 * 0 or -EINVAL with err. */
int net_secure_prepare(struct net_secure *s, char *err, size_t cap);
/* Frees what net_secure_prepare made (the SSL_CTX) and forgets the password, for a side
 * that does not live as long as the process (watch, mcwarm-ctl's checks); sessions still
 * open keep the context until they are closed. */
void net_secure_release(struct net_secure *s);

/* Connects (TCP_NODELAY, blocking mode afterwards), then as hp->sec says: the TLS
 * handshake (tls.c) and the authentication. Returns the fd or -errno; on failure err
 * explains it for an operator: -EKEYREJECTED (TLS certificate refused) and -EACCES
 * (authentication refused) are the operator's to fix (net_connect_cause). */
int net_connect(const struct hostport *hp, int timeout_ms, char *err, size_t err_cap);
/* Closes a connection from net_connect (and its TLS session). */
void net_close(int fd);
/* The cause to record for a failed net_connect (or server_probe): -EKEYREJECTED for a
 * refused certificate or password, -EINVAL for bad options, else -EHOSTUNREACH (the
 * server could not be reached or set up; err names the real cause). The many errno
 * values of a failed connection (a TLS alert's -EPROTO among them) are folded so that
 * mcw_exit_code (core.h) tells only these three apart. */
int net_connect_cause(int connect_ret);

/* Sets the receive timeout used by net_recv (SO_RCVTIMEO). */
int net_set_recv_timeout(int fd, int timeout_ms);

int net_send_all(int fd, const void *buf, size_t len);
/* recv with the socket's timeout: bytes, 0 on EOF, -ETIMEDOUT, or -errno. */
ssize_t net_recv(int fd, void *buf, size_t cap);
/* net_recv for a stream that arrives in short writes: when a receive brings fewer than
 * enough bytes, waits gather_us once and adds what arrived meanwhile (one wake-up instead
 * of one per write). Same returns; a failure after the wait is left for the next call. */
ssize_t net_recv_gather(int fd, void *buf, size_t cap, size_t enough, unsigned gather_us);

/* Sends req and reads until is_complete(buf, len, &reply_len) says the reply is whole.
 * Returns the reply length, -ETIMEDOUT, -EPIPE on EOF, -EMSGSIZE if cap is too small. */
ssize_t net_exchange(int fd, const char *req, char *buf, size_t cap,
		     bool (*is_complete)(const char *buf, size_t len, size_t *reply_len));

#endif
