/*
 * impact.c: mcw-impact, the live client the benchmark runs next to a dump: an open-loop,
 * fixed-rate stream of meta gets and sets against one memcached, printing what that client
 * experienced (throughput, hits, latency percentiles) as one JSON line.
 *
 * No coordinated omission: request k of the run is due at t0 + k / rate and belongs to
 * connection k mod C, so each connection carries rate / C with its own offset. It is sent
 * when due (at once if late, pipelined behind unanswered ones up to INFLIGHT_MAX) and its
 * latency runs from its DUE time to the arrival of its whole reply: time spent waiting for
 * the tool, the socket or the in-flight cap is charged to it, so a stalled server cannot
 * hide its queue by slowing the client down. Requests still unsent ISSUE_GRACE_NS after
 * the schedule ends are given up and show as sent < scheduled (the server could not keep
 * up; the percentiles then cover completed requests only). How late each request left
 * the tool is reported too (send_late_*): when it is large, the tool did not get the CPU.
 *
 * One thread, one epoll loop over non-blocking sockets: the tool shares two vCPUs with the
 * servers it measures. It still wakes about twice per request at modest rates (once to
 * send, once for the reply), as a sender and a receiver thread per connection would, but
 * it takes whatever coincides in one wake-up, needs no hand-over between threads, and adds
 * one runnable thread, not 2 x C, to the machine being measured. clock_nanosleep cannot
 * also wake for a reply, so the loop sleeps in epoll_pwait2 with a nanosecond timeout
 * recomputed from the absolute CLOCK_MONOTONIC due time on every pass (errors never
 * accumulate), with timer slack cut to 1 ns: the default 50 us would be charged to every
 * request.
 *
 * Invariants: (1) a connection's replies come in request order, so its in-flight requests
 * are a FIFO ring; (2) a request enters the ring when its bytes enter the connection's
 * output buffer and leaves when its reply is parsed, so the output buffer never holds more
 * than INFLIGHT_MAX requests; (3) nothing allocates after start-up.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"

#define NS_PER_S	   1000000000ull
#define CONNS_MAX	   16
#define INFLIGHT_MAX	   64  /* requests sent and not answered, per connection */
#define KEY_BYTES_MAX	   250 /* memcached's limit */
#define INDEX_DIGITS_MAX   20  /* a uint64_t in decimal */
#define PREFIX_BYTES_MAX   (KEY_BYTES_MAX - INDEX_DIGITS_MAX)
#define VALUE_BYTES_MAX	   (256u << 10)
#define LINE_BYTES_MAX	   512	       /* one request or reply line, value excluded */
#define REPLY_SHOW_BYTES   80	       /* of a bad reply, in the error message */
#define RECV_BYTES	   (64u << 10) /* read room beyond the largest reply */
#define REPLY_TIMEOUT_NS   (5 * NS_PER_S)
#define CONNECT_TIMEOUT_NS (5 * NS_PER_S)
#define ISSUE_GRACE_NS	   NS_PER_S	/* sending goes on this long after the schedule ends */
#define PRELOAD_BATCH_KEYS INFLIGHT_MAX /* a batch reuses the output buffer */
#define PRELOAD_AHEAD	   4		/* preload batches in flight */
#define RATE_MAX	   10000000ull
#define SECONDS_MAX	   86400ull
#define KEYS_MAX	   1000000000ull
#define HIST_SUB_BITS	   8 /* 128 buckets per octave: at most 0.8% wide */
#define HIST_SUB	   (1u << HIST_SUB_BITS)
#define HIST_HALF	   (HIST_SUB / 2)
#define HIST_BUCKETS	   (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_HALF)
#define EXIT_FAIL	   1
#define EXIT_USAGE	   64

static_assert((INFLIGHT_MAX & (INFLIGHT_MAX - 1)) == 0, "the ring index wraps by mask");
static_assert(LINE_BYTES_MAX >= KEY_BYTES_MAX + 64, "a line holds a key and its flags");
static_assert(RATE_MAX * SECONDS_MAX < UINT64_MAX / 2, "request indexes fit in 63 bits");
static_assert(RATE_MAX * NS_PER_S < UINT64_MAX, "due_ns multiplies a remainder by 1e9");

/* Stays on in release builds: these catch our bugs, not the server's. */
#define ASSERT(c)                                                                                  \
	((c) ? (void)0                                                                             \
	     : (fprintf(stderr, "mcw-impact: %s:%d: assertion failed: %s\n", __FILE__, __LINE__,   \
			#c),                                                                       \
		abort()))

struct opts {
	char host[256];
	const char *port;
	const char *prefix;
	uint64_t rate, seconds, conns, keys, value_bytes, seed;
	double set_ratio;
	bool preload;
};

/* Log-linear latency histogram in nanoseconds, HDR style: values below HIST_SUB have a
 * bucket each; above, each power of two is split into HIST_HALF equal buckets. */
struct hist {
	uint64_t count, sum_ns, max_ns;
	uint64_t buckets[HIST_BUCKETS];
};

struct req {
	uint64_t due_ns, sent_ns;
	bool is_set;
};

struct conn {
	unsigned idx;
	int fd;
	uint64_t next_k;      /* run-wide index of this connection's next request */
	uint64_t next_due_ns; /* due time of next_k */
	bool cap_counted;     /* next_k already counted as held back by the cap */
	bool want_out;	      /* EPOLLOUT armed: out has bytes the socket refused */
	struct req ring[INFLIGHT_MAX];
	unsigned head, inflight;
	char *out; /* requests not yet accepted by the socket: [out_off, out_len) */
	size_t out_off, out_len;
	char *in; /* received bytes not yet parsed: [0, in_len) */
	size_t in_len;
};

struct run {
	struct opts o;
	size_t prefix_len;
	char set_tail[32]; /* " <value_bytes> T0" */
	size_t set_tail_len;
	size_t req_bytes_max, out_cap, in_cap;
	char *value;
	uint64_t total; /* requests in the schedule */
	uint64_t t0_ns, issue_end_ns, last_reply_ns;
	uint64_t rng;
	int ep;
	uint64_t sent, completed, gets, hits, misses, sets, errors, cap_hits;
	struct hist hist;      /* due to reply */
	struct hist late_hist; /* due to send */
	struct conn conns[CONNS_MAX];
};

enum reply {
	REPLY_HIT,
	REPLY_MISS,
	REPLY_STORED,
	REPLY_NOT_STORED,
	REPLY_SERVER_ERROR,
	REPLY_NEED_MORE,
	REPLY_BAD,
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------------------ */

static unsigned hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS + 1;
	return HIST_SUB + (shift - 1) * HIST_HALF + (unsigned)(v >> shift) - HIST_HALF;
}

/* The middle of bucket i: within 0.4% of any value recorded in it. */
static uint64_t hist_bucket_mid(unsigned i)
{
	if (i < HIST_SUB)
		return i;
	unsigned shift = (i - HIST_SUB) / HIST_HALF + 1;
	uint64_t low = (uint64_t)((i - HIST_SUB) % HIST_HALF + HIST_HALF) << shift;
	return low + ((1ull << shift) - 1) / 2;
}

static void hist_add(struct hist *h, uint64_t v_ns)
{
	unsigned i = hist_index(v_ns);
	ASSERT(i < HIST_BUCKETS);
	h->buckets[i]++;
	h->count++;
	h->sum_ns += v_ns;
	if (v_ns > h->max_ns)
		h->max_ns = v_ns;
}

/* The smallest recorded value v with at least a fraction q of values <= v (bucket middle). */
static uint64_t hist_quantile_ns(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
	uint64_t seen = 0;
	rank = rank < 1 ? 1 : rank > h->count ? h->count : rank;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t mid = hist_bucket_mid(i);
			return mid < h->max_ns ? mid : h->max_ns;
		}
	}
	ASSERT(false);
	return h->max_ns;
}

/* ---- requests ------------------------------------------------------------------------- */

/* splitmix64: fast, and good enough to pick keys and operations. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = bench_mix64(*s);
	*s += 0x9e3779b97f4a7c15ull;
	return z;
}

static char *put_bytes(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Renders `mg <key> v` for key index i at p; returns its length. */
static size_t get_render(const struct run *r, char *p, uint64_t i)
{
	char *s = put_bytes(p, "mg ", 3);
	s = put_bytes(s, r->o.prefix, r->prefix_len);
	s = bench_put_u64(s, i);
	s = put_bytes(s, " v\r\n", 4);
	return (size_t)(s - p);
}

/* Renders `ms <key> <len> T0 [q]` and the value for key index i at p; returns its length. */
static size_t set_render(const struct run *r, char *p, uint64_t i, bool quiet)
{
	char *s = put_bytes(p, "ms ", 3);
	s = put_bytes(s, r->o.prefix, r->prefix_len);
	s = bench_put_u64(s, i);
	s = put_bytes(s, r->set_tail, r->set_tail_len);
	if (quiet)
		s = put_bytes(s, " q", 2);
	s = put_bytes(s, "\r\n", 2);
	s = put_bytes(s, r->value, r->o.value_bytes);
	s = put_bytes(s, "\r\n", 2);
	ASSERT((size_t)(s - p) <= r->req_bytes_max);
	return (size_t)(s - p);
}

/* Due time of request k: t0 + k / rate, exact to the nanosecond without overflow. */
static uint64_t due_ns(const struct run *r, uint64_t k)
{
	uint64_t whole_s = k / r->o.rate, rem = k % r->o.rate;
	return r->t0_ns + whole_s * NS_PER_S + rem * NS_PER_S / r->o.rate;
}

/* ---- replies -------------------------------------------------------------------------- */

/* Decodes the reply at buf[0, len); on a complete reply sets *used to its length. Never
 * reads past len; a value longer than value_max is BAD (it cannot fit our buffer). */
static enum reply reply_decode(const char *buf, size_t len, size_t value_max, size_t *used)
{
	const char *nl = memchr(buf, '\n', len < LINE_BYTES_MAX ? len : LINE_BYTES_MAX);
	if (nl == NULL)
		return len < LINE_BYTES_MAX ? REPLY_NEED_MORE : REPLY_BAD;
	size_t line = (size_t)(nl - buf) + 1;
	if (line < 4 || buf[line - 2] != '\r')
		return REPLY_BAD;
	*used = line;
	if (memcmp(buf, "VA ", 3) == 0) {
		uint64_t vlen = 0;
		size_t i = 3;
		for (; i < line - 2 && buf[i] >= '0' && buf[i] <= '9' && vlen <= value_max; i++)
			vlen = vlen * 10 + (uint64_t)(buf[i] - '0');
		if (i == 3 || (buf[i] != '\r' && buf[i] != ' ') || vlen > value_max)
			return REPLY_BAD;
		if (len - line < vlen + 2)
			return REPLY_NEED_MORE;
		if (buf[line + vlen] != '\r' || buf[line + vlen + 1] != '\n')
			return REPLY_BAD;
		*used = line + vlen + 2;
		return REPLY_HIT;
	}
	if (line == 4 && memcmp(buf, "EN", 2) == 0)
		return REPLY_MISS;
	if (line == 4 && memcmp(buf, "HD", 2) == 0)
		return REPLY_STORED;
	if (line == 4 && memcmp(buf, "NS", 2) == 0)
		return REPLY_NOT_STORED;
	if (line > 13 && memcmp(buf, "SERVER_ERROR ", 13) == 0)
		return REPLY_SERVER_ERROR;
	return REPLY_BAD;
}

static bool reply_is_for_set(enum reply k)
{
	return k == REPLY_STORED || k == REPLY_NOT_STORED;
}

static bool reply_is_for_get(enum reply k)
{
	return k == REPLY_HIT || k == REPLY_MISS;
}

static int conn_fail(const struct run *r, const struct conn *c, const char *what, int err)
{
	fprintf(stderr, "mcw-impact: connection %u to %s:%s: %s: %s\n", c->idx, r->o.host,
		r->o.port, what, strerror(-err));
	return err;
}

static int conn_fail_reply(const struct run *r, const struct conn *c, const char *buf, size_t len)
{
	const char *nl = memchr(buf, '\n', len);
	size_t show = nl ? (size_t)(nl - buf) : len;
	show = show < REPLY_SHOW_BYTES ? show : REPLY_SHOW_BYTES;
	const char *to = c->inflight == 0 ? "nothing" : c->ring[c->head].is_set ? "a set" : "a get";
	fprintf(stderr,
		"mcw-impact: connection %u to %s:%s: unexpected reply to %s: \"%.*s\" (is it "
		"memcached 1.6 or later, and are the keys under --prefix %s ours alone?)\n",
		c->idx, r->o.host, r->o.port, to, (int)show, buf, r->o.prefix);
	return -EPROTO;
}

/* Retires the oldest request of c with reply k, which arrived at arrived_ns. */
static void conn_complete(struct run *r, struct conn *c, enum reply k, uint64_t arrived_ns)
{
	ASSERT(c->inflight > 0);
	const struct req *q = &c->ring[c->head];
	ASSERT(arrived_ns >= q->due_ns);
	hist_add(&r->hist, arrived_ns - q->due_ns);
	r->gets += !q->is_set;
	r->sets += q->is_set;
	r->hits += k == REPLY_HIT;
	r->misses += k == REPLY_MISS;
	r->errors += k == REPLY_NOT_STORED || k == REPLY_SERVER_ERROR;
	r->completed++;
	r->last_reply_ns = arrived_ns;
	c->head = (c->head + 1) & (INFLIGHT_MAX - 1);
	c->inflight--;
}

/* Retires every complete reply in c->in; keeps a partial one for the next read. */
static int conn_parse(struct run *r, struct conn *c, uint64_t arrived_ns)
{
	size_t pos = 0;
	while (pos < c->in_len) {
		size_t used = 0;
		const char *buf = c->in + pos;
		enum reply k =
		    reply_decode(buf, c->in_len - pos, r->in_cap - LINE_BYTES_MAX - 2, &used);
		if (k == REPLY_NEED_MORE)
			break;
		bool is_set = c->inflight > 0 && c->ring[c->head].is_set;
		if (k == REPLY_BAD || c->inflight == 0 || (is_set && reply_is_for_get(k)) ||
		    (!is_set && reply_is_for_set(k)))
			return conn_fail_reply(r, c, buf, c->in_len - pos);
		conn_complete(r, c, k, arrived_ns);
		pos += used;
	}
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	return 0;
}

/* Reads what the socket holds and retires the replies; 0 or -errno (message printed). */
static int conn_read(struct run *r, struct conn *c)
{
	for (;;) {
		size_t room = r->in_cap - c->in_len;
		ASSERT(room > 0);
		ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return conn_fail(r, c, "receive", -errno);
		if (n == 0)
			return conn_fail(r, c, "closed by the server", -ECONNRESET);
		uint64_t arrived_ns = now_ns();
		c->in_len += (size_t)n;
		int ret = conn_parse(r, c, arrived_ns);
		if (ret < 0 || (size_t)n < room)
			return ret;
	}
}

/* ---- sending -------------------------------------------------------------------------- */

static int conn_want_out(struct run *r, struct conn *c, bool want)
{
	if (want == c->want_out)
		return 0;
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
	if (epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return conn_fail(r, c, "epoll_ctl", -errno);
	c->want_out = want;
	return 0;
}

/* Sends what the socket accepts of c->out without blocking; arms EPOLLOUT for the rest. */
static int conn_flush(struct run *r, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			return conn_fail(r, c, "send", -errno);
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return conn_want_out(r, c, c->out_len > 0);
}

/* Queues every request of c that is due by now, as far as the in-flight cap allows, and
 * sends them in one go. A request held back by the cap is counted once, and keeps its due
 * time: its wait is latency. */
static int conn_issue_due(struct run *r, struct conn *c, uint64_t now)
{
	bool queued = false;
	while (c->next_k < r->total && c->next_due_ns <= now && now < r->issue_end_ns) {
		if (c->inflight == INFLIGHT_MAX) {
			r->cap_hits += !c->cap_counted;
			c->cap_counted = true;
			break;
		}
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		ASSERT(c->out_len + r->req_bytes_max <= r->out_cap);
		uint64_t pick = rng_next(&r->rng), key = rng_next(&r->rng);
		key = (uint64_t)(((unsigned __int128)key * r->o.keys) >> 64);
		bool is_set = (double)(pick >> 11) * 0x1p-53 < r->o.set_ratio;
		char *p = c->out + c->out_len;
		c->out_len += is_set ? set_render(r, p, key, false) : get_render(r, p, key);
		c->ring[(c->head + c->inflight) & (INFLIGHT_MAX - 1)] =
		    (struct req){ .due_ns = c->next_due_ns, .sent_ns = now, .is_set = is_set };
		c->inflight++;
		hist_add(&r->late_hist, now - c->next_due_ns);
		r->sent++;
		c->next_k += r->o.conns;
		c->next_due_ns = due_ns(r, c->next_k);
		c->cap_counted = false;
		queued = true;
	}
	return queued ? conn_flush(r, c) : 0;
}

/* ---- the timed phase ------------------------------------------------------------------ */

/* The earliest instant the loop must act without a socket event: a request falling due on
 * a connection the cap does not hold, or the reply deadline of an oldest request. */
static uint64_t run_next_wake_ns(const struct run *r, uint64_t now)
{
	uint64_t wake = UINT64_MAX;
	for (unsigned i = 0; i < r->o.conns; i++) {
		const struct conn *c = &r->conns[i];
		if (c->next_k < r->total && c->inflight < INFLIGHT_MAX && now < r->issue_end_ns &&
		    c->next_due_ns < wake)
			wake = c->next_due_ns;
		if (c->inflight > 0 && c->ring[c->head].sent_ns + REPLY_TIMEOUT_NS < wake)
			wake = c->ring[c->head].sent_ns + REPLY_TIMEOUT_NS;
	}
	return wake;
}

/* Sends what is due on every connection and checks the reply deadlines. Returns 1 when
 * every request has been sent (or given up) and answered, 0 to go on, or -errno (message
 * printed). */
static int run_step(struct run *r, uint64_t now)
{
	bool done = true;
	for (unsigned i = 0; i < r->o.conns; i++) {
		struct conn *c = &r->conns[i];
		int ret = conn_issue_due(r, c, now);
		if (ret < 0)
			return ret;
		if (c->inflight > 0 && now - c->ring[c->head].sent_ns >= REPLY_TIMEOUT_NS)
			return conn_fail(
			    r, c, "no reply within 5 s (is the server stopped, or swapping?)",
			    -ETIMEDOUT);
		done =
		    done && (c->next_k >= r->total || now >= r->issue_end_ns) && c->inflight == 0;
	}
	return done ? 1 : 0;
}

static int run_timed(struct run *r)
{
	struct epoll_event evs[CONNS_MAX];
	for (unsigned i = 0; i < r->o.conns; i++) {
		struct conn *c = &r->conns[i];
		c->next_k = i;
		c->next_due_ns = due_ns(r, c->next_k);
	}
	for (;;) {
		uint64_t now = now_ns();
		int ret = run_step(r, now);
		if (ret != 0)
			return ret < 0 ? ret : 0;
		uint64_t wake = run_next_wake_ns(r, now);
		ASSERT(wake != UINT64_MAX);
		now = now_ns();
		uint64_t wait = wake > now ? wake - now : 0;
		struct timespec ts = { .tv_sec = (time_t)(wait / NS_PER_S),
				       .tv_nsec = (long)(wait % NS_PER_S) };
		int n = epoll_pwait2(r->ep, evs, CONNS_MAX, &ts, NULL);
		if (n < 0 && errno != EINTR) {
			int err = -errno;
			fprintf(stderr, "mcw-impact: epoll_pwait2: %s\n", strerror(-err));
			return err;
		}
		for (int i = 0; i < n && ret == 0; i++) {
			struct conn *c = evs[i].data.ptr;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				ret = conn_read(r, c);
			if (ret == 0 && (evs[i].events & EPOLLOUT))
				ret = conn_flush(r, c);
		}
		if (ret < 0)
			return ret;
	}
}

/* ---- connecting and preloading -------------------------------------------------------- */

/* Waits until fd is ready for events or deadline_ns passes: 0, -ETIMEDOUT or -errno. */
static int fd_wait(int fd, short events, uint64_t deadline_ns)
{
	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int ms = (int)((deadline_ns - now + 999999) / 1000000);
		int n = poll(&p, 1, ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			return 0;
	}
}

/* Connects a non-blocking TCP_NODELAY socket to one of ai within CONNECT_TIMEOUT_NS. */
static int dial_one(const struct addrinfo *ai, int *fd_out)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int ret = 0, one = 1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
		ret = -errno;
	if (ret == 0)
		ret = fd_wait(fd, POLLOUT, now_ns() + CONNECT_TIMEOUT_NS);
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (ret == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		ret = -errno;
	if (ret == 0 && soerr != 0)
		ret = -soerr;
	if (ret == 0 && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		ret = -errno;
	if (ret < 0) {
		close(fd);
		return ret;
	}
	*fd_out = fd;
	return 0;
}

static int dial(const struct run *r, int *fd_out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int gai = getaddrinfo(r->o.host, r->o.port, &hints, &res);
	if (gai != 0) {
		fprintf(stderr, "mcw-impact: cannot resolve %s:%s: %s\n", r->o.host, r->o.port,
			gai_strerror(gai));
		return -EHOSTUNREACH;
	}
	int ret = -EHOSTUNREACH;
	for (const struct addrinfo *ai = res; ai != NULL && ret < 0; ai = ai->ai_next)
		ret = dial_one(ai, fd_out);
	freeaddrinfo(res);
	if (ret < 0)
		fprintf(stderr,
			"mcw-impact: cannot connect to %s:%s: %s (is memcached running "
			"there?)\n",
			r->o.host, r->o.port, strerror(-ret));
	return ret;
}

/* Sends all of buf, each wait bounded by REPLY_TIMEOUT_NS: 0 or -errno. */
static int send_bounded(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (n < 0) {
			int ret = fd_wait(fd, POLLOUT, now_ns() + REPLY_TIMEOUT_NS);
			if (ret < 0)
				return ret;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Waits for preload replies on c: returns how many MN arrived, or -errno (message printed).
 * Quiet sets only speak up to fail, and a failed preload would make gets miss silently. */
static int64_t preload_read(struct run *r, struct conn *c)
{
	int ret = fd_wait(c->fd, POLLIN, now_ns() + REPLY_TIMEOUT_NS);
	if (ret < 0)
		return conn_fail(r, c, "preload: no reply within 5 s", ret);
	ssize_t n = recv(c->fd, c->in + c->in_len, r->in_cap - c->in_len, MSG_DONTWAIT);
	if (n == 0)
		return conn_fail(r, c, "preload: closed by the server", -ECONNRESET);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : conn_fail(r, c, "preload", -errno);
	c->in_len += (size_t)n;
	size_t pos = 0;
	int64_t mns = 0;
	for (char *nl; (nl = memchr(c->in + pos, '\n', c->in_len - pos)) != NULL;) {
		size_t line = (size_t)(nl - (c->in + pos)) + 1;
		if (line != 4 || memcmp(c->in + pos, "MN\r\n", 4) != 0) {
			fprintf(stderr,
				"mcw-impact: preload: the server replied \"%.*s\" to a set\n",
				(int)(line - 1), c->in + pos);
			return -EPROTO;
		}
		mns++;
		pos += line;
	}
	if (c->in_len - pos >= LINE_BYTES_MAX)
		return conn_fail_reply(r, c, c->in + pos, c->in_len - pos);
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	return mns;
}

/* Stores keys [0, K) over connection 0 so gets hit: batches of `ms <key> <len> T0 q` closed
 * by `mn`, PRELOAD_AHEAD batches in flight (the replies are only MN, so sending ahead
 * cannot block on unread replies). */
static int preload(struct run *r)
{
	struct conn *c = &r->conns[0];
	uint64_t next = 0, batches_sent = 0, batches_done = 0;
	while (next < r->o.keys || batches_done < batches_sent) {
		if (next < r->o.keys && batches_sent - batches_done < PRELOAD_AHEAD) {
			size_t len = 0;
			for (unsigned i = 0; i < PRELOAD_BATCH_KEYS && next < r->o.keys; i++)
				len += set_render(r, c->out + len, next++, true);
			memcpy(c->out + len, "mn\r\n", 4);
			len += 4;
			ASSERT(len <= r->out_cap);
			int ret = send_bounded(c->fd, c->out, len);
			if (ret < 0)
				return conn_fail(r, c, "preload: send", ret);
			batches_sent++;
			continue;
		}
		int64_t mns = preload_read(r, c);
		if (mns < 0)
			return (int)mns;
		batches_done += (uint64_t)mns;
	}
	ASSERT(batches_done == batches_sent && c->in_len == 0);
	return 0;
}

/* ---- start-up and report -------------------------------------------------------------- */

/* Sizes and allocates every buffer, connects, registers with epoll: all before t0. */
static int run_init(struct run *r)
{
	r->prefix_len = strlen(r->o.prefix);
	r->set_tail_len =
	    (size_t)snprintf(r->set_tail, sizeof(r->set_tail), " %" PRIu64 " T0", r->o.value_bytes);
	r->req_bytes_max = LINE_BYTES_MAX + r->o.value_bytes + 2;
	r->out_cap = INFLIGHT_MAX * r->req_bytes_max + 4; /* + the preload's mn */
	r->in_cap = LINE_BYTES_MAX + r->o.value_bytes + 2 + RECV_BYTES;
	r->total = r->o.rate * r->o.seconds;
	r->rng = r->o.seed;
	r->value = malloc(r->o.value_bytes + 1);
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (r->value == NULL || r->ep < 0) {
		fprintf(stderr, "mcw-impact: out of memory or file descriptors\n");
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < r->o.value_bytes; i++)
		r->value[i] = (char)('a' + i % 26);
	for (unsigned i = 0; i < r->o.conns; i++) {
		struct conn *c = &r->conns[i];
		*c = (struct conn){ .idx = i, .fd = -1 };
		c->out = malloc(r->out_cap);
		c->in = malloc(r->in_cap);
		if (c->out == NULL || c->in == NULL) {
			fprintf(stderr, "mcw-impact: out of memory for %u connections\n", i + 1);
			return -ENOMEM;
		}
		memset(c->out, 0, r->out_cap); /* fault the pages in now, not while timing */
		memset(c->in, 0, r->in_cap);
		int ret = dial(r, &c->fd);
		if (ret < 0)
			return ret;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			return conn_fail(r, c, "epoll_ctl", -errno);
	}
	return 0;
}

static double us_of(uint64_t ns)
{
	return (double)ns / 1e3;
}

/* Throughput is over the schedule or until the last reply, whichever is longer. */
static void run_print(const struct run *r, uint64_t end_ns)
{
	const struct hist *h = &r->hist, *late = &r->late_hist;
	double elapsed_s = end_ns > r->t0_ns ? (double)(end_ns - r->t0_ns) / 1e9 : 0;
	if (elapsed_s < (double)r->o.seconds)
		elapsed_s = (double)r->o.seconds;
	printf("{\"tool\":\"impact\",\"rate\":%" PRIu64 ",\"seconds\":%" PRIu64
	       ",\"conns\":%" PRIu64 ",\"scheduled\":%" PRIu64 ",\"sent\":%" PRIu64
	       ",\"completed\":%" PRIu64 ",\"elapsed_s\":%.3f,\"achieved_ops_per_s\":%.1f"
	       ",\"gets\":%" PRIu64 ",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64 ",\"sets\":%" PRIu64
	       ",\"errors\":%" PRIu64,
	       r->o.rate, r->o.seconds, r->o.conns, r->total, r->sent, r->completed, elapsed_s,
	       (double)r->completed / elapsed_s, r->gets, r->hits, r->misses, r->sets, r->errors);
	printf(",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f"
	       ",\"max_us\":%.1f,\"mean_us\":%.1f,\"backlog_cap_hits\":%" PRIu64
	       ",\"send_late_p99_us\":%.1f,\"send_late_max_us\":%.1f}\n",
	       us_of(hist_quantile_ns(h, 0.50)), us_of(hist_quantile_ns(h, 0.90)),
	       us_of(hist_quantile_ns(h, 0.99)), us_of(hist_quantile_ns(h, 0.999)),
	       us_of(h->max_ns), h->count ? us_of(h->sum_ns) / (double)h->count : 0.0, r->cap_hits,
	       us_of(hist_quantile_ns(late, 0.99)), us_of(late->max_ns));
}

/* ---- command line --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: mcw-impact --dest HOST:PORT --rate OPS_PER_S --seconds N [--conns C]\n"
	    "                  [--set-ratio F] [--keys K] [--value-bytes B] [--prefix P]\n"
	    "                  [--seed S] [--preload]\n"
	    "An open-loop client: sends meta gets (mg <key> v) and sets (ms <key> B T0) of\n"
	    "keys P0 .. P<K-1>, picked uniformly, at a fixed total rate spread over C\n"
	    "connections (default 4; at most %d requests in flight on each), for N seconds.\n"
	    "Latency runs from each request's scheduled time to its whole reply, so a\n"
	    "stalled server shows as latency. --preload first stores all K keys.\n"
	    "Requests not sent 1 s after the schedule ends are given up (sent < scheduled:\n"
	    "the server could not keep up). send_late_* is how late requests left the tool.\n"
	    "Defaults: --set-ratio 0.1 --keys 100000 --value-bytes 100 --prefix impact:\n"
	    "--seed 1. Prints one JSON line; exit 0, 1 if the server failed, 64 on bad usage.\n",
	    INFLIGHT_MAX);
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* HOST:PORT or [V6]:PORT into o->host and o->port (which points into dest). */
static bool parse_dest(struct opts *o, char *dest)
{
	char *colon = strrchr(dest, ':');
	if (colon == NULL || colon == dest || colon[1] == '\0')
		return false;
	*colon = '\0';
	o->port = colon + 1;
	size_t len = strlen(dest);
	if (dest[0] == '[' && dest[len - 1] == ']') {
		dest[len - 1] = '\0';
		dest++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(o->host))
		return false;
	memcpy(o->host, dest, len + 1);
	return true;
}

static bool is_key_safe(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s <= ' ' || (unsigned char)*s == 0x7f)
			return false;
	}
	return true;
}

/* One option into o; false if its value is bad. */
static bool parse_opt(struct opts *o, int ch, const char *arg, bool *have_dest)
{
	char *end;
	switch (ch) {
	case 'd':
		return *have_dest = parse_dest(o, (char *)arg);
	case 'r':
		return parse_u64(arg, 1, RATE_MAX, &o->rate);
	case 's':
		return parse_u64(arg, 1, SECONDS_MAX, &o->seconds);
	case 'c':
		return parse_u64(arg, 1, CONNS_MAX, &o->conns);
	case 'S':
		o->set_ratio = strtod(arg, &end);
		return end != arg && *end == '\0' && o->set_ratio >= 0 && o->set_ratio <= 1;
	case 'k':
		return parse_u64(arg, 1, KEYS_MAX, &o->keys);
	case 'v':
		return parse_u64(arg, 0, VALUE_BYTES_MAX, &o->value_bytes);
	case 'p':
		o->prefix = arg;
		return strlen(arg) <= PREFIX_BYTES_MAX && is_key_safe(arg);
	case 'e':
		return parse_u64(arg, 0, UINT64_MAX, &o->seed);
	case 'P':
		o->preload = true;
		return true;
	}
	return false;
}

/* Fills o from argv; returns -1 to run, else the exit code (0 after --help). */
static int parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dest", 1, 0, 'd' },	      { "rate", 1, 0, 'r' },	  { "seconds", 1, 0, 's' },
		{ "conns", 1, 0, 'c' },	      { "set-ratio", 1, 0, 'S' }, { "keys", 1, 0, 'k' },
		{ "value-bytes", 1, 0, 'v' }, { "prefix", 1, 0, 'p' },	  { "seed", 1, 0, 'e' },
		{ "preload", 0, 0, 'P' },     { "help", 0, 0, 'h' },	  { 0 },
	};
	bool have_dest = false;
	int ch, li = 0;
	while ((ch = getopt_long(argc, argv, "h", lo, &li)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (ch == '?') { /* getopt said why */
			usage(stderr);
			return EXIT_USAGE;
		}
		if (!parse_opt(o, ch, optarg, &have_dest)) {
			fprintf(stderr, "mcw-impact: bad value \"%s\" for --%s\n", optarg,
				lo[li].name);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (have_dest && o->rate > 0 && o->seconds > 0 && optind == argc)
		return -1;
	fprintf(stderr, "mcw-impact: --dest, --rate and --seconds are required (and nothing "
			"else)\n");
	usage(stderr);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static struct run run = {
		.o = { .conns = 4,
		       .set_ratio = 0.1,
		       .keys = 100000,
		       .value_bytes = 100,
		       .prefix = "impact:",
		       .seed = 1 },
	};
	struct run *r = &run;
	int code = parse_args(&r->o, argc, argv);
	if (code >= 0)
		return code;
	/* The default 50 us of timer slack would be charged to every request as latency. */
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) < 0)
		fprintf(stderr,
			"mcw-impact: cannot cut timer slack (%s): latencies may read up "
			"to 50 us high\n",
			strerror(errno));
	if (run_init(r) < 0 || (r->o.preload && preload(r) < 0))
		return EXIT_FAIL;
	memset(&r->hist, 0, sizeof(r->hist)); /* fault the pages in now, not while timing */
	memset(&r->late_hist, 0, sizeof(r->late_hist));
	r->t0_ns = now_ns();
	r->issue_end_ns = r->t0_ns + r->o.seconds * NS_PER_S + ISSUE_GRACE_NS;
	if (run_timed(r) < 0)
		return EXIT_FAIL;
	run_print(r, r->last_reply_ns);
	return 0;
}
