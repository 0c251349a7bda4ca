/*
 * capacity.h: will what we send fit in the destination, and did it? The checks before a
 * copy (capacity, item size limit, same server) and the watch on the destination's
 * evictions while sending, shared by populate, stream and mcwarm-ctl warm.
 */
#ifndef MCW_CAPACITY_H
#define MCW_CAPACITY_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "core.h"
#include "mcproto.h"
#include "net.h"
#include "server.h"
#include "mcw_limits.h"

/* memcached 1.6's memory layout (items.c, slabs.c). */
#define CAP_ITEM_HEADER_BYTES 48	    /* struct _stritem on 64-bit */
#define CAP_ITEM_CAS_BYTES    8		    /* when CAS is on (not -C) */
#define CAP_SLAB_PAGE_BYTES   (1024 * 1024) /* memory is handed to slab classes by pages */
#define CAP_SLAB_ALIGN_BYTES  8

#define CAP_SUGGEST_MARGIN_DIV                                                                     \
	8 /* the -m a refusal suggests: the need + 1/8, for mixed                                  \
	   * item sizes and the pages each slab class fills alone */

/* The options of a copy into a live destination that populate and stream share: --mode
 * add|set, --allow-shrink, --allow-smaller-items. Splice CAP_COPY_LONGOPTS into the
 * command's table and hand the cases to cap_copy_option. */
enum { CAP_OPT_MODE = 240, CAP_OPT_ALLOW_SHRINK, CAP_OPT_ALLOW_SMALLER };
#define CAP_COPY_LONGOPTS                                                                          \
	{ "mode", required_argument, NULL, CAP_OPT_MODE },                                         \
	    { "allow-shrink", no_argument, NULL, CAP_OPT_ALLOW_SHRINK },                           \
	{                                                                                          \
		"allow-smaller-items", no_argument, NULL, CAP_OPT_ALLOW_SMALLER                    \
	}
/* A copy option: 0 when taken, 1 when ch is none of them, else MCW_EXIT_USAGE (reported). */
int cap_copy_option(const char *cmd, int ch, const char *arg, enum mcp_ms_mode *mode,
		    struct mcw_copy_allow *allow);

/* What is about to be sent, as memcached will store it. */
struct cap_load {
	const char *what; /* "the dump's MANIFEST", "what the source holds" */
	uint64_t items;
	uint64_t item_bytes;	/* memcached's item sizes summed, before slab rounding */
	uint64_t item_size_max; /* the source's limit; 0 if unknown */
	bool resumed; /* the destination holds part of it already: its bytes are not others' */
};

/* Item bytes of items with these key and value bytes in dst (header, key + 1, value +
 * CRLF, CAS when on; client flags are not counted: a lower bound). */
uint64_t cap_item_bytes(const struct server_info *dst, uint64_t items, uint64_t key_bytes,
			uint64_t value_bytes);

/* The largest value the destination stores for this key and flags (memcached 1.6's item
 * layout: see item_overhead in capacity.c). */
uint64_t cap_value_max(uint64_t item_size_max, bool cas_enabled, size_t key_len,
		       uint32_t client_flags);
/* The slab chunk that holds an item of item_bytes in dst (memcached 1.6's slab classes
 * from its chunk size, growth factor and largest chunk). Exposed for tests. */
uint64_t cap_slab_chunk(const struct server_info *dst, uint64_t item_bytes);

/* Memory dst needs for the load: every item rounded up to the slab chunk of the average
 * item, in whole pages. Exact when items are of one size; otherwise within the growth
 * factor. Exposed for tests. */
uint64_t cap_memory_need(const struct server_info *dst, uint64_t items, uint64_t item_bytes);

/* The checks of one load against the destination: its item_size_max (not below the
 * source's unless allow->smaller_items) and its memory (refused when the need is over its
 * limit unless allow->shrink; a warning when it fits only by evicting what the destination
 * holds now). 0, or -EOPNOTSUPP (items too large) or -MCW_ETOOSMALL (memory) with err
 * naming cause, numbers and fix. */
int cap_check(const struct server_info *dst, const char *dst_addr, const struct cap_load *load,
	      const struct mcw_copy_allow *allow, char *err, size_t cap);

/* The load of a copy from a live source: its curr_items and bytes. */
void cap_load_of_source(const struct server_info *src, struct cap_load *out);

/* Refuses a copy into the source itself: the same address (peer addresses of two
 * connected sockets) or the same process (pid, start time, port). 0 or -EINVAL with err
 * set. */
int cap_check_not_same(int src_fd, const struct server_info *src, const char *src_addr, int dst_fd,
		       const struct server_info *dst, const char *dst_addr, char *err, size_t cap);

/* "SERVER_ERROR out of memory ...": the destination could not find room for an item. */
bool cap_is_out_of_memory(const char *msg, size_t len);

/* After `answers` out-of-memory answers, does the run stop? At the first when the
 * destination does not evict (-M), else at CAP_OOM_ERRORS_MAX (its slabs are stuck). true
 * with the operator's message (cause and fix) in buf. */
bool cap_oom_stops(bool evictions_on, const char *dst_addr, uint64_t answers, char *buf,
		   size_t cap);

/* The destination's evictions during a run: stats before, every CAP_WATCH_INTERVAL_MS, and
 * after, on a connection of its own. A restart of the destination starts its counters
 * again: the watch adds what the new process evicted. */
struct cap_watch {
	struct hostport hp;
	int fd;
	int64_t next_ns;
	struct server_info last;
	uint64_t evictions, evicted_unfetched; /* during the run */
	bool warned;
};

/* first: the destination as probed before sending. */
void cap_watch_start(struct cap_watch *w, const struct hostport *hp,
		     const struct server_info *first);
/* Reads the stats when due (always with force) and warns at the first eviction. A read
 * that fails is skipped (the data path reports a dead server). */
void cap_watch_poll(struct cap_watch *w, bool force);
/* A last read, then closes the connection. */
void cap_watch_end(struct cap_watch *w);
/* The destination evicted during the run: true, with the operator's message (cause, counts,
 * fix) in buf. */
bool cap_watch_evicted(const struct cap_watch *w, char *buf, size_t cap);

#endif
