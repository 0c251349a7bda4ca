/*
 * capacity.c: will what we send fit in the destination, and did it?
 *
 * Before a copy: the load (a dump's MANIFEST, or a live source's stats) is turned into
 * memcached 1.6 item sizes, rounded to slab chunks and whole pages, and compared with the
 * destination's limit_maxbytes; the item size limits and the identity of both servers are
 * compared too. The estimate only refuses what clearly cannot fit: the run itself watches
 * the destination's evictions and says so at the end (exit 3).
 *
 * This file does not send items and owns no data-path memory; the watch's stats reads are
 * blocking exchanges on a connection of its own, bounded by CAP_WATCH_TIMEOUT_MS.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base.h"
#include "capacity.h"
#include "cli.h"
#include "mcw_limits.h"

static_assert(CAP_SLAB_PAGE_BYTES % CAP_SLAB_ALIGN_BYTES == 0, "pages hold aligned chunks");

/* memcached 1.6's item layout, the one place it is written down: the header, the key and
 * its NUL, 4 bytes of client flags when non-zero, 8 of CAS when on, and the value's CRLF. */
static uint64_t item_overhead(bool cas_enabled, uint64_t key_len, uint32_t client_flags)
{
	return CAP_ITEM_HEADER_BYTES + key_len + 1 + (client_flags ? 4 : 0) +
	       (cas_enabled ? CAP_ITEM_CAS_BYTES : 0) + 2;
}

uint64_t cap_item_bytes(const struct server_info *dst, uint64_t items, uint64_t key_bytes,
			uint64_t value_bytes)
{
	/* flags are not known in bulk: counted as zero */
	return items * item_overhead(dst->cas_enabled, 0, 0) + key_bytes + value_bytes;
}

uint64_t cap_value_max(uint64_t item_size_max, bool cas_enabled, size_t key_len,
		       uint32_t client_flags)
{
	uint64_t overhead = item_overhead(cas_enabled, key_len, client_flags);
	return item_size_max > overhead ? item_size_max - overhead : 0;
}

uint64_t cap_slab_chunk(const struct server_info *dst, uint64_t item_bytes)
{
	uint64_t factor = MAX(dst->growth_factor_milli, 1001u); /* > 1: the classes grow */
	uint64_t largest = MAX(dst->slab_chunk_max, (uint64_t)CAP_ITEM_HEADER_BYTES * 2);
	uint64_t size = CAP_ITEM_HEADER_BYTES + dst->chunk_size;
	/* slabs_init(): classes grow by the factor until the next would pass the largest */
	for (unsigned i = 1; i < CAP_SLAB_CLASSES_MAX - 1 && size * factor < largest * 1000; i++) {
		size = ROUND_UP(size, CAP_SLAB_ALIGN_BYTES);
		if (item_bytes <= size)
			return size;
		size = size * factor / 1000;
	}
	/* the largest class; bigger items are chained from chunks of it */
	return ROUND_UP(MAX(item_bytes, 1), largest);
}

uint64_t cap_memory_need(const struct server_info *dst, uint64_t items, uint64_t item_bytes)
{
	if (items == 0)
		return 0;
	uint64_t chunk = cap_slab_chunk(dst, (item_bytes + items - 1) / items);
	if (chunk >= CAP_SLAB_PAGE_BYTES)
		return items * chunk;
	uint64_t per_page = CAP_SLAB_PAGE_BYTES / chunk;
	return (items + per_page - 1) / per_page * CAP_SLAB_PAGE_BYTES;
}

void cap_load_of_source(const struct server_info *src, struct cap_load *out)
{
	*out = (struct cap_load){
		.what = "what the source holds",
		.items = src->curr_items,
		.item_bytes = src->bytes, /* memcached counts whole items, headers included */
		.item_size_max = src->item_size_max,
	};
}

static int check_item_size(const struct server_info *dst, const char *dst_addr,
			   const struct cap_load *load, const struct mcw_copy_allow *allow,
			   char *err, size_t cap)
{
	char a[32], b[32], opt[32];
	if (load->item_size_max == 0 || dst->item_size_max >= load->item_size_max)
		return 0;
	size_format(a, sizeof(a), dst->item_size_max);
	size_format(b, sizeof(b), load->item_size_max);
	if (load->item_size_max % MIB == 0) /* as memcached's -I takes it */
		snprintf(opt, sizeof(opt), "%llum",
			 (unsigned long long)(load->item_size_max / MIB));
	else
		snprintf(opt, sizeof(opt), "%lluk",
			 (unsigned long long)((load->item_size_max + KIB - 1) / KIB));
	if (allow->smaller_items) {
		log_warn("%s stores items up to %s, the source up to %s: larger items are skipped "
			 "and counted as too large (--allow-smaller-items)",
			 dst_addr, a, b);
		return 0;
	}
	snprintf(err, cap,
		 "%s stores items up to %s (item_size_max) but the source up to %s: items "
		 "larger than %s would be lost. Fix: start the destination with -I %s, or accept "
		 "the loss with --allow-smaller-items (they are skipped and counted)",
		 dst_addr, a, b, a, opt);
	return -EOPNOTSUPP;
}

int cap_check(const struct server_info *dst, const char *dst_addr, const struct cap_load *load,
	      const struct mcw_copy_allow *allow, char *err, size_t cap)
{
	int ret = check_item_size(dst, dst_addr, load, allow, err, cap);
	if (ret != 0 || load->items == 0 || dst->limit_maxbytes == 0 || allow->share)
		return ret; /* a share's size is not known before the keys are walked */
	uint64_t need = MAX(cap_memory_need(dst, load->items, load->item_bytes), load->item_bytes);
	uint64_t used = MIN(dst->bytes, dst->limit_maxbytes);
	char n1[32], n2[32], n3[32], n4[32];
	size_format(n1, sizeof(n1), load->item_bytes);
	size_format(n2, sizeof(n2), need);
	size_format(n3, sizeof(n3), dst->limit_maxbytes);
	size_format(n4, sizeof(n4), used);
	if (need > dst->limit_maxbytes && !allow->shrink) {
		snprintf(
		    err, cap,
		    "%s is too small for %s: %llu items of %s need about %s in memcached's "
		    "slabs, and its memory limit is %s (-m %llu, %s in use); what does not "
		    "fit would be evicted. Fix: start it with -m %llu or more, or send a share of "
		    "the keys (key filters), or accept a shrinking resize with --allow-shrink "
		    "(exit 3 then reports the evictions)",
		    dst_addr, load->what, (unsigned long long)load->items, n1, n2, n3,
		    (unsigned long long)(dst->limit_maxbytes / MIB), n4,
		    (unsigned long long)((need + need / CAP_SUGGEST_MARGIN_DIV) / MIB + 1));
		return -MCW_ETOOSMALL;
	}
	if (need > dst->limit_maxbytes)
		log_warn("%s is too small for %s (about %s needed, limit %s): sending anyway "
			 "(--allow-shrink); what does not fit is evicted",
			 dst_addr, load->what, n2, n3);
	else if (!load->resumed && need > dst->limit_maxbytes - used)
		log_warn("%s holds %s already; with about %s more (%s) it passes its limit of %s: "
			 "expect evictions",
			 dst_addr, n4, n2, load->what, n3);
	return 0;
}

int cap_copy_option(const char *cmd, int ch, const char *arg, enum mcp_ms_mode *mode,
		    struct mcw_copy_allow *allow)
{
	switch (ch) {
	case CAP_OPT_MODE:
		if (strcmp(arg, "add") != 0 && strcmp(arg, "set") != 0)
			return cli_usage_error(cmd, "--mode: use add or set");
		*mode = strcmp(arg, "set") == 0 ? MCP_MS_SET : MCP_MS_ADD;
		return 0;
	case CAP_OPT_ALLOW_SHRINK:
		allow->shrink = true;
		return 0;
	case CAP_OPT_ALLOW_SMALLER:
		allow->smaller_items = true;
		return 0;
	default:
		return 1;
	}
}

/* The peer address of a connected socket equals the other's (IPv4 or IPv6, with port). */
static bool same_peer(int a_fd, int b_fd)
{
	struct sockaddr_storage a, b;
	socklen_t al = sizeof(a), bl = sizeof(b);
	if (a_fd < 0 || b_fd < 0 || getpeername(a_fd, (struct sockaddr *)&a, &al) < 0 ||
	    getpeername(b_fd, (struct sockaddr *)&b, &bl) < 0)
		return false;
	return al == bl && memcmp(&a, &b, al) == 0;
}

int cap_check_not_same(int src_fd, const struct server_info *src, const char *src_addr, int dst_fd,
		       const struct server_info *dst, const char *dst_addr, char *err, size_t cap)
{
	bool peer = same_peer(src_fd, dst_fd);
	if (!peer && !server_is_process(dst, src->pid, server_started_s(src), src->tcpport))
		return 0;
	snprintf(err, cap,
		 "%s and %s are the same memcached (%s, pid %u, started at unix time %lld): a "
		 "copy into itself warms nothing. Fix: give the new server as the destination",
		 src_addr, dst_addr, peer ? "same address" : "same process", (unsigned)dst->pid,
		 (long long)server_started_s(dst));
	return -EINVAL;
}

bool cap_is_out_of_memory(const char *msg, size_t len)
{
	return memmem(msg, len, "out of memory", 13) != NULL;
}

bool cap_oom_stops(bool evictions_on, const char *dst_addr, uint64_t answers, char *buf, size_t cap)
{
	if (!evictions_on)
		snprintf(buf, cap,
			 "%s is full and does not evict (started with -M): it answered "
			 "'SERVER_ERROR out of memory', so the rest would not be stored; stopped "
			 "early. Fix: start it with more memory (-m), or without -M so it evicts, "
			 "or send a share of the keys",
			 dst_addr);
	else if (answers >= CAP_OOM_ERRORS_MAX)
		snprintf(buf, cap,
			 "%s answered 'SERVER_ERROR out of memory' %llu times: it cannot free "
			 "memory for new items (its slabs are full of items in use); stopped "
			 "early. Fix: start it with more memory (-m)",
			 dst_addr, (unsigned long long)answers);
	else
		return false;
	return true;
}

/* ---- the watch ---------------------------------------------------------------------- */

void cap_watch_start(struct cap_watch *w, const struct hostport *hp,
		     const struct server_info *first)
{
	*w = (struct cap_watch){ .hp = *hp, .fd = -1, .last = *first, .warned = true };
	cap_watch_poll(w, true); /* a fresh baseline: the probe may be minutes old */
	w->evictions = w->evicted_unfetched = 0;
	w->warned = false;
}

/* Adds what was evicted since the last read: all of a new process's count. */
static void watch_add(struct cap_watch *w, const struct server_info *now)
{
	bool same = now->pid == w->last.pid &&
		    server_started_s(now) == server_started_s(&w->last) &&
		    now->evictions >= w->last.evictions &&
		    now->evicted_unfetched >= w->last.evicted_unfetched;
	w->evictions += now->evictions - (same ? w->last.evictions : 0);
	w->evicted_unfetched += now->evicted_unfetched - (same ? w->last.evicted_unfetched : 0);
	w->last = *now;
	if (w->evictions > 0 && !w->warned) {
		w->warned = true;
		log_warn("%s is evicting items (%llu so far, %llu never read): it is too small "
			 "for what is being sent; the run will end with exit 3",
			 w->hp.text, (unsigned long long)w->evictions,
			 (unsigned long long)w->evicted_unfetched);
	}
}

void cap_watch_poll(struct cap_watch *w, bool force)
{
	char err[256];
	if (!force && mono_ns() < w->next_ns)
		return;
	w->next_ns = mono_ns() + (int64_t)CAP_WATCH_INTERVAL_MS * 1000000;
	if (w->fd < 0) {
		w->fd = net_connect(&w->hp, CAP_WATCH_TIMEOUT_MS, err, sizeof(err));
		if (w->fd < 0)
			return;
		net_set_recv_timeout(w->fd, CAP_WATCH_TIMEOUT_MS);
	}
	struct server_info now = w->last;
	if (server_stats_read(w->fd, w->hp.text, &now, err, sizeof(err)) < 0) {
		log_debug("evictions watch: %s", err);
		close(w->fd); /* a late answer must not be read as the next one */
		w->fd = -1;
		return;
	}
	watch_add(w, &now);
}

void cap_watch_end(struct cap_watch *w)
{
	cap_watch_poll(w, true);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

bool cap_watch_evicted(const struct cap_watch *w, char *buf, size_t cap)
{
	if (w->evictions == 0)
		return false;
	snprintf(buf, cap,
		 "%s evicted %llu items during the run (%llu of them never read): it is too "
		 "small for what was sent. Fix: start it with more memory (-m), or send a share "
		 "of the keys (key filters)",
		 w->hp.text, (unsigned long long)w->evictions,
		 (unsigned long long)w->evicted_unfetched);
	return true;
}

/* ---- a copy between two live servers (mcwarm-ctl warm) ------------------------------ */

static int probe(struct hostport *hp, struct server_info *si, char *err, size_t cap)
{
	int fd = net_connect(hp, MCW_CONNECT_TIMEOUT_MS, err, cap);
	if (fd < 0)
		return fd;
	net_set_recv_timeout(fd, MCW_IO_TIMEOUT_MS);
	int ret = server_probe(fd, hp->text, si, err, cap);
	if (ret < 0) {
		net_close(fd);
		return ret;
	}
	return fd;
}

int mcw_copy_preflight(const char *source, const char *dest, const struct mcw_secure_words *sec,
		       const struct mcw_copy_allow *allow, bool resumed, char *err, size_t cap)
{
	struct hostport shp, dhp;
	struct server_info src, dst;
	struct cap_load load;
	struct cli_common co; /* its net_secure sides outlive the connections */
	if (hostport_parse(source, &shp) < 0 || hostport_parse(dest, &dhp) < 0)
		return snprintf(err, cap, "'%s' or '%s' is not HOST:PORT", source, dest),
		       MCW_EXIT_USAGE;
	if (cli_secure_words("warm", sec, &co) != 0 ||
	    cli_secure_finish("warm", &co, &shp, &dhp) != 0)
		return snprintf(err, cap, "TLS or authentication options are wrong (said above)"),
		       MCW_EXIT_USAGE;
	int sfd = probe(&shp, &src, err, cap), dfd = -1;
	if (sfd >= 0)
		dfd = probe(&dhp, &dst, err, cap);
	int ret = sfd < 0 ? net_connect_cause(sfd) : dfd < 0 ? net_connect_cause(dfd) : 0;
	if (ret == 0)
		ret = cap_check_not_same(sfd, &src, shp.text, dfd, &dst, dhp.text, err, cap);
	if (sfd >= 0)
		net_close(sfd);
	if (dfd >= 0)
		net_close(dfd);
	net_secure_release(&co.src_sec);
	net_secure_release(&co.dst_sec);
	if (sfd < 0 || dfd < 0)
		return mcw_exit_code(ret);
	const char *why = server_unsuitable(&src, true);
	const struct server_info *bad = &src;
	const char *bad_addr = shp.text;
	if (why == NULL) {
		why = server_unsuitable(&dst, false);
		bad = &dst;
		bad_addr = dhp.text;
	}
	if (ret == 0 && why != NULL) {
		snprintf(err, cap, "%s (memcached %s) %s", bad_addr, bad->version, why);
		ret = -EOPNOTSUPP;
	}
	cap_load_of_source(&src, &load);
	load.resumed = resumed;
	if (ret == 0)
		ret = cap_check(&dst, dhp.text, &load, allow, err, cap);
	return mcw_exit_code(ret); /* for mcwarm-ctl, whose command ends here */
}
