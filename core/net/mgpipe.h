/*
 * mgpipe.h: one pipelined `mg` stream over one connection, driven by its owner's io_uring.
 * Used by the dumper (one per worker) and by verify (two per worker: source and
 * destination, replies paired in order).
 *
 * The owner hands it a job (a key chunk), calls mgpipe_kick to send batches and keep a
 * receive posted, routes completions with mgpipe_owns/mgpipe_on_cqe, and pulls replies
 * with mgpipe_next. A reply stays in the receive area until the owner calls
 * mgpipe_consume, so an owner that cannot take a reply yet (its writer is full) simply
 * does not consume it. Batch ends (MN) and server error lines are handled inside.
 *
 * Memory: the owner lends a send area (MCW_BATCHES_INFLIGHT slots of MCW_BATCH_REQ_BYTES)
 * and a receive area that holds at least one largest reply, plus MCW_TLS_PIPE_BYTES when
 * the connection is TLS (net_connect made it so): the pipe takes its ciphertext areas
 * from the end of the receive area, seals each batch before its send and opens what the
 * ring received into the rest of the receive area (tls.h).
 */
#ifndef MCW_MGPIPE_H
#define MCW_MGPIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "keyspool.h"
#include "mcproto.h"
#include "mcw_limits.h"
#include "ratelimit.h"
#include "tls.h"
#include "uring.h"

struct mgpipe_opts {
	struct ur_ring *ring;
	int fd;
	unsigned id;	  /* tags this pipe's completions (0..15) */
	const char *what; /* "the source", "the destination": for messages */
	uint8_t *send_area;
	size_t send_bytes;
	uint8_t *recv_area;
	size_t recv_bytes;
	bool quiet;	  /* mg ... q: misses are silent (dump); else each key gets VA or EN */
	size_t value_max; /* largest value a reply may announce */
	/* Can the receive bytes already consumed be overwritten? NULL: always. If not, the
	 * owner should start releasing them (chunk_writer_flush) and say so later. */
	bool (*recv_reusable)(void *arg);
	void *arg;
	struct rate_limits *limits; /* --max-ops / --max-bytes, or NULL */
};

struct mgpipe_batch {
	bool sent, answered;
	uint32_t first_key, nkeys, values;
	size_t req_len;
};

struct mgpipe {
	struct mgpipe_opts o;
	/* job */
	struct keychunk_view kv;
	const uint32_t *key_off;
	uint32_t nkeys, next_key;
	/* batches: monotonic counters, slot = counter % MCW_BATCHES_INFLIGHT */
	struct mgpipe_batch b[MCW_BATCHES_INFLIGHT];
	uint64_t b_alloc, b_sent, b_answered;
	bool send_busy;
	uint32_t expect_key;
	/* receive area: bytes [rd, wr) are unparsed */
	uint8_t *rbuf;
	size_t rcap, rd, wr, need;
	bool recv_posted;
	unsigned recv_retries; /* EAGAIN/EINTR in a row (MCW_RECV_RETRIES_MAX) */
	int64_t recv_ms;       /* wall clock of the last receive */
	/* TLS: the ring carries ciphertext; tls.cout holds the sealed send in flight */
	bool secure;
	struct tls_pipe tls;
	/* counters since the last mgpipe_take_counts */
	uint64_t fetched, values, misses, server_errors;
	/* rate limit: a batch held back until wake_ns (monotonic), 0 if none */
	struct rate_bucket bucket;
	int64_t wake_ns;
	/* failure: fault.err (-ECONNRESET lost, -EPROTO out of sync, -MCW_EBUG) and why */
	struct mcw_fault fault;
};

enum mgpipe_next {
	MGPIPE_VALUE, /* a VA for key *index; rep->value etc. are set */
	MGPIPE_MISS,  /* an EN for key *index (only without quiet) */
	MGPIPE_NONE,  /* no complete reply yet */
	MGPIPE_FAILED,
};

void mgpipe_init(struct mgpipe *p, const struct mgpipe_opts *o);
/* Starts a job over the keys of a loaded key chunk (key_off[i] = offset of key i). */
void mgpipe_job(struct mgpipe *p, const struct keychunk_view *kv, const uint32_t *key_off,
		uint32_t nkeys);
/* Fills and sends batches, keeps a receive posted. Call before every wait. */
void mgpipe_kick(struct mgpipe *p);
/* The next reply at the front of the receive area (not consumed). */
enum mgpipe_next mgpipe_next(struct mgpipe *p, struct mcp_meta_reply *rep, uint32_t *index);
/* Consumes the reply mgpipe_next returned. */
void mgpipe_consume(struct mgpipe *p, const struct mcp_meta_reply *rep);
/* Every key of the job was sent and answered. */
bool mgpipe_done(const struct mgpipe *p);
/* Replies are due from the server (so silence counts against the timeout). */
bool mgpipe_awaiting(const struct mgpipe *p);
/* When the rate limit lets the next batch go (monotonic ns): the owner must call
 * mgpipe_kick again by then. 0: no batch is held back. */
int64_t mgpipe_wake_ns(const struct mgpipe *p);

const uint8_t *mgpipe_key(const struct mgpipe *p, uint32_t index, uint16_t *len, uint8_t *flags);

bool mgpipe_owns(const struct mgpipe *p, uint64_t user_data);
void mgpipe_on_cqe(struct mgpipe *p, const struct ur_cqe *cqe);

#endif
