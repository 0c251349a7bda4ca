/*
 * test_mgpipe.c: the pipelined mg stream (core/net/mgpipe.c) over a real io_uring and a
 * socketpair whose other end is a scripted memcached played by this thread: between two
 * waits the test reads the requests that arrived, checks them (encoding, batch sizes,
 * batches in flight) and writes replies, a piece at a time when a test wants the
 * replies split. Nothing depends on timing: every wait is for a completion the script
 * makes sure will come (a stall fails the test after WAIT_MS).
 *
 * Covered: batching (many batches, slots reused, at most MCW_BATCHES_INFLIGHT in flight),
 * misses with and without q, base64 keys, replies split at every byte boundary and
 * delivered one byte at a time into the smallest receive area, a reply left unconsumed,
 * SERVER_ERROR and CLIENT_ERROR lines, a connection closed mid-reply, every way a reply
 * can be out of sync (wrong key, wrong order, missing flags, MN without a batch, an
 * unknown or malformed reply, a value over the limit), and the rate limit's batch size.
 * Last, the same pipe against a real memcached started on a free loopback port (skipped
 * when memcached is not installed), so the script's replies are checked against the
 * real ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base.h"
#include "core.h"
#include "keyspool.h"
#include "mgpipe.h"
#include "mc_server.h"

#define WAIT_MS	      5000
#define KEYS_MAX      6000
#define VALUE_MAX     4096
#define REQ_BUF_BYTES (MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES)
#define OUT_BUF_BYTES (4 * 1024 * 1024)

/* ---- the model: keys, values and who misses ---- */

struct model {
	uint32_t n;
	uint8_t key[KEYS_MAX][64];
	uint16_t key_len[KEYS_MAX];
	bool b64[KEYS_MAX];
	bool miss[KEYS_MAX];
	uint32_t value_len[KEYS_MAX];
	/* the key chunk lent to the pipe */
	uint8_t payload[KEYS_MAX * (64 + MCW_KEY_RECORD_HEADER)];
	uint32_t key_off[KEYS_MAX];
	struct keychunk_view kv;
};

static uint8_t value_byte(uint32_t key, uint32_t i)
{
	uint32_t x = (key + 1) * 2654435761u ^ (i * 40503u);
	return (uint8_t)(x >> 13);
}

static uint32_t flags_of(uint32_t i)
{
	return i % 5 == 0 ? 0xffffffffu : i * 7;
}

static int64_t ttl_of(uint32_t i)
{
	return i % 3 == 0 ? -1 : (int64_t)i + 100;
}

/* n keys: every binary_every-th one binary (base64), every miss_every-th one missing;
 * value sizes cycle through small, empty, "\r\n"-laden and VALUE_MAX. */
static void model_init(struct model *m, uint32_t n, uint32_t binary_every, uint32_t miss_every)
{
	assert_true(n <= KEYS_MAX);
	m->n = n;
	uint32_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		m->b64[i] = binary_every && i % binary_every == binary_every - 1;
		if (m->b64[i]) {
			m->key_len[i] = 9;
			for (uint16_t k = 0; k < 9; k++) /* unique: i is in bytes 1 and 2 */
				m->key[i][k] = (uint8_t)(k == 4 ? ' ' : k * 31 + 0x80);
			m->key[i][0] = 0;
			m->key[i][1] = (uint8_t)i;
			m->key[i][2] = (uint8_t)(i >> 8);
		} else {
			m->key_len[i] = (uint16_t)snprintf((char *)m->key[i], 64, "key:%u", i);
		}
		m->miss[i] = miss_every && i % miss_every == miss_every - 1;
		m->value_len[i] = i == 3 ? VALUE_MAX : i % 17 == 0 ? 0 : (i * 37) % 300 + 1;
		m->key_off[i] = off;
		uint8_t *rec = m->payload + off;
		memcpy(rec, &m->key_len[i], 2);
		rec[2] = m->b64[i] ? KEYCHUNK_F_B64 : 0;
		rec[3] = 0;
		memcpy(rec + MCW_KEY_RECORD_HEADER, m->key[i], m->key_len[i]);
		off += MCW_KEY_RECORD_HEADER + m->key_len[i];
	}
	m->kv = (struct keychunk_view){ .payload = m->payload, .payload_bytes = off, .count = n };
}

/* ---- the scripted server ---- */

enum reply_kind {
	R_MODEL,	/* what memcached says: VA, or EN/nothing for a miss */
	R_SERVER_ERROR, /* SERVER_ERROR instead of the reply */
	R_CLIENT_ERROR,
	R_EN_QUIET,	/* EN even though q was asked for */
	R_WRONG_KEY,	/* a VA naming another key */
	R_WRONG_OPAQUE, /* a VA for a key of a later batch */
	R_BACKWARDS,	/* a VA for the previous key again */
	R_NO_FLAGS,	/* a VA without f */
	R_NO_TTL,	/* a VA without t */
	R_EXTRA_MN,	/* MN before the reply (ends the batch early), then the reply */
	R_UNKNOWN,	/* HD: not an answer to mg */
	R_GARBAGE,	/* not a meta reply at all */
	R_TOO_LONG,	/* a VA larger than value_max */
	R_B64_RAW_KEY,	/* the base64 key echoed decoded (memcached 1.6.18 does that) */
};

struct server {
	int fd;
	const struct model *m;
	bool quiet;
	char *req;
	size_t req_len;
	char *out;
	size_t out_len, out_sent;
	size_t piece_bytes;	  /* at most this much per round; 0: everything */
	bool one_batch_per_round; /* answer only the oldest batch each round */
	uint32_t hold_inflight;	  /* answer only with this many batches waiting (or all sent) */
	long close_at;		  /* close after writing this many bytes; -1 never */
	uint32_t special_key;	  /* the key whose reply is special */
	enum reply_kind special;
	uint32_t batches_in, batches_out; /* "mn" received, answered */
	uint32_t max_inflight, max_batch_keys;
	uint32_t next_opaque; /* requests arrive for keys 0, 1, 2, ... */
	uint32_t batch_keys[KEYS_MAX], batch_first[KEYS_MAX];
	uint32_t cur_keys;
	bool closed;
};

static void out_add(struct server *s, const void *p, size_t n)
{
	assert_true(s->out_len + n <= OUT_BUF_BYTES);
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
}

static void out_printf(struct server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_printf(struct server *s, const char *fmt, ...)
{
	char line[1100];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(line));
	out_add(s, line, (size_t)n);
}

/* " k<key>" as memcached echoes it: base64 with b for binary keys. */
static void key_flag(const struct server *s, uint32_t i, bool raw, char *out, size_t cap)
{
	const struct model *m = s->m;
	if (m->b64[i] && !raw) {
		char b[128];
		size_t n = mcp_b64_encode(b, sizeof(b), m->key[i], m->key_len[i]);
		snprintf(out, cap, "k%.*s b", (int)n, b);
	} else {
		snprintf(out, cap, "k%.*s", (int)m->key_len[i], (const char *)m->key[i]);
	}
}

static void reply_va(struct server *s, uint32_t i, uint32_t opaque, bool f, bool t, bool raw)
{
	const struct model *m = s->m;
	char k[160], fs[32] = "", ts[32] = "";
	key_flag(s, i, raw, k, sizeof(k));
	if (f)
		snprintf(fs, sizeof(fs), " f%u", flags_of(i));
	if (t)
		snprintf(ts, sizeof(ts), " t%lld", (long long)ttl_of(i));
	out_printf(s, "VA %u %s%s%s O%u\r\n", m->value_len[i], k, fs, ts, opaque);
	for (uint32_t b = 0; b < m->value_len[i]; b++) {
		uint8_t v = value_byte(i, b);
		out_add(s, &v, 1);
	}
	out_add(s, "\r\n", 2);
}

static void reply_for(struct server *s, uint32_t i)
{
	const struct model *m = s->m;
	enum reply_kind kind = i == s->special_key ? s->special : R_MODEL;
	char k[160];
	switch (kind) {
	case R_MODEL:
	case R_B64_RAW_KEY:
		if (!m->miss[i]) {
			reply_va(s, i, i, true, true, kind == R_B64_RAW_KEY);
		} else if (!s->quiet) {
			key_flag(s, i, false, k, sizeof(k));
			out_printf(s, "EN %s O%u\r\n", k, i);
		}
		return;
	case R_SERVER_ERROR:
		out_printf(s, "SERVER_ERROR out of memory\r\n");
		return;
	case R_CLIENT_ERROR:
		out_printf(s, "CLIENT_ERROR bad data chunk\r\n");
		return;
	case R_EN_QUIET:
		out_printf(s, "EN\r\n");
		return;
	case R_WRONG_KEY:
		out_printf(s, "VA 1 kother f0 t-1 O%u\r\nx\r\n", i);
		return;
	case R_WRONG_OPAQUE:
		reply_va(s, i, i + MCW_BATCH_KEYS, true, true, false);
		return;
	case R_BACKWARDS:
		reply_va(s, i - 1, i - 1, true, true, false);
		return;
	case R_NO_FLAGS:
		reply_va(s, i, i, false, true, false);
		return;
	case R_NO_TTL:
		reply_va(s, i, i, true, false, false);
		return;
	case R_EXTRA_MN:
		out_printf(s, "MN\r\n");
		reply_va(s, i, i, true, true, false);
		return;
	case R_UNKNOWN:
		out_printf(s, "HD O%u\r\n", i);
		return;
	case R_GARBAGE:
		out_printf(s, "what is this\r\n");
		return;
	case R_TOO_LONG:
		out_printf(s, "VA %u k%.*s f0 t-1 O%u\r\n", VALUE_MAX + 1, (int)m->key_len[i],
			   (const char *)m->key[i], i);
		for (uint32_t b = 0; b < VALUE_MAX + 1; b++)
			out_add(s, "z", 1);
		out_add(s, "\r\n", 2);
		return;
	}
}

/* Checks one request line against the model: "mg <key>[ b] k f t v u[ q] O<n>". */
static void check_request(struct server *s, const char *line, size_t len)
{
	const struct model *m = s->m;
	uint32_t i = s->next_opaque++;
	assert_true(i < m->n);
	char want[512], b64[128];
	const char *flags = s->quiet ? "k f t v u q" : "k f t v u";
	if (m->b64[i]) {
		size_t n = mcp_b64_encode(b64, sizeof(b64), m->key[i], m->key_len[i]);
		snprintf(want, sizeof(want), "mg %.*s b %s O%u", (int)n, b64, flags, i);
	} else {
		snprintf(want, sizeof(want), "mg %.*s %s O%u", (int)m->key_len[i],
			 (const char *)m->key[i], flags, i);
	}
	if (len != strlen(want) || memcmp(line, want, len) != 0)
		fail_msg("request \"%.*s\", want \"%s\"", (int)len, line, want);
}

/* Reads every request that arrived and splits it into batches. */
static void server_read(struct server *s)
{
	for (;;) {
		ssize_t n =
		    recv(s->fd, s->req + s->req_len, REQ_BUF_BYTES - s->req_len, MSG_DONTWAIT);
		if (n <= 0)
			break;
		s->req_len += (size_t)n;
	}
	size_t pos = 0;
	for (;;) {
		char *eol = memmem(s->req + pos, s->req_len - pos, "\r\n", 2);
		if (eol == NULL)
			break;
		size_t len = (size_t)(eol - (s->req + pos));
		if (len == 2 && memcmp(s->req + pos, "mn", 2) == 0) {
			s->batch_keys[s->batches_in] = s->cur_keys;
			s->batch_first[s->batches_in] = s->next_opaque - s->cur_keys;
			s->max_batch_keys = MAX(s->max_batch_keys, s->cur_keys);
			s->batches_in++;
			s->cur_keys = 0;
		} else {
			check_request(s, s->req + pos, len);
			s->cur_keys++;
		}
		pos += len + 2;
	}
	memmove(s->req, s->req + pos, s->req_len - pos);
	s->req_len -= pos;
	s->max_inflight = MAX(s->max_inflight, s->batches_in - s->batches_out);
}

/* One round of the server: read requests, answer batches, write a piece. */
static void server_step(struct server *s)
{
	if (s->closed)
		return;
	server_read(s);
	while (s->batches_out < s->batches_in &&
	       (s->batches_in - s->batches_out >= s->hold_inflight || s->next_opaque == s->m->n)) {
		uint32_t b = s->batches_out++;
		for (uint32_t k = 0; k < s->batch_keys[b]; k++)
			reply_for(s, s->batch_first[b] + k);
		out_printf(s, "MN\r\n");
		if (s->one_batch_per_round)
			break;
	}
	size_t n = s->out_len - s->out_sent;
	if (s->piece_bytes && n > s->piece_bytes)
		n = s->piece_bytes;
	if (s->close_at >= 0 && s->out_sent + n >= (size_t)s->close_at) {
		n = (size_t)s->close_at - s->out_sent;
		if (n > 0)
			assert_int_equal(send(s->fd, s->out + s->out_sent, n, 0), (ssize_t)n);
		s->out_sent += n;
		close(s->fd);
		s->closed = true;
		return;
	}
	if (n > 0) {
		/* as much as the socket takes now; the rest in a later round */
		ssize_t sent = send(s->fd, s->out + s->out_sent, n, MSG_DONTWAIT);
		assert_true(sent > 0 || errno == EAGAIN);
		s->out_sent += sent > 0 ? (size_t)sent : 0;
	}
}

/* ---- the owner: a pipe, its ring and buffers ---- */

static uint8_t req_buf[REQ_BUF_BYTES], out_buf[OUT_BUF_BYTES];
static bool ttl_loose; /* against a real server: remaining TTLs may have ticked down */
static uint8_t send_buf[MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES];

struct fixture {
	struct model *m;
	struct server srv;
	struct ur_ring *ring;
	int fd;
	struct mgpipe p;
	uint8_t *send_area, *recv_area;
	size_t recv_bytes;
	struct rate_limits limits;
	/* what the owner received */
	uint8_t got[KEYS_MAX]; /* 0 nothing, 1 value, 2 miss */
	uint32_t values, misses, recvs;
	bool leave_one; /* leave the first value unconsumed once */
};

/* A pipe over a socketpair whose other end the scripted server plays, or over server_fd
 * (a connection to a real server) when it is not -1. */
static struct fixture *fixture_open(struct model *m, bool quiet, size_t recv_bytes,
				    uint64_t ops_per_s, int server_fd)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->m = m;
	int sv[2] = { server_fd, -1 };
	if (server_fd < 0)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[0];
	f->srv = (struct server){ .fd = sv[1],
				  .m = m,
				  .quiet = quiet,
				  .close_at = -1,
				  .special_key = UINT32_MAX,
				  .closed = server_fd >= 0 };
	/* one fixture at a time: the large buffers are allocated once (see main) */
	f->srv.req = (char *)req_buf;
	f->srv.out = (char *)out_buf;
	struct ur_ring_opts ro = { .sq_entries = MCW_RING_ENTRIES };
	assert_int_equal(ur_ring_create(&ro, &f->ring), 0);
	f->send_area = send_buf;
	f->recv_bytes = recv_bytes ? recv_bytes : 256 * 1024;
	/* zeroed, as budget memory is: valgrind does not see the kernel fill it through
	 * io_uring, and would take every received byte for uninitialised */
	f->recv_area = calloc(1, f->recv_bytes);
	assert_non_null(f->recv_area);
	rate_limits_init(&f->limits, ops_per_s, 0, 1, NULL);
	struct mgpipe_opts o = {
		.ring = f->ring,
		.fd = f->fd,
		.id = 3,
		.what = "the scripted server",
		.send_area = f->send_area,
		.send_bytes = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES,
		.recv_area = f->recv_area,
		.recv_bytes = f->recv_bytes,
		.quiet = quiet,
		.value_max = VALUE_MAX,
		.limits = ops_per_s ? &f->limits : NULL,
	};
	mgpipe_init(&f->p, &o);
	mgpipe_job(&f->p, &m->kv, m->key_off, m->n);
	return f;
}

static struct fixture *fixture_new(struct model *m, bool quiet, size_t recv_bytes,
				   uint64_t ops_per_s)
{
	return fixture_open(m, quiet, recv_bytes, ops_per_s, -1);
}

static void fixture_del(struct fixture *f)
{
	ur_ring_destroy(f->ring); /* cancels the receive still posted */
	close(f->fd);
	if (!f->srv.closed)
		close(f->srv.fd);
	free(f->recv_area);
	free(f);
}

static void check_value(struct fixture *f, const struct mcp_meta_reply *rep, uint32_t i)
{
	const struct model *m = f->m;
	assert_false(m->miss[i]);
	assert_int_equal(rep->value_len, m->value_len[i]);
	for (uint32_t b = 0; b < m->value_len[i]; b++)
		if ((uint8_t)rep->value[b] != value_byte(i, b))
			fail_msg("key %u: value byte %u differs", i, b);
	assert_int_equal(rep->client_flags, flags_of(i));
	if (ttl_loose && ttl_of(i) > 0) /* a real server's clock moves on */
		assert_true(rep->ttl <= ttl_of(i) && rep->ttl >= ttl_of(i) - 5);
	else
		assert_int_equal(rep->ttl, ttl_of(i));
	uint16_t len;
	uint8_t kf;
	const uint8_t *key = mgpipe_key(&f->p, i, &len, &kf);
	assert_int_equal(len, m->key_len[i]);
	assert_memory_equal(key, m->key[i], len);
}

/* Takes every complete reply, as a worker does. MGPIPE_NONE or MGPIPE_FAILED. */
static enum mgpipe_next take_replies(struct fixture *f)
{
	struct mcp_meta_reply rep;
	uint32_t i;
	enum mgpipe_next n;
	while ((n = mgpipe_next(&f->p, &rep, &i)) == MGPIPE_VALUE || n == MGPIPE_MISS) {
		assert_true(i < f->m->n);
		if (f->got[i] != 0)
			fail_msg("key %u answered twice", i);
		if (n == MGPIPE_VALUE) {
			check_value(f, &rep, i);
			if (f->leave_one) { /* the owner cannot take it yet: asked again later */
				f->leave_one = false;
				struct mcp_meta_reply again;
				uint32_t j;
				assert_int_equal(mgpipe_next(&f->p, &again, &j), MGPIPE_VALUE);
				assert_int_equal(j, i);
				assert_ptr_equal(again.value, rep.value);
				return MGPIPE_NONE;
			}
			f->values++;
			f->got[i] = 1;
		} else {
			assert_false(f->p.o.quiet);
			assert_true(f->m->miss[i]);
			f->misses++;
			f->got[i] = 2;
		}
		mgpipe_consume(&f->p, &rep);
	}
	return n;
}

static void reap(struct fixture *f)
{
	struct ur_cqe c[MCW_RING_ENTRIES];
	unsigned n = ur_reap(f->ring, c, MCW_RING_ENTRIES);
	for (unsigned k = 0; k < n; k++) {
		assert_true(mgpipe_owns(&f->p, c[k].user_data));
		struct mgpipe other = { .o.id = 4 };
		assert_false(mgpipe_owns(&other, c[k].user_data));
		/* receives carry UD_RECV (1) in the top four bits (mgpipe.c) */
		f->recvs += (c[k].user_data >> 60) == 1 && c[k].res > 0;
		mgpipe_on_cqe(&f->p, &c[k]);
	}
}

/* Runs the job to its end or failure: MGPIPE_NONE (done) or MGPIPE_FAILED. */
static enum mgpipe_next drive(struct fixture *f)
{
	for (unsigned rounds = 0;; rounds++) {
		assert_true(rounds < 10000000);
		if (take_replies(f) == MGPIPE_FAILED)
			return MGPIPE_FAILED;
		mgpipe_kick(&f->p);
		if (f->p.fault.err)
			return MGPIPE_FAILED;
		if (mgpipe_done(&f->p) && !f->p.send_busy)
			return MGPIPE_NONE;
		server_step(&f->srv);
		int timeout_ms = WAIT_MS;
		if (mgpipe_wake_ns(&f->p)) { /* a batch held back by the rate limit */
			int64_t ms = (mgpipe_wake_ns(&f->p) - mono_ns()) / 1000000 + 1;
			timeout_ms = (int)MAX(1, MIN(ms, WAIT_MS));
		}
		int ret = ur_submit_wait(f->ring, 1, timeout_ms);
		if (ret == -ETIME && mgpipe_wake_ns(&f->p))
			continue;
		if (ret != 0)
			fail_msg(
			    "stalled: %s (batches sent %llu answered %llu, server in %u out %u)",
			    strerror(-ret), (unsigned long long)f->p.b_sent,
			    (unsigned long long)f->p.b_answered, f->srv.batches_in,
			    f->srv.batches_out);
		reap(f);
	}
}

/* Every key got what the model says: a value, or (without q) a miss. */
static void check_all_answered(struct fixture *f)
{
	const struct model *m = f->m;
	uint32_t hits = 0, misses = 0;
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->miss[i])
			misses++;
		else
			hits++;
		uint8_t want = m->miss[i] ? (f->p.o.quiet ? 0 : 2) : 1;
		if (f->got[i] != want)
			fail_msg("key %u: got %u, want %u", i, f->got[i], want);
	}
	assert_int_equal(f->values, hits);
	assert_int_equal(f->p.values, hits);
	assert_int_equal(f->p.misses, misses); /* counted at MN with q, at consume without */
	assert_int_equal(f->p.fetched, m->n);
	assert_int_equal(f->p.fault.err, 0);
	assert_true(mgpipe_done(&f->p));
	assert_false(mgpipe_awaiting(&f->p));
}

static struct model model; /* large: one at a time */

/* ---- tests ---- */

static void test_batching(void **state)
{
	(void)state;
	/* more keys than MCW_BATCHES_INFLIGHT full batches: slots are reused */
	uint32_t n = MCW_BATCH_KEYS * MCW_BATCHES_INFLIGHT * 2 + 77;
	model_init(&model, n, 0, 0);
	struct fixture *f = fixture_new(&model, true, 0, 0);
	/* a slow server: it answers one batch at a time, and only once as many are waiting
	 * as the pipe may have in flight */
	f->srv.one_batch_per_round = true;
	f->srv.hold_inflight = MCW_BATCHES_INFLIGHT;
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	uint32_t batches = (n + MCW_BATCH_KEYS - 1) / MCW_BATCH_KEYS;
	assert_int_equal(f->srv.batches_in, batches);
	for (uint32_t b = 0; b + 1 < batches; b++)
		assert_int_equal(f->srv.batch_keys[b], MCW_BATCH_KEYS);
	assert_int_equal(f->srv.batch_keys[batches - 1], n % MCW_BATCH_KEYS);
	/* pipelined, and never more than the limit in flight */
	assert_int_equal(f->srv.max_inflight, MCW_BATCHES_INFLIGHT);
	assert_int_equal(f->p.b_sent, batches);
	fixture_del(f);

	/* a job of one key, and an empty job */
	model_init(&model, 1, 0, 0);
	f = fixture_new(&model, true, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	assert_int_equal(f->srv.batches_in, 1);
	fixture_del(f);
	model_init(&model, 0, 0, 0);
	f = fixture_new(&model, true, 0, 0);
	assert_true(mgpipe_done(&f->p));
	assert_int_equal(drive(f), MGPIPE_NONE);
	assert_int_equal(f->srv.batches_in, 0);
	fixture_del(f);
}

static void test_two_jobs_one_pipe(void **state)
{
	(void)state;
	model_init(&model, 700, 5, 4);
	struct fixture *f = fixture_new(&model, true, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	/* the next job on the same pipe and connection: opaques start again at 0 */
	memset(f->got, 0, sizeof(f->got));
	f->values = 0;
	f->p.values = f->p.misses = f->p.fetched = 0;
	f->srv.next_opaque = 0;
	mgpipe_job(&f->p, &model.kv, model.key_off, model.n);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	fixture_del(f);
}

static void test_misses(void **state)
{
	(void)state;
	/* q: misses are silent and counted when the batch ends */
	model_init(&model, 1500, 0, 3);
	struct fixture *f = fixture_new(&model, true, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	assert_int_equal(f->p.misses, 500);
	fixture_del(f);

	/* without q: each miss is an EN the owner takes, in order */
	f = fixture_new(&model, false, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	assert_int_equal(f->misses, 500);
	fixture_del(f);

	/* every key missing */
	model_init(&model, 600, 0, 1);
	f = fixture_new(&model, true, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	assert_int_equal(f->p.values, 0);
	fixture_del(f);

	/* an EN that q did not hide is still a miss, not an error */
	model_init(&model, 40, 0, 0);
	model.miss[7] = true;
	f = fixture_new(&model, true, 0, 0);
	f->srv.special_key = 7;
	f->srv.special = R_EN_QUIET;
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	fixture_del(f);
}

static void test_base64_keys(void **state)
{
	(void)state;
	for (int quiet = 0; quiet < 2; quiet++) {
		model_init(&model, 900, 2, 7);
		struct fixture *f = fixture_new(&model, quiet, 0, 0);
		assert_int_equal(drive(f), MGPIPE_NONE);
		check_all_answered(f);
		fixture_del(f);
	}
	/* memcached 1.6.18 echoes a base64 key decoded, without b: the same key */
	model_init(&model, 30, 0, 0);
	model.b64[4] = true; /* a printable key sent base64 anyway */
	model.payload[model.key_off[4] + 2] = KEYCHUNK_F_B64;
	struct fixture *f = fixture_new(&model, true, 0, 0);
	f->srv.special_key = 4;
	f->srv.special = R_B64_RAW_KEY;
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	fixture_del(f);
}

/* The same replies, cut in two at every byte, and then delivered one byte at a time,
 * into the smallest receive area the pipe accepts. */
static void test_split_replies(void **state)
{
	(void)state;
	model_init(&model, 6, 4, 5);
	model.value_len[3] = 40; /* short, so every cut is a run of its own */
	/* the stream of replies, as the server writes it */
	struct fixture *f = fixture_new(&model, false, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	size_t total = f->srv.out_len;
	fixture_del(f);
	assert_true(total > 300);

	const size_t smallest = VALUE_MAX + MCW_REPLY_OVERHEAD_MAX;
	for (int quiet = 0; quiet < 2; quiet++) {
		for (size_t cut = 1; cut < total; cut++) {
			f = fixture_new(&model, quiet, smallest, 0);
			/* one round writes the first piece; the rest goes in the next */
			f->srv.piece_bytes = cut;
			assert_int_equal(drive(f), MGPIPE_NONE);
			check_all_answered(f);
			fixture_del(f);
		}
		/* one byte at a time, a largest value among them, a reply left unconsumed */
		model.value_len[3] = VALUE_MAX;
		f = fixture_new(&model, quiet, smallest, 0);
		f->srv.piece_bytes = 1;
		f->leave_one = true;
		assert_int_equal(drive(f), MGPIPE_NONE);
		check_all_answered(f);
		/* a receive per byte (unless injected faults make some receives no-ops, so
		 * that two bytes wait for the next) */
		if (getenv("MCW_URING_FAULTS") == NULL)
			assert_true(f->recvs >= f->srv.out_len);
		fixture_del(f);
		model.value_len[3] = 40;
	}
}

static void test_small_receive_area(void **state)
{
	(void)state;
	/* thousands of replies written at once through a receive area that holds one largest
	 * reply: it is compacted as it goes */
	model_init(&model, 3000, 9, 11);
	for (uint32_t i = 0; i < model.n; i += 50)
		model.value_len[i] = VALUE_MAX - i % 7;
	struct fixture *f = fixture_new(&model, false, VALUE_MAX + MCW_REPLY_OVERHEAD_MAX, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	fixture_del(f);
}

static void test_server_errors(void **state)
{
	(void)state;
	static const enum reply_kind kinds[] = { R_SERVER_ERROR, R_CLIENT_ERROR };
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
		model_init(&model, 1100, 0, 0);
		struct fixture *f = fixture_new(&model, true, 0, 0);
		f->srv.special_key = 600; /* in the second batch */
		f->srv.special = kinds[k];
		assert_int_equal(drive(f), MGPIPE_NONE);
		/* counted, not fatal; the key is a miss (no value came) */
		assert_int_equal(f->p.fault.err, 0);
		assert_int_equal(f->p.server_errors, 1);
		assert_int_equal(f->got[600], 0);
		assert_int_equal(f->values, model.n - 1);
		assert_int_equal(f->p.misses, 1);
		assert_int_equal(f->p.fetched, model.n);
		fixture_del(f);
	}
}

static void test_connection_closed(void **state)
{
	(void)state;
	model_init(&model, 20, 0, 0);
	/* find how long the replies are, then close at a few places inside them */
	struct fixture *f = fixture_new(&model, true, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	size_t total = f->srv.out_len;
	fixture_del(f);
	static const long at[] = { 0, 1, 17, -2 };
	for (size_t i = 0; i < ARRAY_LEN(at); i++) {
		f = fixture_new(&model, true, 0, 0);
		f->srv.close_at = at[i] >= 0 ? at[i] : (long)total + at[i];
		assert_int_equal(drive(f), MGPIPE_FAILED);
		assert_int_equal(f->p.fault.err, -ECONNRESET);
		assert_non_null(strstr(f->p.fault.msg, "the scripted server"));
		assert_false(mgpipe_done(&f->p));
		/* what arrived before the close was delivered, and nothing was invented */
		for (uint32_t k = 0; k < model.n; k++)
			assert_true(f->got[k] == 0 || f->got[k] == 1);
		/* once failed, it stays failed */
		struct mcp_meta_reply rep;
		uint32_t idx;
		assert_int_equal(mgpipe_next(&f->p, &rep, &idx), MGPIPE_FAILED);
		fixture_del(f);
	}
}

static void test_out_of_sync(void **state)
{
	(void)state;
	static const struct {
		enum reply_kind kind;
		bool quiet;
		const char *words;
	} c[] = {
		{ R_WRONG_KEY, true, "another key" },	  { R_WRONG_OPAQUE, true, "out of order" },
		{ R_BACKWARDS, true, "out of order" },	  { R_NO_FLAGS, true, "without the flags" },
		{ R_NO_TTL, false, "without the flags" }, { R_EXTRA_MN, false, "out of order" },
		{ R_UNKNOWN, true, "unexpected reply" },  { R_GARBAGE, true, "malformed reply" },
		{ R_TOO_LONG, true, "malformed reply" },  { R_WRONG_KEY, false, "another key" },
	};
	for (size_t k = 0; k < ARRAY_LEN(c); k++) {
		model_init(&model, 30, 0, 0);
		struct fixture *f = fixture_new(&model, c[k].quiet, 0, 0);
		f->srv.special_key = 9;
		f->srv.special = c[k].kind;
		assert_int_equal(drive(f), MGPIPE_FAILED);
		if (f->p.fault.err != -EPROTO || strstr(f->p.fault.msg, c[k].words) == NULL)
			fail_msg("case %zu: exit %d \"%s\", want \"%s\"", k, f->p.fault.err,
				 f->p.fault.msg, c[k].words);
		/* the keys before it came through; nothing after it was taken */
		for (uint32_t i = 0; i < model.n; i++)
			assert_int_equal(f->got[i], i < 9 ? 1 : 0);
		fixture_del(f);
	}

	/* an MN when no batch is in flight */
	model_init(&model, 3, 0, 0);
	struct fixture *f = fixture_new(&model, true, 0, 0);
	assert_int_equal(drive(f), MGPIPE_NONE);
	assert_int_equal(send(f->srv.fd, "MN\r\n", 4, 0), 4);
	mgpipe_kick(&f->p);
	assert_int_equal(ur_submit_wait(f->ring, 1, WAIT_MS), 0);
	reap(f);
	struct mcp_meta_reply rep;
	uint32_t idx;
	assert_int_equal(mgpipe_next(&f->p, &rep, &idx), MGPIPE_FAILED);
	assert_int_equal(f->p.fault.err, -EPROTO);
	assert_non_null(strstr(f->p.fault.msg, "without a batch in flight"));
	fixture_del(f);
}

static void test_rate_limited_batches(void **state)
{
	(void)state;
	/* 16,000 requests/s: a batch of 16 (a thousandth of a second's worth) */
	model_init(&model, 200, 0, 6);
	struct fixture *f = fixture_new(&model, true, 0, 16000);
	assert_int_equal(drive(f), MGPIPE_NONE);
	check_all_answered(f);
	assert_int_equal(f->srv.max_batch_keys, 16);
	assert_int_equal(f->srv.batches_in, (200 + 15) / 16);
	fixture_del(f);
}

/* ---- against a real memcached ---- */

static void mc_fill(int fd, const struct model *m)
{
	size_t len = 0;
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->miss[i])
			continue;
		char k[128];
		if (m->b64[i]) {
			size_t n = mcp_b64_encode(k, sizeof(k), m->key[i], m->key_len[i]);
			k[n] = '\0';
		} else {
			snprintf(k, sizeof(k), "%.*s", (int)m->key_len[i], (const char *)m->key[i]);
		}
		int64_t ttl = ttl_of(i) < 0 ? 0 : ttl_of(i);
		len += (size_t)snprintf((char *)out_buf + len, OUT_BUF_BYTES - len,
					"ms %s %u%s F%u T%lld q\r\n", k, m->value_len[i],
					m->b64[i] ? " b" : "", flags_of(i), (long long)ttl);
		for (uint32_t b = 0; b < m->value_len[i]; b++)
			out_buf[len++] = value_byte(i, b);
		memcpy(out_buf + len, "\r\n", 2);
		len += 2;
		assert_true(len < OUT_BUF_BYTES - 512);
	}
	memcpy(out_buf + len, "mn\r\n", 4);
	len += 4;
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, out_buf + off, len - off, 0);
		assert_true(n > 0);
		off += (size_t)n;
	}
	/* every ms is quiet unless it fails: the answer is MN alone */
	char in[64];
	size_t got = 0;
	while (got < 4) {
		ssize_t n = recv(fd, in + got, sizeof(in) - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
	if (got != 4 || memcmp(in, "MN\r\n", 4) != 0)
		fail_msg("filling memcached: \"%.*s\"", (int)got, in);
}

static void test_real_memcached(void **state)
{
	(void)state;
	int port = mc_server_start();
	if (port == 0) {
		fprintf(stderr, "skipped: memcached is not installed\n");
		skip();
	}
	int fd = mc_server_connect(port);
	assert_true(fd >= 0);
	ttl_loose = true;
	/* many batches, binary keys, a miss every 7th key, values up to VALUE_MAX */
	model_init(&model, 3 * MCW_BATCH_KEYS + 100, 10, 7);
	mc_fill(fd, &model);
	/* as the dump asks (q: misses silent), then as verify asks (every key answered) */
	for (int quiet = 1; quiet >= 0; quiet--) {
		struct fixture *f = fixture_open(&model, quiet, 0, 0, fd);
		assert_int_equal(drive(f), MGPIPE_NONE);
		check_all_answered(f);
		fixture_del(f); /* closes fd */
		fd = mc_server_connect(port);
		assert_true(fd >= 0);
	}
	close(fd);
}

/* Stops memcached however the test ended (a failed assertion leaves it running). */
static int mc_teardown(void **state)
{
	(void)state;
	ttl_loose = false;
	mc_server_stop();
	return 0;
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the server errors below are expected */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batching),
		cmocka_unit_test(test_two_jobs_one_pipe),
		cmocka_unit_test(test_misses),
		cmocka_unit_test(test_base64_keys),
		cmocka_unit_test(test_split_replies),
		cmocka_unit_test(test_small_receive_area),
		cmocka_unit_test(test_server_errors),
		cmocka_unit_test(test_connection_closed),
		cmocka_unit_test(test_out_of_sync),
		cmocka_unit_test(test_rate_limited_batches),
		cmocka_unit_test_teardown(test_real_memcached, mc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
