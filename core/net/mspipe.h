/*
 * mspipe.h: one pipelined `ms` stream over one connection, driven by its owner's io_uring:
 * the mirror of mgpipe. Used by populate (one per worker, values lent from its read
 * buffers) and by stream (one per worker, values copied out of the source's replies).
 *
 * The owner adds items with mspipe_add (each lands in the open batch; the batch number
 * it returns is answered once mspipe_answered() passes it), closes a batch when it has
 * nothing more to add now (mspipe_close), calls mspipe_kick before every wait and routes
 * completions with mspipe_owns/mspipe_on_cqe. Batches are encoded when (re)sent, so TTLs
 * are computed at send time (mspipe_exptime: the 30-day rule lives here). Replies (NS,
 * MN, HD, SERVER_ERROR, ...) are parsed through memcache_proto/ inside the pipe.
 *
 * A lost connection is reconnected through the owner's reconnect hook and every
 * unanswered batch is resent (add mode makes a second add harmless: NS); without the
 * hook a lost connection fails the pipe. Failure: fault (base.h): -ECONNRESET (lost
 * for good), -EPROTO (out of sync), -MCW_ETOOSMALL (out of memory), -MCW_EBUG.
 *
 * Memory: the owner lends an area of mspipe_area_bytes() for the batches (records,
 * pieces, headers, iovecs and, with copy_bytes, the copied values) and a receive area.
 *
 * TLS: when the connection's fd has a TLS session (net_connect made it), the receive
 * area ends with MSPIPE_TLS_BYTES more (the owner's plan adds them): a batch is copied
 * into the stage burst by burst, sealed, and the ring sends ciphertext; answers are
 * opened into the rest of the receive area. A reconnect attaches the new session.
 */
#ifndef MCW_MSPIPE_H
#define MCW_MSPIPE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base.h"
#include "mcproto.h"
#include "mcw_limits.h"
#include "ratelimit.h"
#include "tls.h"
#include "uring.h"

/* MSPIPE_BATCHES_MAX, MSPIPE_SENDMSG_IOV and MSPIPE_RECV_MIN: mcw_limits.h */
#define MSPIPE_TTL_REL_MAX_S (30 * 86400) /* memcached: larger exptimes are absolute */
/* What a TLS connection adds to the receive area: the plaintext stage of one burst, then
 * the session's ciphertext areas (tls.h). */
#define MSPIPE_TLS_BYTES (MSPIPE_TLS_STAGE_BYTES + MCW_TLS_PIPE_BYTES)

struct mspipe_opts {
	struct ur_ring *ring;
	int fd;
	unsigned id;	  /* tags this pipe's completions (0..15) */
	const char *what; /* "the destination 127.0.0.1:11211": for messages */
	uint8_t *area;	  /* mspipe_area_bytes(batches, batch_records, batch_pieces, copy) */
	size_t area_bytes;
	unsigned batches;	/* in flight, <= MSPIPE_BATCHES_MAX */
	unsigned batch_records; /* ms requests per batch, closed by mn */
	unsigned batch_pieces;	/* value pieces per batch */
	size_t copy_bytes;	/* per batch: values are copied in (0: lent as iovecs) */
	uint8_t *recv_area;
	size_t recv_bytes; /* >= MSPIPE_RECV_MIN (+ MSPIPE_TLS_BYTES for a TLS connection) */
	enum mcp_ms_mode mode;
	int64_t min_ttl_s;
	int io_timeout_ms;
	unsigned errors_logged_max; /* SERVER_ERROR answers logged */
	/* the destination's clock (stats time, advanced) for absolute exptimes */
	int64_t (*dest_now_s)(void *arg);
	/* does the destination evict (out of memory stops at once if not)? */
	bool (*dest_evicts)(void *arg);
	/* a new connection (fd) after a loss, or -1 when it failed for good; NULL: a lost
	 * connection fails the pipe */
	int (*reconnect)(void *arg);
	void *arg;
	atomic_uint_fast64_t *oom_answers; /* "out of memory" answers of the run, shared */
	struct rate_limits *limits;	   /* --max-ops / --max-bytes, or NULL */
};

/* One item to send: the value in pieces (lent until its batch is answered, or copied). */
struct mspipe_item {
	const uint8_t *key; /* lent until its batch is answered */
	uint16_t key_len;
	bool key_b64;	      /* send it base64-encoded (the source said it is binary) */
	bool key_b64_decided; /* key_b64 came from scanning this key (the key reader did): not
			       * scanned again; otherwise (a key read from a file) it is */
	uint32_t client_flags;
	uint32_t value_len;
	int64_t expires_at_ms; /* on the mover's wall clock; 0: never */
	const struct iovec *pieces;
	uint32_t npieces;
};

struct mspipe_rec {
	const uint8_t *key;
	int64_t expires_at_ms;
	uint32_t client_flags, value_len, piece0, npieces;
	uint16_t key_len;
	bool key_b64;
};

struct mspipe_batch {
	struct mspipe_rec *recs;
	struct iovec *pieces;
	uint8_t *copy;
	char *hdr;
	struct iovec *iov;
	uint32_t nrec, npieces, niov, iov_done, iov_chunk;
	size_t
	    iov_off; /* TLS: bytes of iov[iov_done] already sealed (a value larger than a burst) */
	size_t chunk_end_off;
	size_t copy_used, chunk_bytes;
	uint64_t opaque_base, value_bytes;
	uint32_t encoded_records, present, expired;
	bool encoded, charged;
};

struct mspipe_counts {
	uint64_t sent;		/* ms answered (stored, or NS) */
	uint64_t present;	/* NS: live data won (add mode) */
	uint64_t expired;	/* expired before it could be sent */
	uint64_t server_errors; /* SERVER_ERROR answers: not stored */
	uint64_t reconnects;
};

struct mspipe {
	struct mspipe_opts o;
	struct mspipe_batch b[MSPIPE_BATCHES_MAX];
	uint64_t b_alloc, b_sent, b_answered; /* monotonic; slot = n % o.batches */
	bool has_open, send_busy;
	struct msghdr msg;
	uint64_t opaque_next;
	/* receive area (plaintext, rcap bytes): bytes [rd, wr) are unparsed */
	size_t rd, wr, rcap;
	/* TLS: the stage (plaintext of one burst) and the session's ciphertext areas */
	bool secure;
	uint8_t *stage;
	struct tls_pipe tls;
	bool recv_posted;
	unsigned recv_retries; /* EAGAIN/EINTR in a row (MCW_RECV_RETRIES_MAX) */
	/* connection */
	uint32_t gen;	/* bumped at each loss: older completions are stale */
	uint32_t stale; /* completions still due from dead connections */
	bool lost;
	int64_t last_io_ns;
	unsigned errors_logged;
	struct rate_bucket bucket;
	int64_t wake_ns;	/* a batch held back by the rate limit until then, 0 if none */
	struct mspipe_counts n; /* since the last mspipe_take_counts */
	struct mcw_fault fault; /* the failure, fault.err == 0 until then */
};

/* Bytes of the batch area for these sizes. */
size_t mspipe_area_bytes(unsigned batches, unsigned batch_records, unsigned batch_pieces,
			 size_t copy_bytes);
void mspipe_init(struct mspipe *p, const struct mspipe_opts *o);
/* Puts an item into the open batch (opening one, closing a full one). Returns the batch
 * number, or -EAGAIN when every batch is in flight (add it again after a wait). */
int64_t mspipe_add(struct mspipe *p, const struct mspipe_item *it);
/* Nothing more to add now: the open batch may go. */
void mspipe_close(struct mspipe *p);
/* Reconnects a lost connection, sends closed batches, keeps a receive posted. Call
 * before every wait. */
void mspipe_kick(struct mspipe *p);
/* Batches answered so far: batch n is answered once this is > n. */
uint64_t mspipe_answered(const struct mspipe *p);
/* Every batch is answered and none is open. */
bool mspipe_idle(const struct mspipe *p);
/* Replies are due (so silence counts against the timeout). */
bool mspipe_awaiting(const struct mspipe *p);
/* When the rate limit lets the next batch go (monotonic ns), 0 if none is held back. */
int64_t mspipe_wake_ns(const struct mspipe *p);
/* After a wait that timed out: a pipe awaiting replies and silent for io_timeout_ms has
 * lost its connection. */
void mspipe_check_silence(struct mspipe *p, int64_t now_ns);
bool mspipe_owns(const struct mspipe *p, uint64_t user_data);
void mspipe_on_cqe(struct mspipe *p, const struct ur_cqe *cqe);
/* The counts since the last call (then zeroed). */
void mspipe_take_counts(struct mspipe *p, struct mspipe_counts *out);

/* The exptime to send for an item at now_ms (mover clock): 0 never; -1 expired (skip);
 * relative seconds up to 30 days; beyond, absolute on the destination's clock. Rounds
 * down: a lifetime is never extended. */
int64_t mspipe_exptime(int64_t expires_at_ms, int64_t now_ms, int64_t min_ttl_s,
		       int64_t dest_now_s);

#endif
