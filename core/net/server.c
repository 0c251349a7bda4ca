/*
 * server.c: the start-up probe of a memcached server. Blocking exchanges on an idle
 * connection, each bounded by the socket's receive timeout.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "core.h"
#include "mcw_limits.h"
#include "mcproto.h"
#include "net.h"
#include "server.h"
#include "tls.h"

/* memcached 1.6's defaults, for a server whose stats settings leave one out. */
#define MC_DEFAULT_CHUNK_SIZE	       48	    /* -n */
#define MC_DEFAULT_SLAB_CHUNK_MAX      (512 * 1024) /* half a slab page */
#define MC_DEFAULT_GROWTH_FACTOR_MILLI 1250	    /* -f 1.25 */

static bool line_complete(const char *buf, size_t len, size_t *reply_len)
{
	const char *nl = memchr(buf, '\n', len);
	if (nl == NULL)
		return false;
	*reply_len = (size_t)(nl - buf) + 1;
	return true;
}

static bool stat_u64(const char *buf, size_t len, const char *name, uint64_t *out)
{
	const char *v;
	size_t vl;
	return mcp_stats_find(buf, len, name, &v, &vl) && mcp_parse_u64(v, vl, out);
}

static bool stat_is(const char *buf, size_t len, const char *name, const char *want)
{
	const char *v;
	size_t vl;
	return mcp_stats_find(buf, len, name, &v, &vl) && vl == strlen(want) &&
	       memcmp(v, want, vl) == 0;
}

static int exchange_failed(ssize_t n, const char *what, const char *addr, char *err, size_t cap)
{
	snprintf(err, cap, "%s from %s failed: %s", what, addr,
		 n == -ETIMEDOUT ? "no answer within the timeout (server overloaded or stuck?)"
		 : n == -EPIPE	 ? "the server closed the connection"
				 : strerror((int)-n));
	return n == -ETIMEDOUT ? -ETIMEDOUT : -EPROTO;
}

static int read_stats(int fd, const char *addr, struct server_info *out, char *buf, size_t cap,
		      char *err, size_t err_cap)
{
	ssize_t n = net_exchange(fd, "stats\r\n", buf, cap, mcp_stats_is_complete);
	if (n < 0)
		return exchange_failed(n, "stats", addr, err, err_cap);
	uint64_t t = 0, up = 0, pid = 0, threads = 0;
	if (!stat_u64(buf, (size_t)n, "time", &t) || !stat_u64(buf, (size_t)n, "uptime", &up)) {
		snprintf(err, err_cap, "%s answered stats without time/uptime: is it memcached?",
			 addr);
		return -EPROTO;
	}
	out->probe_mono_ns = mono_ns();
	out->time_s = (int64_t)t;
	out->uptime_s = (int64_t)up;
	stat_u64(buf, (size_t)n, "pid", &pid);
	stat_u64(buf, (size_t)n, "threads", &threads);
	out->pid = (uint32_t)pid;
	out->threads = (uint32_t)threads;
	stat_u64(buf, (size_t)n, "curr_items", &out->curr_items);
	stat_u64(buf, (size_t)n, "bytes", &out->bytes);
	stat_u64(buf, (size_t)n, "limit_maxbytes", &out->limit_maxbytes);
	stat_u64(buf, (size_t)n, "evictions", &out->evictions);
	stat_u64(buf, (size_t)n, "evicted_unfetched", &out->evicted_unfetched);
	return 0;
}

/* "1.25" as 1250; false unless a number from 1 to 100 (decimals past the third dropped). */
static bool stat_milli(const char *buf, size_t len, const char *name, uint32_t *out)
{
	const char *v;
	size_t vl, i = 0;
	uint64_t whole = 0, frac = 0, scale = 1000;
	if (!mcp_stats_find(buf, len, name, &v, &vl))
		return false;
	for (; i < vl && v[i] >= '0' && v[i] <= '9' && whole <= 100; i++)
		whole = whole * 10 + (uint64_t)(v[i] - '0');
	if (i < vl && v[i] == '.')
		for (i++; i < vl && v[i] >= '0' && v[i] <= '9'; i++)
			if (scale > 1)
				frac += (uint64_t)(v[i] - '0') * (scale /= 10);
	if (i != vl || whole < 1 || whole > 100)
		return false;
	*out = (uint32_t)(whole * 1000 + frac);
	return true;
}

/* The slab layout, from stats settings; memcached 1.6's defaults where one is missing. */
static void read_slab_settings(const char *buf, size_t n, struct server_info *out)
{
	uint64_t port = 0;
	if (!stat_u64(buf, n, "chunk_size", &out->chunk_size))
		out->chunk_size = MC_DEFAULT_CHUNK_SIZE;
	if (!stat_u64(buf, n, "slab_chunk_max", &out->slab_chunk_max))
		out->slab_chunk_max = MC_DEFAULT_SLAB_CHUNK_MAX;
	if (!stat_milli(buf, n, "growth_factor", &out->growth_factor_milli))
		out->growth_factor_milli = MC_DEFAULT_GROWTH_FACTOR_MILLI;
	stat_u64(buf, n, "tcpport", &port);
	out->tcpport = (uint32_t)port;
	out->evictions_on = !stat_is(buf, n, "evictions", "off");
}

/* A plain request that a server closed on, or answered with a TLS alert. */
static int plain_refused(const char *addr, char *err, size_t cap)
{
	snprintf(err, cap,
		 "%s closed the connection on a plain-text request (or answered it with a TLS "
		 "alert): if it runs TLS (memcached -Z), add --tls (--dest-tls for a "
		 "destination)",
		 addr);
	return -EPROTO;
}

int server_probe(int fd, const char *addr, struct server_info *out, char *err, size_t err_cap)
{
	char buf[32 * 1024];
	memset(out, 0, sizeof(*out));

	ssize_t n = net_exchange(fd, "version\r\n", buf, sizeof(buf), line_complete);
	if (n < 0 && tls_conn_of(fd) == NULL && (n == -EPIPE || n == -ECONNRESET))
		return plain_refused(addr, err, err_cap);
	if (n < 0)
		return exchange_failed(n, "version", addr, err, err_cap);
	if (n >= 2 && (uint8_t)buf[0] == 0x15 && buf[1] == 0x03) /* a TLS alert record */
		return plain_refused(addr, err, err_cap);
	if (strncmp(buf, "CLIENT_ERROR unauthenticated", 28) == 0) {
		snprintf(err, err_cap,
			 "%s requires authentication (memcached -Y): give its credentials with "
			 "--auth-file FILE (--dest-auth-file for a destination)",
			 addr);
		return -EACCES;
	}
	if (n < 10 || memcmp(buf, "VERSION ", 8) != 0) {
		snprintf(err, err_cap, "%s does not answer like memcached (version: %.40s)", addr,
			 buf);
		return -EPROTO;
	}
	snprintf(out->version, sizeof(out->version), "%.*s", (int)(n - 10), buf + 8);

	int ret = read_stats(fd, addr, out, buf, sizeof(buf), err, err_cap);
	if (ret < 0)
		return ret;
	n = net_exchange(fd, "stats settings\r\n", buf, sizeof(buf), mcp_stats_is_complete);
	if (n < 0)
		return exchange_failed(n, "stats settings", addr, err, err_cap);
	if (!stat_u64(buf, (size_t)n, "item_size_max", &out->item_size_max)) {
		snprintf(err, err_cap, "%s: stats settings has no item_size_max", addr);
		return -EPROTO;
	}
	out->lru_crawler = stat_is(buf, (size_t)n, "lru_crawler", "yes");
	out->dump_enabled = !stat_is(buf, (size_t)n, "dump_enabled", "no");
	out->cas_enabled = !stat_is(buf, (size_t)n, "cas_enabled", "no");
	read_slab_settings(buf, (size_t)n, out);

	n = net_exchange(fd, "mn\r\n", buf, sizeof(buf), line_complete);
	if (n < 0)
		return exchange_failed(n, "mn", addr, err, err_cap);
	out->meta_ok = n == 4 && memcmp(buf, "MN\r\n", 4) == 0;
	return 0;
}

const char *server_unsuitable(const struct server_info *si, bool needs_dumps)
{
	if (!si->meta_ok)
		return "is too old for meta commands (needs memcached 1.6 or newer)";
	if (needs_dumps && !si->dump_enabled)
		return "refuses key dumps (started with -X): restart it without -X or warm from "
		       "another replica";
	if (needs_dumps && !si->lru_crawler)
		return "has its LRU crawler disabled: run 'lru_crawler enable' on it first";
	return NULL;
}

int server_stats_read(int fd, const char *addr, struct server_info *out, char *err, size_t cap)
{
	char buf[32 * 1024];
	return read_stats(fd, addr, out, buf, sizeof(buf), err, cap);
}

int64_t server_started_s(const struct server_info *si)
{
	return si->time_s - si->uptime_s;
}

bool server_is_process(const struct server_info *si, uint32_t pid, int64_t started_s, uint32_t port)
{
	/* pid 1 in two containers is common; the start second and the port as well is not.
	 * A server that reports no pid (a proxy) is never taken for another. */
	return pid != 0 && si->pid == pid && server_started_s(si) == started_s &&
	       si->tcpport == port;
}

int64_t server_now_s(const struct server_info *si)
{
	return si->time_s + (mono_ns() - si->probe_mono_ns) / NS_PER_SEC;
}

int mcw_server_usage(const char *hostport, const struct mcw_secure_words *sec, uint64_t *items,
		     uint64_t *bytes, char *err, size_t cap)
{
	struct hostport hp;
	struct server_info si;
	struct cli_common co;
	if (hostport_parse(hostport, &hp) < 0)
		return snprintf(err, cap, "'%s' is not HOST:PORT", hostport), -EINVAL;
	if (cli_secure_words("source", sec, &co) != 0 ||
	    cli_secure_finish("source", &co, &hp, NULL) != 0)
		return snprintf(err, cap, "the source's TLS options are wrong (said above)"),
		       -EINVAL;
	int fd = net_connect(&hp, MCW_IO_TIMEOUT_MS, err, cap);
	int ret = fd < 0 ? fd : server_probe(fd, hp.text, &si, err, cap);
	if (fd >= 0)
		net_close(fd);
	net_secure_release(&co.src_sec);
	if (ret == 0) {
		*items = si.curr_items;
		*bytes = si.bytes;
	}
	return ret;
}
