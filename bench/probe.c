/*
 * probe.c: mcw-probe, the limit probes and checks the benchmark compares mcwarm with.
 *
 *   mcw-probe metadump --source H:P [--crawl hash|all]
 *       `lru_crawler metadump` alone, read and discarded: the key listing's own speed.
 *   mcw-probe mg --source H:P [--conns N]
 *       lists the keys (not timed), then times pipelined `mg <key> k f t v u q` of every
 *       key over N connections, values parsed and discarded: the fetch limit, no disk.
 *   mcw-probe ms --dest H:P [--conns N] FILE...
 *       the ideal loader: renders the chunk files' items as `ms <key> <len> T F ME q`
 *       requests in memory (not timed), then times sending them pipelined over N
 *       connections: the destination's acceptance limit for exactly mcwarm's stream.
 *   mcw-probe check-dump --dataset NAME [--seed N] [--prefix P] [--scale F] FILE...
 *       checks chunk files against the generated dataset: every item exactly once,
 *       byte-equal key, value and flags, TTL presence right.
 *
 * Each prints one JSON line. These are yardsticks: plain blocking sockets, one thread per
 * connection, pipelines as deep as mcwarm's.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "dataset.h"

#define RECV_BYTES    (4u << 20)
#define BATCH_KEYS    256
#define BATCHES_AHEAD 4
#define CONNS_MAX     16

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(const char *hostport)
{
	char host[256];
	snprintf(host, sizeof(host), "%s", hostport);
	char *colon = strrchr(host, ':');
	if (colon == NULL)
		return -1;
	*colon = '\0';
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
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

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			perror("mcw-probe: send");
			exit(1);
		}
		p += w;
		n -= (size_t)w;
	}
}

/* ---- metadump ------------------------------------------------------------------------- */

struct keys {
	char *arena;
	size_t used, cap;
	uint64_t count;
};

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c - 'a' + 10;
}

/* Stores the key percent-decoded (the benchmark datasets have text keys only). */
static void keys_add(struct keys *k, const char *key, size_t len)
{
	if (k->used + len + 1 > k->cap) {
		k->cap = k->cap ? 2 * k->cap : 64u << 20;
		k->arena = realloc(k->arena, k->cap);
	}
	char *out = k->arena + k->used;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (key[i] == '%' && i + 2 < len) {
			out[o++] = (char)(hexval(key[i + 1]) << 4 | hexval(key[i + 2]));
			i += 2;
		} else {
			out[o++] = key[i];
		}
	}
	out[o] = '\0';
	k->used += o + 1;
	k->count++;
}

/* Runs a metadump; collects the (decoded) keys if k is set. */
static uint64_t metadump(const char *src, const char *crawl, struct keys *k, uint64_t *bytes)
{
	int fd = dial(src);
	if (fd < 0) {
		fprintf(stderr, "mcw-probe: cannot connect to %s\n", src);
		exit(1);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "lru_crawler metadump %s\r\n", crawl);
	send_all(fd, cmd, strlen(cmd));
	char *buf = malloc(RECV_BYTES);
	size_t len = 0;
	uint64_t lines = 0;
	*bytes = 0;
	for (;;) {
		ssize_t r = recv(fd, buf + len, RECV_BYTES - len, 0);
		if (r <= 0) {
			fprintf(stderr, "mcw-probe: metadump ended without END\n");
			exit(1);
		}
		*bytes += (uint64_t)r;
		len += (size_t)r;
		size_t pos = 0;
		for (;;) {
			char *nl = memchr(buf + pos, '\n', len - pos);
			if (nl == NULL)
				break;
			size_t ll = (size_t)(nl - (buf + pos));
			if (ll >= 3 && memcmp(buf + pos, "END", 3) == 0) {
				close(fd);
				free(buf);
				return lines;
			}
			if (strncmp(buf + pos, "key=", 4) == 0) {
				lines++;
				if (k) {
					char *sp = memchr(buf + pos, ' ', ll);
					keys_add(k, buf + pos + 4, (size_t)(sp - (buf + pos) - 4));
				}
			} else if (strncmp(buf + pos, "BUSY", 4) == 0 ||
				   strncmp(buf + pos, "ERROR", 5) == 0) {
				fprintf(stderr, "mcw-probe: %.*s\n", (int)ll, buf + pos);
				exit(1);
			}
			pos += ll + 1;
		}
		memmove(buf, buf + pos, len - pos);
		len -= pos;
	}
}

/* ---- mg ------------------------------------------------------------------------------ */

struct mg_conn {
	const char *src;
	char **keys;
	uint64_t nkeys;
	uint64_t hits, value_bytes;
};

/* Parses replies in buf; returns bytes consumed, counts MN in *mns. */
static size_t mg_parse(struct mg_conn *c, const char *buf, size_t len, unsigned *mns)
{
	size_t pos = 0;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (nl == NULL)
			return pos;
		size_t ll = (size_t)(nl - (buf + pos)) + 1;
		if (buf[pos] == 'M' && buf[pos + 1] == 'N') {
			(*mns)++;
			pos += ll;
		} else if (buf[pos] == 'V' && buf[pos + 1] == 'A') {
			unsigned long vlen = strtoul(buf + pos + 3, NULL, 10);
			if (pos + ll + vlen + 2 > len)
				return pos;
			c->hits++;
			c->value_bytes += vlen;
			pos += ll + vlen + 2;
		} else {
			fprintf(stderr, "mcw-probe: unexpected reply %.*s\n", (int)ll, buf + pos);
			exit(1);
		}
	}
}

static void *mg_main(void *arg)
{
	struct mg_conn *c = arg;
	int fd = dial(c->src);
	char *req = malloc(BATCH_KEYS * 300 + 8);
	char *buf = malloc(RECV_BYTES);
	size_t len = 0;
	uint64_t next = 0, batches_sent = 0, batches_done = 0;
	while (batches_done < batches_sent || next < c->nkeys) {
		while (next < c->nkeys && batches_sent - batches_done < BATCHES_AHEAD) {
			size_t o = 0;
			for (unsigned i = 0; i < BATCH_KEYS && next < c->nkeys; i++, next++)
				o += (size_t)sprintf(req + o, "mg %s k f t v u q O%" PRIu64 "\r\n",
						     c->keys[next], next);
			memcpy(req + o, "mn\r\n", 4);
			send_all(fd, req, o + 4);
			batches_sent++;
		}
		ssize_t r = recv(fd, buf + len, RECV_BYTES - len, 0);
		if (r <= 0) {
			fprintf(stderr, "mcw-probe: connection lost\n");
			exit(1);
		}
		len += (size_t)r;
		unsigned mns = 0;
		size_t used = mg_parse(c, buf, len, &mns);
		batches_done += mns;
		memmove(buf, buf + used, len - used);
		len -= used;
	}
	close(fd);
	free(req);
	free(buf);
	return NULL;
}

static int cmd_mg(const char *src, unsigned conns)
{
	struct keys k = { 0 };
	uint64_t bytes;
	metadump(src, "hash", &k, &bytes);
	char **ptrs = malloc(k.count * sizeof(char *));
	for (uint64_t i = 0, off = 0; i < k.count; i++) {
		ptrs[i] = k.arena + off;
		off += strlen(ptrs[i]) + 1;
	}
	struct mg_conn cs[CONNS_MAX];
	pthread_t th[CONNS_MAX];
	double t0 = now_s();
	for (unsigned i = 0; i < conns; i++) {
		uint64_t a = k.count * i / conns, b = k.count * (i + 1) / conns;
		cs[i] = (struct mg_conn){ .src = src, .keys = ptrs + a, .nkeys = b - a };
		pthread_create(&th[i], NULL, mg_main, &cs[i]);
	}
	uint64_t hits = 0, vb = 0;
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(th[i], NULL);
		hits += cs[i].hits;
		vb += cs[i].value_bytes;
	}
	double secs = now_s() - t0;
	printf("{\"tool\":\"mg\",\"keys\":%" PRIu64 ",\"hits\":%" PRIu64 ",\"value_bytes\":%" PRIu64
	       ",\"conns\":%u,\"seconds\":%.4f}\n",
	       k.count, hits, vb, conns, secs);
	return 0;
}

/* ---- ms: the ideal loader ------------------------------------------------------------- */

#define MS_RENDER_MAX ((size_t)8 << 30) /* requests held in memory, all connections */

/* Two passes over the files: the first (buf == NULL) only counts bytes and batches, the
 * second renders into one mapping of exactly that size, pre-faulted, so the probe does not
 * grow (and fault in) memory while it sends. */
struct render {
	char *buf;
	size_t len;
	size_t *batch_end;
	uint64_t nbatches, in_batch, items, value_bytes;
	bool too_big;
	int64_t now_ms; /* wall clock, one instant for both passes: they must agree */
};

static void render_put(struct render *r, const void *p, size_t n)
{
	if (r->buf != NULL)
		memcpy(r->buf + r->len, p, n);
	r->len += n;
}

static void render_close_batch(struct render *r)
{
	render_put(r, "mn\r\n", 4);
	if (r->buf != NULL)
		r->batch_end[r->nbatches] = r->len;
	r->nbatches++;
	r->in_batch = 0;
}

/* Renders one record exactly as mcwarm populate sends it (add mode, TTL at render). */
static int render_record(void *arg, const struct mcw_record *rec)
{
	struct render *r = arg;
	char hdr[600];
	int64_t ttl = 0;
	if (rec->expires_at_ms != 0)
		ttl = (rec->expires_at_ms - r->now_ms) / 1000;
	if (rec->expires_at_ms != 0 && ttl < 1)
		return 0; /* expired: mcwarm skips it too */
	if (r->len > MS_RENDER_MAX) {
		r->too_big = true;
		return 1;
	}
	int n = snprintf(hdr, sizeof(hdr), "ms %.*s %u T%lld F%u ME q\r\n", rec->key_len,
			 (const char *)rec->key, rec->value_len, (long long)ttl, rec->client_flags);
	render_put(r, hdr, (size_t)n);
	render_put(r, rec->value, rec->value_len);
	render_put(r, "\r\n", 2);
	r->items++;
	r->value_bytes += rec->value_len;
	if (++r->in_batch == BATCH_KEYS)
		render_close_batch(r);
	return 0;
}

struct ms_conn {
	const char *dest;
	const struct render *r;
	uint64_t first, last; /* batches */
};

static void *ms_main(void *arg)
{
	struct ms_conn *c = arg;
	int fd = dial(c->dest);
	char buf[4096];
	size_t len = 0;
	uint64_t sent = c->first, done = c->first;
	while (done < c->last) {
		while (sent < c->last && sent - done < BATCHES_AHEAD) {
			size_t from = sent ? c->r->batch_end[sent - 1] : 0;
			send_all(fd, c->r->buf + from, c->r->batch_end[sent] - from);
			sent++;
		}
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0) {
			fprintf(stderr, "mcw-probe: connection lost\n");
			exit(1);
		}
		len += (size_t)n;
		char *nl;
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			size_t ll = (size_t)(nl - buf) + 1;
			if (ll == 4 && memcmp(buf, "MN\r\n", 4) == 0)
				done++;
			else if (strncmp(buf, "NS", 2) != 0) {
				fprintf(stderr, "mcw-probe: %.*s", (int)ll, buf);
				exit(1);
			}
			memmove(buf, buf + ll, len - ll);
			len -= ll;
		}
	}
	close(fd);
	return NULL;
}

static int render_files(struct render *r, int nfiles, char **files)
{
	for (int f = 0; f < nfiles && !r->too_big; f++) {
		char err[512];
		if (mcw_chunk_file_scan(files[f], render_record, r, err, sizeof(err)) != 0 &&
		    !r->too_big) {
			fprintf(stderr, "mcw-probe: %s\n", err);
			return 1;
		}
	}
	if (r->too_big) {
		fprintf(stderr, "mcw-probe: more than %zu bytes of requests: not held in memory\n",
			MS_RENDER_MAX);
		return 2;
	}
	if (r->in_batch > 0)
		render_close_batch(r);
	return 0;
}

static int cmd_ms(const char *dest, unsigned conns, int nfiles, char **files)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct render count = { .now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 };
	struct render r = { .now_ms = count.now_ms };
	int ret = render_files(&count, nfiles, files);
	if (ret != 0)
		return ret;
	r.buf = mmap(NULL, count.len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	r.batch_end = calloc(count.nbatches + 1, sizeof(size_t));
	if (r.buf == MAP_FAILED || r.batch_end == NULL) {
		fprintf(stderr, "mcw-probe: cannot hold %zu bytes of requests\n", count.len);
		return 2;
	}
	ret = render_files(&r, nfiles, files);
	if (ret != 0)
		return ret;
	struct ms_conn cs[CONNS_MAX];
	pthread_t th[CONNS_MAX];
	double t0 = now_s();
	for (unsigned i = 0; i < conns; i++) {
		cs[i] = (struct ms_conn){ .dest = dest,
					  .r = &r,
					  .first = r.nbatches * i / conns,
					  .last = r.nbatches * (i + 1) / conns };
		pthread_create(&th[i], NULL, ms_main, &cs[i]);
	}
	for (unsigned i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	double secs = now_s() - t0;
	printf("{\"tool\":\"ms\",\"items\":%" PRIu64 ",\"value_bytes\":%" PRIu64
	       ",\"request_bytes\":%zu,\"conns\":%u,\"seconds\":%.4f}\n",
	       r.items, r.value_bytes, r.len, conns, secs);
	munmap(r.buf, count.len);
	free(r.batch_end);
	return 0;
}

/* ---- check-dump ----------------------------------------------------------------------- */

struct check {
	uint8_t *seen; /* per item: times seen */
	uint64_t items, records, bad, foreign;
	uint8_t *val;
	int64_t now_ms;
};

static int check_record(void *arg, const struct mcw_record *r)
{
	struct check *c = arg;
	uint64_t i;
	struct item it;
	c->records++;
	if (!item_index_of_key(r->key, r->key_len, &i) || i >= c->items) {
		c->foreign++;
		return 0;
	}
	item_of(i, &it);
	item_value(&it, c->val);
	bool ok = r->key_len == it.key_len && memcmp(r->key, it.key, it.key_len) == 0 &&
		  r->value_len == it.value_len && memcmp(r->value, c->val, it.value_len) == 0 &&
		  r->client_flags == it.flags &&
		  (it.ttl == 0 ? r->expires_at_ms == 0
			       : r->expires_at_ms > c->now_ms && /* memcached's clock: 1 s ticks */
				     r->expires_at_ms <= c->now_ms + (int64_t)it.ttl * 1000 + 2000);
	c->bad += !ok;
	if (c->seen[i] < 255)
		c->seen[i]++;
	return 0;
}

static int cmd_check(const struct dataset *ds, double scale, int nfiles, char **files)
{
	struct check c = { 0 };
	c.items = (uint64_t)((double)ds->items * scale);
	c.seen = calloc(c.items, 1);
	c.val = malloc(ds->val_max + 8);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c.now_ms = (int64_t)ts.tv_sec * 1000;
	uint64_t damaged = 0;
	for (int f = 0; f < nfiles; f++) {
		char err[512];
		if (mcw_chunk_file_scan(files[f], check_record, &c, err, sizeof(err)) != 0) {
			fprintf(stderr, "mcw-probe: %s\n", err);
			damaged++;
		}
	}
	uint64_t missing = 0, dup = 0;
	for (uint64_t i = 0; i < c.items; i++) {
		missing += c.seen[i] == 0;
		dup += c.seen[i] > 1;
	}
	bool ok = missing == 0 && dup == 0 && c.bad == 0 && c.foreign == 0 && damaged == 0;
	printf("{\"tool\":\"check-dump\",\"ok\":%s,\"items\":%" PRIu64 ",\"records\":%" PRIu64
	       ",\"missing\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"wrong\":%" PRIu64
	       ",\"foreign\":%" PRIu64 ",\"damaged_files\":%" PRIu64 "}\n",
	       ok ? "true" : "false", c.items, c.records, missing, dup, c.bad, c.foreign, damaged);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "source", 1, 0, 's' }, { "crawl", 1, 0, 'c' },
		{ "conns", 1, 0, 'n' },	 { "dataset", 1, 0, 'd' },
		{ "seed", 1, 0, 'e' },	 { "prefix", 1, 0, 'p' },
		{ "scale", 1, 0, 'x' },	 { "help", 0, 0, 'h' },
		{ "dest", 1, 0, 'D' },	 { 0 },
	};
	const char *src = NULL, *dest = NULL, *crawl = "hash", *prefix = "mcw";
	const struct dataset *ds = NULL;
	unsigned conns = 2;
	uint64_t seed = 1;
	double scale = 1;
	if (argc < 2) {
		fprintf(stderr,
			"usage: mcw-probe metadump|mg|check-dump [options] (see probe.c)\n");
		return 64;
	}
	const char *cmd = argv[1];
	int ch;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 's':
			src = optarg;
			break;
		case 'D':
			dest = optarg;
			break;
		case 'c':
			crawl = optarg;
			break;
		case 'n':
			conns = (unsigned)atoi(optarg);
			break;
		case 'd':
			ds = dataset_find(optarg);
			break;
		case 'e':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'p':
			prefix = optarg;
			break;
		case 'x':
			scale = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: mcw-probe metadump|mg|check-dump (see probe.c)\n");
			return 64;
		}
	}
	if (conns < 1 || conns > CONNS_MAX)
		return 64;
	if (strcmp(cmd, "metadump") == 0 && src) {
		uint64_t bytes;
		double t0 = now_s();
		uint64_t n = metadump(src, crawl, NULL, &bytes);
		printf("{\"tool\":\"metadump\",\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"seconds\":%.4f}\n",
		       n, bytes, now_s() - t0);
		return 0;
	}
	if (strcmp(cmd, "mg") == 0 && src)
		return cmd_mg(src, conns);
	if (strcmp(cmd, "ms") == 0 && dest)
		return cmd_ms(dest, conns, argc - optind, argv + optind);
	if (strcmp(cmd, "check-dump") == 0 && ds) {
		dataset_init(ds, seed, prefix);
		return cmd_check(ds, scale, argc - optind, argv + optind);
	}
	fprintf(stderr, "mcw-probe: missing or unknown arguments\n");
	return 64;
}
