/*
 * loader.c: mcw-load, the benchmark and demo dataset tool. Fills a memcached with a
 * named dataset generated from a seed (pipelined `ms ... q`, one thread per connection),
 * or checks that a server holds every item of it (pipelined `mg`, byte-exact values and
 * flags, TTL in range). Independent of mcwarm's code on purpose: it is the yardstick.
 *
 * Datasets (dataset.c; items scale with --scale):
 *   small  2,000,000 items, keys 16-48 B, values 50-300 B, no TTL
 *   mixed    500,000 items, values log-uniform 64 B - 64 KiB, half with TTLs of 1-7 days,
 *                   random 32-bit flags (about 4.7 GB)
 *   large     20,000 items of 256 KiB - 1 MiB (needs memcached -I 2m)
 *   demo     300,000 items, values 20 B - 8 KiB, a third with TTLs of 1-30 days
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"

#define BATCH_ITEMS   500
#define LOAD_DEPTH    4			/* batches in flight per connection */
#define PRERENDER_MAX ((size_t)3 << 30) /* bytes of requests held in memory, all connections */
#define CONNS_MAX     16

struct opts {
	const char *host;
	const char *port;
	const struct dataset *ds;
	uint64_t items;
	bool check;
};

static struct opts o;

static int dial(void)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(o.host, o.port, &hints, &res) != 0)
		return -1;
	int fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

struct conn {
	int fd;
	bool prerendered;
	char *rendered; /* the whole request stream, when it fits */
	size_t rendered_len;
	size_t *batch_end;
	uint64_t nbatches;
	char *out;
	size_t out_len, out_cap;
	char *in;
	size_t in_len, in_cap;
	uint64_t first, last; /* items [first, last) of this connection */
	uint64_t bad;	      /* check mode: items missing or different */
	uint64_t bytes;
};

static void out_put(struct conn *c, const void *p, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		c->out_cap = (c->out_len + n) * 2;
		c->out = realloc(c->out, c->out_cap);
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

/* Reads until buf holds n bytes from pos; false on EOF. */
static bool in_need(struct conn *c, size_t pos, size_t n)
{
	while (c->in_len < pos + n) {
		if (c->in_len == c->in_cap) {
			c->in_cap *= 2;
			c->in = realloc(c->in, c->in_cap);
		}
		ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (r <= 0)
			return false;
		c->in_len += (size_t)r;
	}
	return true;
}

/* Length of the line at pos including \r\n, reading as needed; 0 on EOF. */
static size_t in_line(struct conn *c, size_t pos)
{
	for (size_t scan = pos;;) {
		char *nl = memchr(c->in + scan, '\n', c->in_len - scan);
		if (nl)
			return (size_t)(nl - (c->in + pos)) + 1;
		scan = c->in_len;
		if (!in_need(c, pos, c->in_len - pos + 1))
			return 0;
	}
}

/* Builds one batch of `ms <key> <len> T<ttl> F<flags> q` + mn into c->out (no snprintf:
 * as the ideal loader, its own CPU must not be what limits it). */
static void build_batch(struct conn *c, uint64_t from, uint64_t to, uint8_t *val)
{
	c->out_len = 0;
	for (uint64_t i = from; i < to; i++) {
		struct item it;
		char hdr[400], *p = hdr;
		item_of(i, &it);
		memcpy(p, "ms ", 3);
		p += 3;
		memcpy(p, it.key, it.key_len);
		p += it.key_len;
		*p++ = ' ';
		p = bench_put_u64(p, it.value_len);
		memcpy(p, " T", 2);
		p = bench_put_u64(p + 2, it.ttl);
		memcpy(p, " F", 2);
		p = bench_put_u64(p + 2, it.flags);
		memcpy(p, " ME q\r\n", 7);
		p += 7;
		out_put(c, hdr, (size_t)(p - hdr));
		item_value(&it, val);
		out_put(c, val, it.value_len);
		out_put(c, "\r\n", 2);
		c->bytes += it.value_len;
	}
	out_put(c, "mn\r\n", 4);
}

/* One reply line, consumed: MN, or an error. false on EOF. */
static bool next_line(struct conn *c, char *line, size_t cap)
{
	size_t len = in_line(c, 0);
	if (len == 0)
		return false;
	snprintf(line, cap, "%.*s", (int)len, c->in);
	memmove(c->in, c->in + len, c->in_len - len);
	c->in_len -= len;
	return true;
}

/* Renders every batch of the connection into memory before the clock starts, when all
 * connections' streams fit in PRERENDER_MAX: then the loader only sends, and measures what
 * the destination accepts rather than how fast items are generated. Otherwise batches are
 * rendered as they are sent (for large values that costs little). */
static bool prerender(struct conn *c, size_t budget)
{
	uint8_t *val = malloc(o.ds->val_max + 8);
	uint64_t n = (c->last - c->first + BATCH_ITEMS - 1) / BATCH_ITEMS;
	c->batch_end = calloc(n ? n : 1, sizeof(size_t));
	c->nbatches = 0;
	for (uint64_t i = c->first; i < c->last; i += BATCH_ITEMS) {
		uint64_t to = i + BATCH_ITEMS < c->last ? i + BATCH_ITEMS : c->last;
		build_batch(c, i, to, val);
		if (c->rendered_len + c->out_len > budget) {
			free(c->rendered);
			c->rendered = NULL;
			c->rendered_len = 0;
			c->bytes = 0;
			free(val);
			return false;
		}
		c->rendered = realloc(c->rendered, c->rendered_len + c->out_len);
		memcpy(c->rendered + c->rendered_len, c->out, c->out_len);
		c->rendered_len += c->out_len;
		c->batch_end[c->nbatches++] = c->rendered_len;
	}
	free(val);
	c->prerendered = true;
	return true;
}

/* Loads [first, last) with LOAD_DEPTH batches in flight: replies are only MN (q hides
 * success), so sending ahead cannot block on unread replies. */
static int load_range(struct conn *c)
{
	uint8_t *val = malloc(o.ds->val_max + 8);
	unsigned inflight = 0;
	char line[256];
	int ret = 0;
	uint64_t b = 0;
	c->in_len = 0;
	for (uint64_t i = c->first; ret == 0 && (i < c->last || inflight > 0);) {
		if (i < c->last && inflight < LOAD_DEPTH) {
			uint64_t to = i + BATCH_ITEMS < c->last ? i + BATCH_ITEMS : c->last;
			if (c->prerendered) {
				size_t from = b ? c->batch_end[b - 1] : 0;
				ret = send_all(c->fd, c->rendered + from, c->batch_end[b] - from);
				b++;
			} else {
				build_batch(c, i, to, val);
				ret = send_all(c->fd, c->out, c->out_len);
			}
			inflight++;
			i = to;
			continue;
		}
		if (!next_line(c, line, sizeof(line)))
			ret = -1;
		else if (strcmp(line, "MN\r\n") == 0)
			inflight--;
		else {
			fprintf(stderr, "mcw-load: set failed: %s", line);
			ret = -1;
		}
	}
	free(val);
	return ret;
}

static int check_batch(struct conn *c, uint64_t from, uint64_t to)
{
	static __thread uint8_t *val;
	if (!val)
		val = malloc(o.ds->val_max + 8);
	c->out_len = 0;
	for (uint64_t i = from; i < to; i++) {
		struct item it;
		char req[400];
		item_of(i, &it);
		int n = snprintf(req, sizeof(req), "mg %.*s v f t u O%llu\r\n", (int)it.key_len,
				 it.key, (unsigned long long)i);
		out_put(c, req, (size_t)n);
	}
	if (send_all(c->fd, c->out, c->out_len) < 0)
		return -1;
	c->in_len = 0;
	size_t pos = 0;
	for (uint64_t i = from; i < to; i++) {
		struct item it;
		item_of(i, &it);
		size_t len = in_line(c, pos);
		if (len == 0)
			return -1;
		unsigned long vlen, flags;
		long ttl;
		if (sscanf(c->in + pos, "VA %lu f%lu t%ld", &vlen, &flags, &ttl) != 3) {
			c->bad++;
			pos += len;
			continue;
		}
		if (!in_need(c, pos + len, vlen + 2))
			return -1;
		item_value(&it, val);
		bool ok = vlen == it.value_len && memcmp(c->in + pos + len, val, vlen) == 0 &&
			  flags == it.flags &&
			  (it.ttl == 0 ? ttl == -1 : (ttl > 0 && ttl <= (long)it.ttl));
		c->bad += !ok;
		c->bytes += vlen;
		pos += len + vlen + 2;
	}
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	c->fd = dial();
	c->in_cap = 1 << 20;
	c->in = malloc(c->in_cap);
	if (c->fd < 0) {
		fprintf(stderr, "mcw-load: cannot connect to %s:%s\n", o.host, o.port);
		c->bad = UINT64_MAX;
		return NULL;
	}
	if (!o.check && load_range(c) < 0) {
		fprintf(stderr, "mcw-load: connection failed\n");
		c->bad = UINT64_MAX;
	}
	for (uint64_t i = c->first; o.check && i < c->last; i += BATCH_ITEMS) {
		uint64_t to = i + BATCH_ITEMS < c->last ? i + BATCH_ITEMS : c->last;
		if (check_batch(c, i, to) < 0) {
			fprintf(stderr, "mcw-load: connection failed\n");
			c->bad = UINT64_MAX;
			break;
		}
	}
	close(c->fd);
	free(c->in);
	free(c->out);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mcw-load --dest HOST:PORT --dataset small|mixed|large|demo\n"
		"                [--scale F] [--seed N] [--conns N] [--prefix P] [--check]\n"
		"Loads a dataset (pipelined ms) or, with --check, verifies that the server holds\n"
		"every item byte for byte (exit 1 if not). Prints a JSON line.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dest", 1, 0, 'd' },	 { "dataset", 1, 0, 's' }, { "scale", 1, 0, 'x' },
		{ "seed", 1, 0, 'e' },	 { "conns", 1, 0, 'c' },   { "check", 0, 0, 'k' },
		{ "prefix", 1, 0, 'p' }, { "help", 0, 0, 'h' },	   { 0 },
	};
	double scale = 1;
	char dest[300] = "";
	uint64_t seed = 1;
	unsigned conns = 2;
	const char *prefix = "mcw";
	int ch;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			snprintf(dest, sizeof(dest), "%s", optarg);
			break;
		case 's':
			o.ds = dataset_find(optarg);
			break;
		case 'x':
			scale = atof(optarg);
			break;
		case 'e':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			conns = (unsigned)atoi(optarg);
			break;
		case 'k':
			o.check = true;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	char *colon = strrchr(dest, ':');
	if (!o.ds || !colon || scale <= 0 || conns < 1 || conns > CONNS_MAX) {
		usage(stderr);
		return 64;
	}
	*colon = '\0';
	o.host = dest;
	o.port = colon + 1;
	o.items = (uint64_t)((double)o.ds->items * scale);
	dataset_init(o.ds, seed, prefix);
	struct conn cs[CONNS_MAX] = { 0 };
	pthread_t th[CONNS_MAX];
	struct timespec t0, t1;
	for (unsigned i = 0; i < conns; i++) {
		cs[i].first = o.items * i / conns;
		cs[i].last = o.items * (i + 1) / conns;
	}
	bool all_prerendered = !o.check;
	for (unsigned i = 0; i < conns && all_prerendered; i++)
		all_prerendered = prerender(&cs[i], PRERENDER_MAX / conns);
	for (unsigned i = 0; i < conns && !all_prerendered; i++) {
		cs[i].prerendered = false; /* all or none: the connections stay comparable */
		cs[i].bytes = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0; i < conns; i++)
		pthread_create(&th[i], NULL, conn_main, &cs[i]);
	uint64_t bad = 0, bytes = 0;
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(th[i], NULL);
		bad = cs[i].bad == UINT64_MAX || bad == UINT64_MAX ? UINT64_MAX : bad + cs[i].bad;
		bytes += cs[i].bytes;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"tool\":\"mcw-load\",\"mode\":\"%s\",\"dataset\":\"%s\",\"items\":%llu,"
	       "\"prerendered\":%s,\"value_bytes\":%llu,\"seconds\":%.3f,\"bad\":%lld}\n",
	       o.check ? "check" : "load", o.ds->name, (unsigned long long)o.items,
	       all_prerendered ? "true" : "false", (unsigned long long)bytes, secs,
	       bad == UINT64_MAX ? -1LL : (long long)bad);
	return bad == 0 ? 0 : 1;
}
