/*
 * server.h: what mcwarm learns about a memcached server before it moves any data:
 * version, clock, item size limit, and whether the features it needs are on.
 */
#ifndef MCW_SERVER_H
#define MCW_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server_info {
	char version[32];
	int64_t time_s;	       /* the server's "now" (stats time) when probed */
	int64_t probe_mono_ns; /* our monotonic clock at that moment */
	int64_t uptime_s;
	uint32_t pid;
	uint32_t threads;
	uint64_t curr_items;
	uint64_t bytes;
	uint64_t limit_maxbytes;
	uint64_t evictions;	    /* items evicted since the server started */
	uint64_t evicted_unfetched; /* of those, never read once */
	uint64_t item_size_max;
	uint64_t chunk_size;	      /* stats settings: the smallest item's data space */
	uint64_t slab_chunk_max;      /* the largest slab chunk; bigger items are chained */
	uint32_t growth_factor_milli; /* slab class growth factor x 1000 (-f) */
	uint32_t tcpport;	      /* the port it listens on, as it says */
	bool evictions_on; /* not started with -M: a full server evicts instead of refusing */
	bool lru_crawler;  /* the crawler thread is enabled */
	bool dump_enabled; /* not started with -X */
	bool cas_enabled;  /* not started with -C */
	bool meta_ok;	   /* answers mn with MN: meta commands exist */
};

/* Reads version, stats and stats settings and checks for meta commands on an idle
 * connection. 0, or -errno with err explaining it for an operator. */
int server_probe(int fd, const char *addr_text, struct server_info *out, char *err, size_t err_cap);

/* Why this server cannot serve mcwarm (as a source of key dumps with needs_dumps), in
 * words for an operator with the fix; NULL when it can. */
const char *server_unsuitable(const struct server_info *si, bool needs_dumps);

/* Reads `stats` again on a probed, idle connection: counters (items, bytes, evictions),
 * clock and identity. 0, or -errno with err explaining it. */
int server_stats_read(int fd, const char *addr_text, struct server_info *out, char *err,
		      size_t err_cap);

/* When the server process started (its time minus its uptime): with the pid, who it is. */
int64_t server_started_s(const struct server_info *si);

/* Is si the memcached process with this pid, start time and listening port? Two addresses
 * that name one server (127.0.0.1:X and localhost:X) lead to the same process. */
bool server_is_process(const struct server_info *si, uint32_t pid, int64_t started_s,
		       uint32_t port);

/* The server's current time, advanced from the probe with our monotonic clock. */
int64_t server_now_s(const struct server_info *si);

#endif
