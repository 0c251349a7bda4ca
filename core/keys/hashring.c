/*
 * hashring.c: ketama rings as memcached clients build them (node strings, point counts
 * and tie rules are in hashring.h). Build: check the options and nodes against the kind,
 * write every raw point (node string -> MD5 words or one-at-a-time) into the caller's
 * memory, heap-sort them in place by (value, node), then keep one point per value owned
 * by the node the client would pick. Lookup: hash the key, then a branchless lower bound.
 * Invariants after a successful build: 1 <= npoints <= raw points, values strictly
 * increase, every owner is < nnodes. Nothing here allocates: parsing fills the caller's
 * node array and the points live in the caller's memory.
 */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base.h"
#include "hashring.h"
#include "md5.h"

#define LIBMC_POINTS_WEIGHTED 160 /* libmemcached MEMCACHED_POINTS_PER_SERVER_KETAMA */
#define LIBMC_POINTS	      100 /* libmemcached MEMCACHED_POINTS_PER_SERVER */
#define POINTS_PER_DIGEST     4	  /* little-endian words of one MD5 digest */

static_assert(HASHRING_POINTS_DEFAULT % POINTS_PER_DIGEST == 0, "default points are whole digests");
static_assert(HASHRING_POINTS_PER_NODE_MAX % POINTS_PER_DIGEST == 0,
	      "max points are whole digests");
static_assert((uint64_t)HASHRING_NODES_MAX * HASHRING_POINTS_PER_NODE_MAX < UINT32_MAX / 2,
	      "point counts and heap indices fit in 32 bits");

/* libmemcached computes weighted shares in float; the same rounding needs float math. */
#if FLT_EVAL_METHOD != 0
#error "libmemcached's weighted point counts need single-precision float evaluation"
#endif

static const char *const kind_names[] = {
	[RING_EVCACHE] = "evcache",
	[RING_CACHEMOVER] = "cachemover",
	[RING_SPYMEMCACHED] = "spymemcached",
	[RING_LIBMEMCACHED] = "libmemcached",
	[RING_LIBMEMCACHED_MD5] = "libmemcached-md5",
	[RING_LIBMEMCACHED_OAAT] = "libmemcached-oaat",
	[RING_LIBMEMCACHED_SPY] = "libmemcached-spy",
};

__attribute__((format(printf, 4, 5))) static int fail(int ret, char *err, size_t cap,
						      const char *fmt, ...)
{
	if (err != NULL && cap > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static bool kind_is_valid(enum hashring_kind k)
{
	return (unsigned)k < ARRAY_LEN(kind_names);
}

/* The Java and C++ clients: configurable points, TreeMap/std::map ties (later wins). */
static bool kind_is_map_based(enum hashring_kind k)
{
	return k == RING_EVCACHE || k == RING_CACHEMOVER || k == RING_SPYMEMCACHED;
}

static unsigned kind_points_per_string(enum hashring_kind k)
{
	return kind_is_map_based(k) || k == RING_LIBMEMCACHED ? POINTS_PER_DIGEST : 1;
}

int hashring_kind_parse(const char *name, enum hashring_kind *out)
{
	ASSERT(name != NULL && out != NULL);
	for (unsigned k = 0; k < ARRAY_LEN(kind_names); k++) {
		if (strcmp(name, kind_names[k]) == 0) {
			*out = (enum hashring_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

const char *hashring_kind_name(enum hashring_kind k)
{
	return kind_is_valid(k) ? kind_names[k] : "unknown";
}

/* ---- node lists ---- */

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/* Copies s[0..len) NUL-terminated into dst if it is a non-empty run of name chars. */
static bool name_copy(char *dst, const char *s, size_t len)
{
	if (len == 0 || len >= HASHRING_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_name_char(s[i]))
			return false;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return true;
}

/* Decimal digits only (no sign, no blanks), value in [min, max]. */
static bool number_parse(const char *s, size_t len, uint32_t min, uint32_t max, uint32_t *out)
{
	if (len == 0 || len > 10)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* One entry "[hostname/]host[:port][=weight]"; no is its 1-based place, for messages. */
static int node_parse(const char *s, size_t len, unsigned no, struct hashring_node *nd, char *err,
		      size_t cap)
{
	int show = (int)MIN(len, HASHRING_ENTRY_SHOW_BYTES);
	if (len == 0)
		return fail(-EINVAL, err, cap,
			    "node list entry %u is empty (two commas in a row, or a comma at the "
			    "start or end?)",
			    no);
	memset(nd, 0, sizeof(*nd));
	nd->port = HASHRING_PORT_DEFAULT;
	nd->weight = 1;
	const char *eq = memchr(s, '=', len);
	size_t name_len = eq != NULL ? (size_t)(eq - s) : len;
	if (name_len >= HASHRING_NAME_MAX)
		return fail(-EINVAL, err, cap,
			    "node list entry %u (\"%.*s...\"): longer than %d bytes", no, show, s,
			    HASHRING_NAME_MAX - 1);
	if (eq != NULL &&
	    !number_parse(eq + 1, len - name_len - 1, 1, HASHRING_WEIGHT_MAX, &nd->weight))
		return fail(-EINVAL, err, cap,
			    "node list entry %u (\"%.*s\"): weight \"%.*s\" is not a whole number "
			    "from 1 to %u",
			    no, show, s, (int)(len - name_len - 1), eq + 1, HASHRING_WEIGHT_MAX);
	memcpy(nd->name, s, name_len);

	const char *end = s + name_len;
	const char *slash = memchr(s, '/', name_len);
	const char *host = slash != NULL ? slash + 1 : s;
	const char *colon = memchr(host, ':', (size_t)(end - host));
	if (memchr(host, '[', (size_t)(end - host)) != NULL ||
	    (colon != NULL && memchr(colon + 1, ':', (size_t)(end - colon - 1)) != NULL))
		return fail(-EINVAL, err, cap,
			    "node list entry %u (\"%.*s\"): more than one ':' or a '[' (IPv6 "
			    "addresses are not supported)",
			    no, show, s);
	uint32_t port = HASHRING_PORT_DEFAULT;
	if (colon != NULL && !number_parse(colon + 1, (size_t)(end - colon - 1), 1, 65535, &port))
		return fail(-EINVAL, err, cap,
			    "node list entry %u (\"%.*s\"): port \"%.*s\" is not a number from 1 "
			    "to 65535",
			    no, show, s, (int)(end - colon - 1), colon + 1);
	nd->port = (uint16_t)port;
	if (!name_copy(nd->host, host, (size_t)((colon != NULL ? colon : end) - host)))
		return fail(-EINVAL, err, cap,
			    "node list entry %u (\"%.*s\"): the host is empty or has a character "
			    "other than letters, digits, '.', '-' and '_'",
			    no, show, s);
	if (slash != NULL && !name_copy(nd->hostname, s, (size_t)(slash - s)))
		return fail(
		    -EINVAL, err, cap,
		    "node list entry %u (\"%.*s\"): the hostname before '/' is empty or has "
		    "a character other than letters, digits, '.', '-' and '_'",
		    no, show, s);
	if (slash == NULL)
		memcpy(nd->hostname, nd->host, sizeof(nd->hostname));
	return 0;
}

/* The same server: host (DNS names have no case) and port. */
static bool node_same(const struct hashring_node *a, const struct hashring_node *b)
{
	return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

int hashring_parse_nodes(const char *list, struct hashring_node *nodes, unsigned max, unsigned *n,
			 char *err, size_t cap)
{
	ASSERT(list != NULL && (nodes != NULL || max == 0) && n != NULL);
	const char *all = list;
	size_t all_len = strlen(list);
	trim(&all, &all_len);
	if (all_len == 0)
		return fail(-EINVAL, err, cap,
			    "node list is empty: give nodes as [hostname/]host[:port][=weight], "
			    "separated by commas");
	unsigned count = 0;
	for (const char *p = list;; count++) {
		const char *comma = strchr(p, ',');
		const char *s = p;
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		trim(&s, &len);
		if (count == max)
			return fail(-EINVAL, err, cap, "node list has more than %u nodes", max);
		int ret = node_parse(s, len, count + 1, &nodes[count], err, cap);
		if (ret != 0)
			return ret;
		for (unsigned j = 0; j < count; j++) {
			if (node_same(&nodes[j], &nodes[count]))
				return fail(-EINVAL, err, cap,
					    "node list entry %u (\"%s\") is the same node as entry "
					    "%u (\"%s\"): same host and port",
					    count + 1, nodes[count].name, j + 1, nodes[j].name);
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*n = count + 1;
	return 0;
}

int hashring_find_node(const struct hashring_node *nodes, unsigned n, const char *name)
{
	ASSERT(name != NULL && (nodes != NULL || n == 0));
	struct hashring_node want;
	size_t len = strlen(name);
	trim(&name, &len);
	if (node_parse(name, len, 0, &want, NULL, 0) != 0)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if (node_same(&nodes[i], &want))
			return (int)i;
	}
	return -1;
}

/* ---- node strings and point counts ---- */

/*
 * libmemcached's share of a weighted node, computed as it does, in float:
 * floor(float(w) / float(W) * 160 / 4 * float(N) + 1e-10f) * 4. Exact arithmetic gives
 * 4 points more for some weights (w=4 of W=50, N=5: 16 digests exactly, 15.999999 in
 * float), and libmemcached is the reference. The value is >= 0, so the cast is the floor.
 */
static uint32_t libmc_weighted_points(uint32_t weight, uint64_t total_weight, unsigned n)
{
	float pct = (float)weight / (float)total_weight;
	float digests = pct * LIBMC_POINTS_WEIGHTED / POINTS_PER_DIGEST * (float)n + 0.0000000001F;
	return (uint32_t)digests * POINTS_PER_DIGEST;
}

static uint64_t total_weight(const struct hashring_node *nodes, unsigned n)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += nodes[i].weight;
	return total;
}

/* Raw points of node i (before ties are resolved); opts and nodes already checked. */
static uint32_t node_points(const struct hashring_opts *o, const struct hashring_node *nodes,
			    unsigned n, unsigned i, uint64_t weights)
{
	if (o->kind == RING_LIBMEMCACHED)
		return libmc_weighted_points(nodes[i].weight, weights, n);
	if (!kind_is_map_based(o->kind))
		return LIBMC_POINTS;
	return o->points != 0 ? o->points : HASHRING_POINTS_DEFAULT;
}

static bool node_has_hostname(const struct hashring_node *nd)
{
	return strchr(nd->name, '/') != NULL;
}

/* The node string before "-<index>" (the table in hashring.h); returns its length. */
static size_t node_prefix(enum hashring_kind k, const struct hashring_node *nd, char *buf,
			  size_t cap)
{
	int len;
	switch (k) {
	case RING_EVCACHE: /* EVCache writes 11211 whatever the node's port */
		len = snprintf(buf, cap, "%s/%s:%u", nd->hostname, nd->host,
			       (unsigned)HASHRING_PORT_DEFAULT);
		break;
	case RING_CACHEMOVER:
		len = snprintf(buf, cap, "%s/%s:%u", nd->host, nd->host, nd->port);
		break;
	case RING_SPYMEMCACHED: /* Java's InetSocketAddress.toString() minus a leading '/' */
		if (node_has_hostname(nd))
			len = snprintf(buf, cap, "%s/%s:%u", nd->hostname, nd->host, nd->port);
		else
			len = snprintf(buf, cap, "%s:%u", nd->host, nd->port);
		break;
	case RING_LIBMEMCACHED_SPY:
		len = snprintf(buf, cap, "/%s:%u", nd->host, nd->port);
		break;
	default: /* libmemcached leaves out the default port */
		if (nd->port == HASHRING_PORT_DEFAULT)
			len = snprintf(buf, cap, "%s", nd->host);
		else
			len = snprintf(buf, cap, "%s:%u", nd->host, nd->port);
		break;
	}
	ASSERT(len > 0 && (size_t)len < cap);
	return (size_t)len;
}

/*
 * Would nodes a and b give the same node strings? Hosts and hostnames hold no '/' or ':'
 * (node_check) and the index after the last '-' is all digits, so two strings are equal
 * exactly when the fields written into them are. Distinct nodes (host and port differ)
 * meet this only under evcache, which leaves the port out.
 */
static bool node_strings_clash(enum hashring_kind k, const struct hashring_node *a,
			       const struct hashring_node *b)
{
	bool same_host = strcmp(a->host, b->host) == 0;
	switch (k) {
	case RING_EVCACHE:
		return same_host && strcmp(a->hostname, b->hostname) == 0;
	case RING_SPYMEMCACHED:
		if (node_has_hostname(a) != node_has_hostname(b))
			return false;
		if (node_has_hostname(a) && strcmp(a->hostname, b->hostname) != 0)
			return false;
		return same_host && a->port == b->port;
	default:
		return same_host && a->port == b->port;
	}
}

/* ---- checks ---- */

static int opts_check(const struct hashring_opts *o, unsigned n, char *err, size_t cap)
{
	const char *kind = hashring_kind_name(o->kind);
	if (!kind_is_valid(o->kind))
		return fail(-EINVAL, err, cap, "unknown ring kind %d", (int)o->kind);
	if (n == 0 || n > HASHRING_NODES_MAX)
		return fail(-EINVAL, err, cap, "a ring needs 1 to %u nodes, not %u",
			    HASHRING_NODES_MAX, n);
	if (kind_is_map_based(o->kind) &&
	    (o->points % POINTS_PER_DIGEST != 0 || o->points > HASHRING_POINTS_PER_NODE_MAX))
		return fail(-EINVAL, err, cap,
			    "%u points per node: %s needs a multiple of 4 from 4 to %u (0 for %u)",
			    o->points, kind, HASHRING_POINTS_PER_NODE_MAX, HASHRING_POINTS_DEFAULT);
	if (!kind_is_map_based(o->kind) && o->points != 0)
		return fail(-EINVAL, err, cap,
			    "%s fixes the points per node; leave points at 0 (got %u)", kind,
			    o->points);
	if (o->partial_delim != 0 && o->kind != RING_EVCACHE)
		return fail(-EINVAL, err, cap,
			    "partial-key hashing is EVCache's hash.on.partial.key; %s clients hash "
			    "the whole key",
			    kind);
	if ((unsigned char)o->partial_delim >= 0x80)
		return fail(-EINVAL, err, cap, "the partial-key delimiter must be an ASCII byte");
	return 0;
}

static bool field_ok(const char *s)
{
	return memchr(s, '\0', HASHRING_NAME_MAX) != NULL;
}

/* What node_parse accepts for a host or hostname (nodes may also be filled by hand). */
static bool name_ok(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!is_name_char(*s))
			return false;
	}
	return true;
}

static int node_check(const struct hashring_opts *o, const struct hashring_node *nd, unsigned i,
		      char *err, size_t cap)
{
	if (!field_ok(nd->name) || !field_ok(nd->hostname) || !field_ok(nd->host))
		return fail(-EINVAL, err, cap,
			    "node %u: name, hostname or host is not a string of under %d bytes", i,
			    HASHRING_NAME_MAX);
	if (!name_ok(nd->host) || !name_ok(nd->hostname) || nd->port == 0)
		return fail(-EINVAL, err, cap,
			    "node %u (\"%s\"): host or hostname empty or not letters, digits, '.', "
			    "'-' and '_', or port 0",
			    i, nd->name);
	if (nd->weight == 0 || nd->weight > HASHRING_WEIGHT_MAX)
		return fail(-EINVAL, err, cap, "node %u (\"%s\"): weight %u is not from 1 to %u", i,
			    nd->name, nd->weight, HASHRING_WEIGHT_MAX);
	if (nd->weight != 1 && o->kind != RING_LIBMEMCACHED)
		return fail(-EINVAL, err, cap,
			    "node %u (\"%s\") has weight %u, but %s rings have no weights (only "
			    "libmemcached's weighted ketama, kind libmemcached, has)",
			    i, nd->name, nd->weight, hashring_kind_name(o->kind));
	return 0;
}

static int nodes_check(const struct hashring_opts *o, const struct hashring_node *nodes, unsigned n,
		       char *err, size_t cap)
{
	for (unsigned i = 0; i < n; i++) {
		int ret = node_check(o, &nodes[i], i, err, cap);
		if (ret != 0)
			return ret;
	}
	/* Quadratic, but at most half a million field compares, once per build. */
	for (unsigned i = 1; i < n; i++) {
		for (unsigned j = 0; j < i; j++) {
			if (node_strings_clash(o->kind, &nodes[j], &nodes[i]))
				return fail(
				    -EINVAL, err, cap,
				    "nodes %u (\"%s\") and %u (\"%s\") give the same %s node "
				    "string, so the later would own all of the earlier's "
				    "points%s",
				    j, nodes[j].name, i, nodes[i].name, hashring_kind_name(o->kind),
				    o->kind == RING_EVCACHE ? " (EVCache ignores the port)" : "");
		}
	}
	return 0;
}

static uint64_t raw_points(const struct hashring_opts *o, const struct hashring_node *nodes,
			   unsigned n)
{
	uint64_t weights = total_weight(nodes, n);
	uint64_t sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += node_points(o, nodes, n, i, weights);
	return sum;
}

size_t hashring_memory_bytes(const struct hashring_opts *o, const struct hashring_node *nodes,
			     unsigned n)
{
	ASSERT(o != NULL && (nodes != NULL || n == 0));
	if (opts_check(o, n, NULL, 0) != 0 || nodes_check(o, nodes, n, NULL, 0) != 0)
		return 0;
	return (size_t)raw_points(o, nodes, n) * sizeof(struct hashring_point);
}

/* ---- building ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t hashring_md5_u32(const uint8_t *s, size_t len, unsigned k)
{
	ASSERT_HOT(k < POINTS_PER_DIGEST);
	uint8_t digest[MD5_DIGEST_BYTES];
	mcw_md5(s, len, digest);
	return le32(digest + 4 * k);
}

uint32_t hashring_oaat(const uint8_t *s, size_t len)
{
	uint32_t h = 0;
	for (size_t i = 0; i < len; i++) {
		/* libhashkit reads the key through a char, which is signed on x86-64 */
		h += s[i] >= 0x80 ? 0xffffff00u | s[i] : s[i];
		h += h << 10;
		h ^= h >> 6;
	}
	h += h << 3;
	h ^= h >> 11;
	h += h << 15;
	return h;
}

/* The points of one node string: 4 MD5 words, 1 MD5 word, or 1 one-at-a-time hash. */
static unsigned string_points(enum hashring_kind k, const char *s, size_t len, uint32_t node,
			      struct hashring_point *out)
{
	const uint8_t *b = (const uint8_t *)s;
	if (k == RING_LIBMEMCACHED_OAAT) {
		out[0] = (struct hashring_point){ .value = hashring_oaat(b, len), .node = node };
		return 1;
	}
	uint8_t digest[MD5_DIGEST_BYTES];
	mcw_md5(b, len, digest);
	unsigned per = kind_points_per_string(k);
	for (unsigned w = 0; w < per; w++)
		out[w] = (struct hashring_point){ .value = le32(digest + 4 * w), .node = node };
	return per;
}

static uint32_t points_write(const struct hashring_opts *o, const struct hashring_node *nodes,
			     unsigned n, struct hashring_point *pts)
{
	uint64_t weights = total_weight(nodes, n);
	unsigned per = kind_points_per_string(o->kind);
	char s[HASHRING_NODE_STRING_MAX];
	uint32_t count = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t prefix = node_prefix(o->kind, &nodes[i], s, sizeof(s));
		uint32_t strings = node_points(o, nodes, n, i, weights) / per;
		for (uint32_t j = 0; j < strings; j++) {
			int tail = snprintf(s + prefix, sizeof(s) - prefix, "-%u", j);
			ASSERT(tail > 0 && (size_t)tail < sizeof(s) - prefix);
			count += string_points(o->kind, s, prefix + (size_t)tail, i, pts + count);
		}
	}
	return count;
}

static uint64_t point_order(const struct hashring_point *p)
{
	return (uint64_t)p->value << 32 | p->node;
}

static void sift_down(struct hashring_point *p, uint32_t root, uint32_t n)
{
	for (;;) {
		uint32_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && point_order(&p[child]) < point_order(&p[child + 1]))
			child++;
		if (point_order(&p[root]) >= point_order(&p[child]))
			return;
		struct hashring_point t = p[root];
		p[root] = p[child];
		p[child] = t;
		root = child;
	}
}

/* Heap sort by (value, node): in place and without recursion, unlike qsort, which may
 * allocate. Once per build, so O(n log n) on a few hundred thousand points is fine. */
static void points_sort(struct hashring_point *p, uint32_t n)
{
	for (uint32_t i = n / 2; i-- > 0;)
		sift_down(p, i, n);
	for (uint32_t end = n; end-- > 1;) {
		struct hashring_point t = p[0];
		p[0] = p[end];
		p[end] = t;
		sift_down(p, 0, end);
	}
}

/*
 * Keeps one point per value. Within a value the points are sorted by node index, so the
 * first is libmemcached's owner (lower index) and the last is the owner a TreeMap or
 * std::map is left with (the node put later). Returns the number of points kept.
 */
static uint32_t ties_resolve(struct hashring_point *p, uint32_t n, bool later_wins)
{
	uint32_t kept = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (kept > 0 && p[kept - 1].value == p[i].value) {
			ASSERT_HOT(p[kept - 1].node <= p[i].node);
			if (later_wins)
				p[kept - 1].node = p[i].node;
			continue;
		}
		ASSERT_HOT(kept == 0 || p[kept - 1].value < p[i].value);
		p[kept++] = p[i];
	}
	return kept;
}

int hashring_build(struct hashring *r, const struct hashring_opts *o,
		   const struct hashring_node *nodes, unsigned n, void *mem, size_t mem_bytes,
		   char *err, size_t cap)
{
	ASSERT(r != NULL && o != NULL && (nodes != NULL || n == 0));
	memset(r, 0, sizeof(*r));
	int ret = opts_check(o, n, err, cap);
	if (ret == 0)
		ret = nodes_check(o, nodes, n, err, cap);
	if (ret != 0)
		return ret;
	uint64_t raw = raw_points(o, nodes, n);
	if (mem_bytes < raw * sizeof(struct hashring_point))
		return fail(-ENOSPC, err, cap,
			    "the %s ring needs %llu bytes of point storage, got %zu "
			    "(size it with hashring_memory_bytes)",
			    hashring_kind_name(o->kind),
			    (unsigned long long)(raw * sizeof(struct hashring_point)), mem_bytes);
	ASSERT(mem != NULL && (uintptr_t)mem % _Alignof(struct hashring_point) == 0);

	struct hashring_point *pts = mem;
	uint32_t written = points_write(o, nodes, n, pts);
	ASSERT(written == raw && written > 0);
	points_sort(pts, written);
	r->o = *o;
	if (kind_is_map_based(o->kind) && o->points == 0)
		r->o.points = HASHRING_POINTS_DEFAULT;
	r->nnodes = n;
	r->points = pts;
	r->npoints = ties_resolve(pts, written, kind_is_map_based(o->kind));
	ASSERT(r->npoints > 0 && r->points[r->npoints - 1].node < n);
	return 0;
}

/* ---- lookup ---- */

uint32_t hashring_key_hash(const struct hashring *r, const uint8_t *key, size_t len)
{
	ASSERT_HOT(key != NULL || len == 0);
	if (r->o.kind == RING_LIBMEMCACHED_OAAT)
		return hashring_oaat(key, len);
	if (r->o.partial_delim != 0 && len > 0) {
		const uint8_t *delim = memchr(key, (unsigned char)r->o.partial_delim, len);
		if (delim != NULL && delim > key)
			len = (size_t)(delim - key);
	}
	return hashring_md5_u32(key, len, 0);
}

/* Lower bound without a branch per step (the compare becomes a conditional move): the
 * ring of a big cluster is a few hundred KiB and this runs once per dumped key. */
unsigned hashring_lookup_hash(const struct hashring *r, uint32_t hash)
{
	ASSERT_HOT(r->npoints > 0);
	const struct hashring_point *base = r->points;
	uint32_t n = r->npoints;
	while (n > 1) {
		uint32_t half = n / 2;
		base = base[half].value < hash ? base + half : base;
		n -= half;
	}
	base += base->value < hash;
	return base == r->points + r->npoints ? r->points[0].node : base->node;
}

unsigned hashring_lookup(const struct hashring *r, const uint8_t *key, size_t len)
{
	return hashring_lookup_hash(r, hashring_key_hash(r, key, len));
}
