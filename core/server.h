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
	uint64_t item_size_max;
	bool lru_crawler;  /* the crawler thread is enabled */
	bool dump_enabled; /* not started with -X */
	bool cas_enabled;  /* not started with -C */
	bool meta_ok;	   /* answers mn with MN: meta commands exist */
};

/* Reads version, stats and stats settings and checks for meta commands on an idle
 * connection. 0, or -errno with err explaining it for an operator. */
int server_probe(int fd, const char *addr_text, struct server_info *out, char *err, size_t err_cap);

/* The server's current time, advanced from the probe with our monotonic clock. */
int64_t server_now_s(const struct server_info *si);

#endif
