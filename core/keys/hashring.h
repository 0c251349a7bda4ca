/*
 * hashring.h: consistent-hash (ketama) rings computed exactly as real memcached clients
 * compute them, so mcwarm can tell which node of a cluster owns a key.
 *
 * A ring is a sorted array of 32-bit points, each owned by one node. A key is hashed to
 * 32 bits and belongs to the node of the first point whose value is >= the hash; a hash
 * above the largest point wraps to the smallest point. md5_u32(s, k) below is bytes
 * 4k..4k+3 of MD5(s) read as a little-endian u32; <i> and <r> count from 0.
 *
 * kind                 node string                      points per node        tie
 * evcache              <hostname>/<host>:11211-<r>      opts.points (160),     later
 *                      (port ignored: EVCache           4 per string
 *                      hard-codes 11211)                (k = 0..3)
 * cachemover           <host>/<host>:<port>-<r>         same                   later
 * spymemcached         <host>:<port>-<r>, or            same                   later
 *                      <hostname>/<host>:<port>-<r>
 *                      when the name has "hostname/"
 * libmemcached         <host>-<i>, or <host>:<port>-<i>  floor(w/W*40*N)*4 in   lower
 *  (KETAMA_WEIGHTED)   when port != 11211               float, 4 per string
 * libmemcached-md5     same strings                     100, md5_u32(s, 0)     lower
 *  (KETAMA + HASH_MD5)
 * libmemcached-oaat    same strings                     100, one-at-a-time(s)  lower
 *  (plain KETAMA)
 * libmemcached-spy     /<host>:<port>-<i>               100, md5_u32(s, 0)     lower
 *  (KETAMA_SPY + MD5)
 *
 * Key hash: md5_u32(key, 0), except libmemcached-oaat: Jenkins one-at-a-time with each
 * byte read as a signed char (bytes >= 0x80 sign-extended, as libhashkit on x86-64).
 * evcache with partial_delim hashes only the bytes before the first delimiter when the
 * delimiter is not the first byte (EVCache hash.on.partial.key).
 *
 * Ties (two nodes with a point of the same value): Java's TreeMap and C++'s std::map
 * keep the node put last, so for evcache, cachemover and spymemcached the LATER node in
 * list order wins; libmemcached sorts by (value, node index) and searches for the first
 * such point, so the LOWER index wins. Node order therefore matters: pass nodes in the
 * order the client was given them. After build, each value appears once, with its owner.
 *
 * W is the sum of all weights and N the node count; libmemcached computes the weighted
 * share in single-precision float, which gives 4 points fewer than exact arithmetic for
 * some weights (e.g. 4 of 50 over 5 nodes: 60, not 64); this module follows libmemcached.
 * A weighted node may get 0 points, as in libmemcached. Weights other than 1 are
 * accepted only by the weighted kind: the others have no weights (and libmemcached turns
 * weighted mode on as soon as one server has a weight above 1).
 */
#ifndef MCW_HASHRING_H
#define MCW_HASHRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcw_limits.h"

enum hashring_kind {
	RING_EVCACHE,		/* "<hostname>/<ip>:11211-<r>", port hard-coded 11211, reps/4 x 4 */
	RING_CACHEMOVER,	/* "<ip>/<ip>:<port>-<j>", same layout, later node wins */
	RING_SPYMEMCACHED,	/* "<ip>:<port>-<r>" or "<hostname>/<ip>:<port>-<r>", later wins */
	RING_LIBMEMCACHED,	/* KETAMA_WEIGHTED=1 + MD5, weighted, lower index wins */
	RING_LIBMEMCACHED_MD5,	/* KETAMA=1 + HASH=MD5: 100 points, one md5_u32(s,0) per string */
	RING_LIBMEMCACHED_OAAT, /* plain KETAMA=1: one-at-a-time for points AND keys */
	RING_LIBMEMCACHED_SPY,	/* DISTRIBUTION_CONSISTENT_KETAMA_SPY + MD5: "/<host>:<port>-<i>" */
};

#define HASHRING_PORT_DEFAULT	11211
#define HASHRING_POINTS_DEFAULT 160 /* evcache, cachemover and spymemcached */

struct hashring_node {
	char name[HASHRING_NAME_MAX];	  /* as given: "[hostname/]host[:port]", no weight */
	char hostname[HASHRING_NAME_MAX]; /* the part before '/', else the host */
	char host[HASHRING_NAME_MAX];	  /* ip or host name (after '/') */
	uint16_t port;			  /* default 11211 */
	uint32_t weight;		  /* default 1 */
};

struct hashring_opts {
	enum hashring_kind kind;
	/* Points per node for evcache, cachemover and spymemcached: a multiple of 4 up to
	 * HASHRING_POINTS_PER_NODE_MAX, 0 for 160. libmemcached kinds: 0 only. */
	unsigned points;
	/* EVCache hash.on.partial.key: hash only the key before the first delim when its
	 * index is > 0; 0 is off. evcache only, and an ASCII byte. */
	char partial_delim;
};

struct hashring_point {
	uint32_t value;
	uint32_t node; /* index into the node list */
};

struct hashring {
	struct hashring_opts o; /* as given, with points resolved (160 for 0) */
	unsigned nnodes;
	struct hashring_point *points; /* sorted by value; one owner per value after tie rules */
	uint32_t npoints;
};

/* "evcache", "cachemover", "spymemcached", "libmemcached", "libmemcached-md5",
 * "libmemcached-oaat", "libmemcached-spy". 0, or -EINVAL for any other name. */
int hashring_kind_parse(const char *name, enum hashring_kind *out);
const char *hashring_kind_name(enum hashring_kind k);

/*
 * Parses "a:1,b/10.0.0.2:11211=3,..." into nodes[0..*n), in list order (the order
 * decides ties, see above). Entry: [hostname/]host[:port][=weight]; host and hostname
 * are letters, digits, '.', '-' and '_'; blanks around an entry are ignored. Returns 0,
 * or -EINVAL with err saying which entry is wrong and why: empty entry, bad port or
 * weight (0 is refused), a name too long, more than max entries, or the same host and
 * port twice. *n is set only on success.
 */
int hashring_parse_nodes(const char *list, struct hashring_node *nodes, unsigned max, unsigned *n,
			 char *err, size_t cap);

/* Bytes of point storage hashring_build needs for these options and nodes (the caller
 * carves it from its memory budget). 0 when the nodes or options are unusable. */
size_t hashring_memory_bytes(const struct hashring_opts *o, const struct hashring_node *nodes,
			     unsigned n);

/*
 * Builds the ring into mem (at least hashring_memory_bytes, 4-byte aligned, owned by the
 * caller and used by r until the caller drops r). Keeps no pointer to nodes. Returns 0,
 * -EINVAL with err for unusable options or nodes (points not a multiple of 4, a weight
 * on a kind without weights, two nodes giving the same node string, ...), or -ENOSPC
 * when mem_bytes is too small. Does not allocate.
 */
int hashring_build(struct hashring *r, const struct hashring_opts *o,
		   const struct hashring_node *nodes, unsigned n, void *mem, size_t mem_bytes,
		   char *err, size_t cap);

/* The 32-bit hash the ring's clients compute for key (see the top of this file). */
uint32_t hashring_key_hash(const struct hashring *r, const uint8_t *key, size_t len);
/* Index (into the node list) of the node owning hash: first point >= hash, else the
 * smallest point. Binary search, no allocation. */
unsigned hashring_lookup_hash(const struct hashring *r, uint32_t hash);
/* Index (into the node list) of the node that owns key. */
unsigned hashring_lookup(const struct hashring *r, const uint8_t *key, size_t len);

/* Index of a node in a list by its name as given ("10.0.0.1" and "10.0.0.1:11211" are the
 * same node; host and port are compared, host without case), or -1 if absent or if name
 * does not parse. */
int hashring_find_node(const struct hashring_node *nodes, unsigned n, const char *name);

/* Building blocks, exposed for tests: bytes 4k..4k+3 of MD5(s), little-endian (k < 4),
 * and libhashkit's one-at-a-time (signed-char flavour). */
uint32_t hashring_md5_u32(const uint8_t *s, size_t len, unsigned k);
uint32_t hashring_oaat(const uint8_t *s, size_t len);

#endif
