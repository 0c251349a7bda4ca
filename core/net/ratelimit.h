/*
 * ratelimit.h: how hard mcwarm may push a live server. --max-ops (requests per second)
 * and --max-bytes (value bytes per second) are limits for the whole process, shared out
 * equally among the pipes that talk to one server; each pipe keeps a token bucket.
 *
 * Smooth by construction: under an ops limit a batch holds about a millisecond's worth
 * of the limit (RATELIMIT_BATCHES_PER_S), and a bucket holds at most two batches' worth of
 * tokens, so after an idle moment a pipe sends at most two small batches at once (the
 * second makes up for waking late). Byte costs that are only known after the fact (a dump
 * learns a value's size from the reply) are charged then, and the next batch waits until
 * the debt is paid.
 *
 * The limits can change while running: --limits-file FILE is read again whenever it
 * changes ("max-ops = N", "max-bytes = SIZE" lines; a missing line means no limit), and
 * every bucket picks the new rates up at its next batch.
 */
#ifndef MCW_RATELIMIT_H
#define MCW_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "mcw_limits.h"

struct rate_limits {
	atomic_uint_fast64_t ops_per_s;	  /* 0: no limit */
	atomic_uint_fast64_t bytes_per_s; /* 0: no limit */
	unsigned shares;		  /* pipes per server sharing the limits */
	const char *file;		  /* --limits-file, or NULL */
	struct timespec file_mtime;
	bool file_seen;
};

struct rate_bucket {
	struct rate_limits *l;
	double ops, bytes; /* tokens; bytes may go negative (debt) */
	int64_t last_ns;
};

void rate_limits_init(struct rate_limits *l, uint64_t ops_per_s, uint64_t bytes_per_s,
		      unsigned shares, const char *file);
bool rate_limits_active(const struct rate_limits *l);

/* Reads the limits file again if it changed. 1: limits changed (msg says how), 0: no
 * change, -errno: gone (-ENOENT), unreadable, or malformed (-EINVAL); msg says why and
 * the limits stay as they were. */
int rate_limits_poll(struct rate_limits *l, char *msg, size_t cap);
/* rate_limits_poll, logging a change (info) or a bad file (warning). */
void rate_limits_poll_log(struct rate_limits *l);

void rate_bucket_init(struct rate_bucket *b, struct rate_limits *l);
/* 0 when a batch of ops requests and bytes value bytes may go now (the tokens are
 * taken), else the nanoseconds to wait before asking again. l == NULL: always 0. */
int64_t rate_bucket_take(struct rate_bucket *b, uint64_t ops, uint64_t bytes, int64_t now_ns);
/* How many requests the next batch may hold: max without an ops limit, else about
 * RATELIMIT_BATCHES_PER_S batches per second (at least RATELIMIT_BATCH_MIN). */
unsigned rate_bucket_batch(const struct rate_bucket *b, unsigned max);
/* Charges bytes learnt afterwards. */
void rate_bucket_charge(struct rate_bucket *b, uint64_t bytes);

#endif
