/*
 * test_mspipe.c: the pipelined ms stream (core/net/mspipe.c) over a real io_uring, against a
 * real memcached started on a free loopback port (skipped when memcached is not
 * installed), and against a scripted server on a socketpair for what a healthy memcached
 * does not do on request (answer out of memory, go out of sync, close mid-stream).
 *
 * Covered: the 30-day TTL rule; many batches of lent and of copied values (binary keys,
 * client flags, TTLs relative, absolute and none) read back with mg; add mode (a second
 * add answers NS, the value is kept) and set mode (overwrites); items expired in transit
 * skipped and counted; a connection lost mid-run, reconnected through the hook, and every
 * unanswered batch resent; a lost connection without the hook fails; out of memory from a
 * destination that does not evict stops at once (-MCW_ETOOSMALL: exit 3); an NS for no request in
 * flight and a CLIENT_ERROR fail as out of sync (-EPROTO: exit 76). The fault-injection build runs
 * it again with receives that end EAGAIN or EINTR at random (retried inside the pipe).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base.h"
#include "core.h"
#include "mspipe.h"
#include "mc_server.h"

#define WAIT_MS	    5000
#define ITEMS	    1500
#define VALUE_MAX   3000
#define BATCH_RECS  64
#define BATCH_PIECE 128
#define COPY_BYTES  (BATCH_RECS * VALUE_MAX)
#define DAY_S	    86400LL

/* ---- the items ---- */

static uint8_t keys[ITEMS][40];
static uint16_t key_lens[ITEMS];
static uint8_t values[ITEMS][VALUE_MAX];
static uint32_t value_lens[ITEMS];

static void items_init(const char *prefix)
{
	for (uint32_t i = 0; i < ITEMS; i++) {
		if (i % 9 == 4) { /* binary: goes as base64 */
			key_lens[i] = 12;
			for (uint32_t k = 0; k < 12; k++)
				keys[i][k] = (uint8_t)(i * 31 + k * 7);
			keys[i][0] = 0;
			keys[i][1] = (uint8_t)(i & 0xff);
			keys[i][2] = (uint8_t)(i >> 8);
			keys[i][3] = (uint8_t)prefix[0]; /* each test its own keys */
		} else {
			key_lens[i] = (uint16_t)snprintf((char *)keys[i], sizeof(keys[i]), "%s:%u",
							 prefix, i);
		}
		value_lens[i] = i % 11 == 0 ? 0 : (i * 37) % VALUE_MAX;
		for (uint32_t b = 0; b < value_lens[i]; b++)
			values[i][b] = b % 50 == 0 ? '\r' : (uint8_t)(i + b * 13);
	}
}

static uint32_t flags_of(uint32_t i)
{
	return i % 5 == 0 ? 0xffffffffu : i * 7;
}

/* 0: never; 40 days: absolute on the destination's clock; else hours. */
static int64_t ttl_s_of(uint32_t i)
{
	return i % 3 == 0 ? 0 : i % 7 == 0 ? 40 * DAY_S : 3600 + i;
}

/* ---- the fixture ---- */

static uint8_t area[MSPIPE_BATCHES_MAX * 512 * 1024];
static uint8_t recv_area[64 * 1024];
static atomic_uint_fast64_t oom_answers;

struct fixture {
	struct ur_ring *ring;
	struct mspipe p;
	int script_fd;	   /* the scripted server's end, or -1 */
	int reconnect_to;  /* a port to reconnect to, or 0: no hook */
	bool evicts;	   /* what the destination says */
	unsigned connects; /* reconnect hook calls */
};

static int64_t dest_now(void *arg)
{
	(void)arg;
	return time(NULL);
}

static bool dest_evicts(void *arg)
{
	return ((struct fixture *)arg)->evicts;
}

static int reconnect(void *arg)
{
	struct fixture *f = arg;
	f->connects++;
	return mc_server_connect(f->reconnect_to);
}

static void fixture_open(struct fixture *f, int fd, enum mcp_ms_mode mode, size_t copy_bytes)
{
	struct ur_ring_opts ro = { .sq_entries = MCW_RING_ENTRIES };
	assert_int_equal(ur_ring_create(&ro, &f->ring), 0);
	assert_true(mspipe_area_bytes(4, BATCH_RECS, BATCH_PIECE, copy_bytes) <= sizeof(area));
	struct mspipe_opts o = {
		.ring = f->ring,
		.fd = fd,
		.id = 2,
		.what = "the test's memcached",
		.area = area,
		.area_bytes = sizeof(area),
		.batches = 4,
		.batch_records = BATCH_RECS,
		.batch_pieces = BATCH_PIECE,
		.copy_bytes = copy_bytes,
		.recv_area = recv_area,
		.recv_bytes = sizeof(recv_area),
		.mode = mode,
		.min_ttl_s = 1,
		.io_timeout_ms = WAIT_MS,
		.dest_now_s = dest_now,
		.dest_evicts = dest_evicts,
		.reconnect = f->reconnect_to ? reconnect : NULL,
		.arg = f,
		.oom_answers = &oom_answers,
	};
	mspipe_init(&f->p, &o);
}

static void fixture_close(struct fixture *f)
{
	ur_ring_destroy(f->ring);
	if (f->p.o.fd >= 0)
		close(f->p.o.fd);
	if (f->script_fd >= 0)
		close(f->script_fd);
}

/* The scripted server: reads what arrived (without blocking) and answers each mn with
 * reply (NULL: only reads). Returns the bytes received since the last script_reset. */
static char script_in[1 << 20];
static size_t script_len, script_total;

static void script_reset(void)
{
	script_len = script_total = 0;
}

static size_t script_step(struct fixture *f, const char *reply)
{
	for (ssize_t n; f->script_fd >= 0; script_len += (size_t)n, script_total += (size_t)n) {
		n = recv(f->script_fd, script_in + script_len, sizeof(script_in) - script_len - 1,
			 MSG_DONTWAIT);
		if (n <= 0)
			break;
	}
	script_in[script_len] = '\0';
	for (char *mn; reply && (mn = memmem(script_in, script_len, "mn\r\n", 4)) != NULL;) {
		size_t used = (size_t)(mn + 4 - script_in);
		memmove(script_in, script_in + used, script_len - used + 1);
		script_len -= used;
		assert_true(send(f->script_fd, reply, strlen(reply), 0) > 0);
	}
	return script_total;
}

/* One wait and its completions. */
static void pump_once(struct fixture *f, int wait_ms)
{
	int ret = ur_submit_wait(f->ring, 1, wait_ms);
	assert_true(ret >= 0 || ret == -ETIME);
	struct ur_cqe cqes[32];
	unsigned n = ur_reap(f->ring, cqes, ARRAY_LEN(cqes));
	for (unsigned i = 0; i < n; i++) {
		assert_true(mspipe_owns(&f->p, cqes[i].user_data));
		mspipe_on_cqe(&f->p, &cqes[i]);
	}
}

/* Runs the pipe until every batch is answered or it fails. */
static void drive(struct fixture *f, const char *reply)
{
	int64_t deadline = mono_ns() + (int64_t)WAIT_MS * 1000000;
	while (!mspipe_idle(&f->p) && f->p.fault.err == 0) {
		mspipe_kick(&f->p);
		pump_once(f, 10);
		script_step(f, reply);
		if (mono_ns() > deadline)
			fail_msg("the pipe stalled");
	}
}

static struct iovec pieces[ITEMS][2];

/* Adds items [from, to), each value in two pieces (lent) or copied; expired_every-th
 * item already expired. Drives the pipe when every batch is in flight. */
static void add_items(struct fixture *f, uint32_t from, uint32_t to, uint32_t expired_every,
		      const char *reply)
{
	int64_t now_ms = wall_ns() / 1000000;
	for (uint32_t i = from; i < to; i++) {
		uint32_t half = value_lens[i] / 2;
		pieces[i][0] = (struct iovec){ values[i], half };
		pieces[i][1] = (struct iovec){ values[i] + half, value_lens[i] - half };
		int64_t ttl = ttl_s_of(i);
		bool expired = expired_every && i % expired_every == 1;
		struct mspipe_item it = {
			.key = keys[i],
			.key_len = key_lens[i],
			.key_b64 = i % 9 == 4,
			.client_flags = flags_of(i),
			.value_len = value_lens[i],
			.expires_at_ms = expired ? now_ms - 1000
					 : ttl	 ? now_ms + ttl * 1000
						 : 0,
			.pieces = pieces[i],
			.npieces = 2,
		};
		while (mspipe_add(&f->p, &it) == -EAGAIN && f->p.fault.err == 0) {
			mspipe_kick(&f->p);
			pump_once(f, 10);
			script_step(f, reply);
		}
	}
	mspipe_close(&f->p);
	drive(f, reply);
}

/* ---- a real memcached ---- */

static int mc_connect(void)
{
	int port = mc_server_start();
	if (port == 0) {
		fprintf(stderr, "skipped: memcached is not installed\n");
		skip();
	}
	int fd = mc_server_connect(port);
	assert_true(fd >= 0);
	return fd;
}

/* A blocking request and its whole answer (up to and including the line "want"). */
static size_t exchange(int fd, const char *req, char *out, size_t cap, const char *want)
{
	assert_true(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
	size_t len = 0;
	for (;;) {
		ssize_t n = recv(fd, out + len, cap - len - 1, 0);
		assert_true(n > 0);
		len += (size_t)n;
		out[len] = '\0';
		if (len >= strlen(want) && strcmp(out + len - strlen(want), want) == 0)
			return len;
	}
}

/* Reads items [from, to) back with mg: value, flags and TTL as sent (or missing). */
static void check_stored(uint32_t from, uint32_t to, uint32_t expired_every, uint8_t xor)
{
	static char out[VALUE_MAX + 512];
	int fd = mc_connect();
	for (uint32_t i = from; i < to; i++) {
		char k[64], req[128];
		if (i % 9 == 4)
			k[mcp_b64_encode(k, sizeof(k), keys[i], key_lens[i])] = '\0';
		else
			snprintf(k, sizeof(k), "%.*s", key_lens[i], (const char *)keys[i]);
		snprintf(req, sizeof(req), "mg %s%s v f t\r\nmn\r\n", k, i % 9 == 4 ? " b" : "");
		size_t len = exchange(fd, req, out, sizeof(out), "MN\r\n");
		if (expired_every && i % expired_every == 1) {
			assert_string_equal(out, "EN\r\nMN\r\n");
			continue;
		}
		unsigned vlen, flags;
		long long ttl;
		int used = 0;
		/* %n before the CRLF: a value may begin with whitespace */
		if (sscanf(out, "VA %u f%u t%lld%n", &vlen, &flags, &ttl, &used) != 3 ||
		    used == 0 || memcmp(out + used, "\r\n", 2) != 0)
			fail_msg("item %u: \"%.60s\"", i, out);
		used += 2;
		assert_int_equal(vlen, value_lens[i]);
		assert_int_equal(flags, flags_of(i));
		int64_t want = ttl_s_of(i) ? ttl_s_of(i) : -1;
		/* an absolute exptime is read back on memcached's coarse clock: +1 s at most */
		int64_t slack = want > MSPIPE_TTL_REL_MAX_S ? 1 : 0;
		if (ttl > want + slack || ttl < (want < 0 ? -1 : want - 5))
			fail_msg("item %u: TTL %lld, sent %lld", i, ttl, (long long)want);
		assert_true((size_t)used + vlen + 6 <= len);
		for (uint32_t b = 0; b < vlen; b++)
			assert_int_equal((uint8_t)out[used + b], values[i][b] ^ xor);
	}
	close(fd);
}

/* The TTL sent for an item (design decision 2). */
static void test_exptime(void **state)
{
	(void)state;
	int64_t now = 1800000000000LL; /* ms */
	int64_t dest_now = 1799999990;
	assert_int_equal(mspipe_exptime(0, now, 1, dest_now), 0); /* never expires: T0 */
	assert_int_equal(mspipe_exptime(now + 300500, now, 1, dest_now), 300); /* rounds down */
	assert_int_equal(mspipe_exptime(now + 1999, now, 1, dest_now), 1);
	assert_int_equal(mspipe_exptime(now + 999, now, 1, dest_now), -1);    /* < 1 s: expired */
	assert_int_equal(mspipe_exptime(now - 5000, now, 1, dest_now), -1);   /* already expired */
	assert_int_equal(mspipe_exptime(now + 30000, now, 60, dest_now), -1); /* below --min-ttl */
	assert_int_equal(mspipe_exptime(now + 30 * DAY_S * 1000, now, 1, dest_now), 30 * DAY_S);
	/* beyond 30 days: absolute, on the destination's clock */
	assert_int_equal(mspipe_exptime(now + (30 * DAY_S + 1) * 1000, now, 1, dest_now),
			 dest_now + 30 * DAY_S + 1);
	assert_int_equal(mspipe_exptime(now + 400 * DAY_S * 1000, now, 1, dest_now),
			 dest_now + 400 * DAY_S);
}

static void run_store(size_t copy_bytes, const char *prefix)
{
	struct fixture f = { .script_fd = -1 };
	items_init(prefix);
	fixture_open(&f, mc_connect(), MCP_MS_ADD, copy_bytes);
	add_items(&f, 0, ITEMS, 13, NULL);
	assert_int_equal(f.p.fault.err, 0);
	struct mspipe_counts n;
	mspipe_take_counts(&f.p, &n);
	uint64_t expired = 0;
	for (uint32_t i = 0; i < ITEMS; i++)
		expired += i % 13 == 1;
	assert_int_equal(n.expired, expired);
	assert_int_equal(n.sent, ITEMS - expired);
	assert_int_equal(n.present + n.server_errors + n.reconnects, 0);
	check_stored(0, ITEMS, 13, 0);
	/* add again: every one is present (NS), the values stay */
	for (uint32_t i = 0; i < ITEMS; i++)
		for (uint32_t b = 0; b < value_lens[i]; b++)
			values[i][b] ^= 0x5a;
	add_items(&f, 0, ITEMS, 13, NULL);
	mspipe_take_counts(&f.p, &n);
	assert_int_equal(n.present, ITEMS - expired);
	check_stored(0, ITEMS, 13, 0x5a);
	fixture_close(&f);
	/* set mode overwrites */
	fixture_open(&f, mc_connect(), MCP_MS_SET, copy_bytes);
	add_items(&f, 0, ITEMS, 0, NULL);
	mspipe_take_counts(&f.p, &n);
	assert_int_equal(n.sent, ITEMS);
	assert_int_equal(n.present, 0);
	check_stored(0, ITEMS, 0, 0);
	fixture_close(&f);
}

static void test_lent_values(void **state)
{
	(void)state;
	run_store(0, "lent");
}

static void test_copied_values(void **state)
{
	(void)state;
	run_store(COPY_BYTES, "copied");
}

/* The scripted server takes the first batch and closes; the hook reconnects to memcached
 * and every unanswered batch is sent again. */
static void test_reconnect_resends(void **state)
{
	(void)state;
	int sv[2];
	struct fixture f = { .script_fd = -1 };
	items_init("resent");
	f.reconnect_to = mc_server_start();
	if (f.reconnect_to == 0)
		skip();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fixture_open(&f, sv[0], MCP_MS_ADD, 0);
	f.script_fd = sv[1];
	script_reset();
	for (uint32_t i = 0; i < 3 * BATCH_RECS; i++) {
		pieces[i][0] = (struct iovec){ values[i], value_lens[i] }; /* lent */
		struct mspipe_item it = {
			.key = keys[i],
			.key_len = key_lens[i],
			.key_b64 = i % 9 == 4,
			.client_flags = flags_of(i),
			.value_len = value_lens[i],
			.expires_at_ms = ttl_s_of(i) ? wall_ns() / 1000000 + ttl_s_of(i) * 1000 : 0,
			.pieces = pieces[i],
			.npieces = 1
		};
		assert_true(mspipe_add(&f.p, &it) >= 0);
	}
	mspipe_close(&f.p);
	while (script_step(&f, NULL) < 4096) { /* part of the first batch */
		mspipe_kick(&f.p);
		pump_once(&f, 10);
	}
	close(f.script_fd); /* gone without an answer */
	f.script_fd = -1;
	drive(&f, NULL);
	assert_int_equal(f.p.fault.err, 0);
	assert_int_equal(f.connects, 1);
	struct mspipe_counts n;
	mspipe_take_counts(&f.p, &n);
	assert_int_equal(n.reconnects, 1);
	assert_int_equal(n.sent, 3 * BATCH_RECS);
	check_stored(0, 3 * BATCH_RECS, 0, 0);
	fixture_close(&f);
}

/* Runs one batch against the scripted server answering reply; returns the exit code. */
static int scripted(const char *reply, bool evicts, bool hangup)
{
	int sv[2];
	struct fixture f = { .script_fd = -1, .evicts = evicts };
	items_init("scripted");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fixture_open(&f, sv[0], MCP_MS_ADD, 0);
	f.script_fd = sv[1];
	script_reset();
	if (hangup) {
		shutdown(f.script_fd, SHUT_RDWR);
		reply = NULL;
	}
	add_items(&f, 0, 10, 0, reply);
	int code = f.p.fault.err;
	if (code)
		fprintf(stderr, "expected: %s\n", f.p.fault.msg);
	fixture_close(&f);
	return code;
}

static void test_failures(void **state)
{
	(void)state;
	/* out of memory from a destination that does not evict: stopped at once */
	assert_int_equal(
	    scripted("SERVER_ERROR out of memory storing object\r\nMN\r\n", false, false),
	    -MCW_ETOOSMALL);
	assert_int_equal(mcw_exit_code(-MCW_ETOOSMALL), MCW_EXIT_TOO_SMALL);
	/* one that evicts: counted, not stopped (below CAP_OOM_ERRORS_MAX) */
	atomic_store(&oom_answers, 0);
	assert_int_equal(
	    scripted("SERVER_ERROR out of memory storing object\r\nMN\r\n", true, false), 0);
	assert_int_equal(scripted("NS O999999\r\nMN\r\n", true, false), -EPROTO);
	assert_int_equal(scripted("CLIENT_ERROR bad data chunk\r\nMN\r\n", true, false), -EPROTO);
	assert_int_equal(scripted("MN\r\nMN\r\n", true, false), -EPROTO);
	assert_int_equal(mcw_exit_code(-EPROTO), MCW_EXIT_PROTOCOL);
	/* no reconnect hook: a lost connection fails */
	assert_int_equal(scripted(NULL, true, true), -ECONNRESET);
	assert_int_equal(mcw_exit_code(-ECONNRESET), MCW_EXIT_UNAVAILABLE);
}

static int mc_teardown(void **state)
{
	(void)state;
	mc_server_stop();
	return 0;
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the reconnect's warning is expected */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exptime),		  cmocka_unit_test(test_failures),
		cmocka_unit_test(test_lent_values),	  cmocka_unit_test(test_copied_values),
		cmocka_unit_test(test_reconnect_resends),
	};
	return cmocka_run_group_tests(tests, NULL, mc_teardown);
}
