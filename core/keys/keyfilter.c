/*
 * keyfilter.c: prefix and ring filters for the key reader (see keyfilter.h). Node lists
 * are parsed and cross-checked up front, so a typo in a node name is a usage error
 * before anything is dumped, never a silently empty dump.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cli.h"
#include "core.h"
#include "keyfilter.h"

const char keyfilter_help[] =
    "key filters (dump, verify and stream):\n"
    "      --key-include PREFIX only keys starting with PREFIX (repeatable: any of them)\n"
    "      --key-exclude PREFIX no keys starting with PREFIX (repeatable)\n"
    "      --ring KIND          the clients' consistent-hash ring: evcache, cachemover,\n"
    "                           spymemcached, libmemcached (ketama weighted, MD5),\n"
    "                           libmemcached-md5, libmemcached-oaat, libmemcached-spy\n"
    "      --ring-points N      points per node (evcache, cachemover, spymemcached;\n"
    "                           default 160; EVCache's <app>.bucket.size)\n"
    "      --ring-partial-key C hash only the part of a key before the first C (EVCache\n"
    "                           hash.on.partial.key with hash.delimiter C)\n"
    "      --nodes LIST         the ring's nodes, in the clients' order:\n"
    "                           [hostname/]ip[:port][=weight],...\n"
    "      --keep NODE          instance warming: only keys the ring gives to NODE (one of\n"
    "                           --nodes; repeatable)\n"
    "      --ring-from LIST --ring-to LIST\n"
    "                           resizing: only keys whose owner changes from ring LIST\n"
    "                           to ring LIST; dump writes them to OUT/<new owner>/ (one\n"
    "                           directory per node of --ring-to, or per --keep node of\n"
    "                           it), each a complete dump for that node's populator\n";

static int usage(const char *cmd, const char *fmt, const char *arg)
{
	return cli_usage_error(cmd, fmt, arg);
}

int keyfilter_option(const char *cmd, int ch, const char *arg, struct keyfilter_opts *o)
{
	uint64_t v;
	switch (ch) {
	case KF_OPT_INCLUDE:
	case KF_OPT_EXCLUDE: {
		bool inc = ch == KF_OPT_INCLUDE;
		unsigned *n = inc ? &o->ninclude : &o->nexclude;
		if (*arg == '\0')
			return usage(cmd, "--key-%s: an empty prefix takes every key",
				     inc ? "include" : "exclude");
		if (*n == KEYFILTER_PREFIXES_MAX)
			return cli_usage_error(cmd, "at most %d --key-include and %d --key-exclude",
					       KEYFILTER_PREFIXES_MAX, KEYFILTER_PREFIXES_MAX);
		(inc ? o->include : o->exclude)[(*n)++] = arg;
		return 0;
	}
	case KF_OPT_RING:
		if (hashring_kind_parse(arg, &o->ring.kind) < 0)
			return usage(
			    cmd,
			    "--ring: '%s' is not one of evcache, cachemover, spymemcached, "
			    "libmemcached, libmemcached-md5, libmemcached-oaat, "
			    "libmemcached-spy",
			    arg);
		o->ring_set = true;
		return 0;
	case KF_OPT_RING_POINTS:
		if (!cli_uint(cmd, "ring-points", arg, 4, 4096, &v))
			return MCW_EXIT_USAGE;
		if (v % 4 != 0)
			return usage(cmd,
				     "--ring-points: %s is not a multiple of 4 (each digest "
				     "gives 4 points)",
				     arg);
		o->ring.points = (unsigned)v;
		return 0;
	case KF_OPT_RING_PARTIAL:
		if (strlen(arg) != 1)
			return usage(cmd, "--ring-partial-key: '%s' is not one character", arg);
		o->ring.partial_delim = arg[0];
		return 0;
	case KF_OPT_NODES:
		o->nodes = arg;
		return 0;
	case KF_OPT_RING_FROM:
		o->ring_from = arg;
		return 0;
	case KF_OPT_RING_TO:
		o->ring_to = arg;
		return 0;
	case KF_OPT_KEEP:
		if (o->nkeep == KEYFILTER_KEEP_MAX)
			return cli_usage_error(cmd, "at most %d --keep", KEYFILTER_KEEP_MAX);
		o->keep[o->nkeep++] = arg;
		return 0;
	default:
		return 1;
	}
}

bool keyfilter_active(const struct keyfilter *kf)
{
	return kf->o.ninclude > 0 || kf->o.nexclude > 0 || kf->o.ring_set;
}

static int bad(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* "host:port" of a node, the identity owners are compared by. (Built piecewise: out and
 * the node may both live in struct keyfilter, which snprintf's restrict rules dislike.) */
static void node_id(char *out, size_t cap, const struct hashring_node *n)
{
	char port[8];
	snprintf(port, sizeof(port), ":%u", n->port);
	size_t h = MIN(strlen(n->host), cap - 1);
	memmove(out, n->host, h);
	out[h] = '\0';
	strncat(out, port, cap - 1 - h);
}

static int parse_list(const char *opt, const char *list, struct hashring_node *nodes, unsigned *n,
		      char *err, size_t cap)
{
	char why[256];
	if (hashring_parse_nodes(list, nodes, HASHRING_NODES_MAX, n, why, sizeof(why)) < 0)
		return bad(err, cap, "--%s: %s", opt, why);
	return 0;
}

/* The group directory of a node: its host and port, with no '/' or ':' in the name. */
static void group_dir_name(char *out, size_t cap, const struct hashring_node *n)
{
	node_id(out, cap, n);
	for (char *s = out; *s; s++)
		if (*s == '/' || *s == ':')
			*s = '_';
}

static int prepare_resize(struct keyfilter *kf, char *err, size_t cap)
{
	const struct keyfilter_opts *o = &kf->o;
	int ret = parse_list("ring-from", o->ring_from, kf->from_nodes, &kf->nfrom, err, cap);
	if (ret == 0)
		ret = parse_list("ring-to", o->ring_to, kf->to_nodes, &kf->nto, err, cap);
	if (ret < 0)
		return ret;
	for (unsigned t = 0; t < kf->nto; t++) {
		char id[HASHRING_NAME_MAX + 8];
		node_id(id, sizeof(id), &kf->to_nodes[t]);
		int f = hashring_find_node(kf->from_nodes, kf->nfrom, id);
		kf->to_in_from[t] = (int16_t)f;
		kf->to_group[t] = -1;
	}
	/* groups: every node of the new ring, or the --keep ones */
	kf->ngroups = 0;
	for (unsigned i = 0; i < (o->nkeep ? o->nkeep : kf->nto); i++) {
		int t = (int)i;
		if (o->nkeep) {
			t = hashring_find_node(kf->to_nodes, kf->nto, o->keep[i]);
			if (t < 0)
				return bad(err, cap, "--keep %s: not a node of --ring-to",
					   o->keep[i]);
			if (kf->to_group[t] >= 0)
				continue;
		}
		if (kf->ngroups == KEYFILTER_GROUPS_MAX)
			return bad(
			    err, cap,
			    "--ring-to has more than %d nodes to write for: dump for some of "
			    "them at a time with --keep",
			    KEYFILTER_GROUPS_MAX);
		kf->to_group[t] = (int16_t)kf->ngroups;
		group_dir_name(kf->group_name[kf->ngroups], KEYFILTER_GROUP_NAME, &kf->to_nodes[t]);
		node_id(kf->group_node[kf->ngroups], HASHRING_NAME_MAX, &kf->to_nodes[t]);
		kf->ngroups++;
	}
	return 0;
}

int keyfilter_prepare(struct keyfilter *kf, const struct keyfilter_opts *o, size_t *mem_bytes,
		      char *err, size_t cap)
{
	memset(kf, 0, sizeof(*kf));
	kf->o = *o;
	kf->ngroups = 1;
	*mem_bytes = 0;
	bool any_ring_opt = o->nodes || o->ring_from || o->ring_to || o->nkeep || o->ring.points ||
			    o->ring.partial_delim;
	if (!o->ring_set)
		return any_ring_opt ? bad(err, cap,
					  "--nodes, --keep, --ring-from, --ring-to, "
					  "--ring-points and --ring-partial-key need "
					  "--ring KIND")
				    : 0;
	if (o->ring.points && o->ring.kind != RING_EVCACHE && o->ring.kind != RING_CACHEMOVER &&
	    o->ring.kind != RING_SPYMEMCACHED)
		return bad(err, cap, "--ring-points: the %s ring has a fixed number of points",
			   hashring_kind_name(o->ring.kind));
	kf->resize = o->ring_from || o->ring_to;
	int ret;
	if (kf->resize) {
		if (!o->ring_from || !o->ring_to || o->nodes)
			return bad(err, cap,
				   "resizing needs both --ring-from and --ring-to (and "
				   "no --nodes)");
		ret = prepare_resize(kf, err, cap);
		if (ret < 0)
			return ret;
		*mem_bytes = hashring_memory_bytes(&o->ring, kf->from_nodes, kf->nfrom) +
			     hashring_memory_bytes(&o->ring, kf->to_nodes, kf->nto);
		return 0;
	}
	if (!o->nodes || o->nkeep == 0)
		return bad(err, cap,
			   "--ring needs --nodes LIST and --keep NODE (instance warming) "
			   "or --ring-from LIST and --ring-to LIST (resizing)");
	ret = parse_list("nodes", o->nodes, kf->from_nodes, &kf->nfrom, err, cap);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < o->nkeep; i++) {
		int f = hashring_find_node(kf->from_nodes, kf->nfrom, o->keep[i]);
		if (f < 0)
			return bad(err, cap, "--keep %s: not one of --nodes", o->keep[i]);
		kf->keep_from[f] = true;
	}
	*mem_bytes = hashring_memory_bytes(&o->ring, kf->from_nodes, kf->nfrom);
	return 0;
}

int keyfilter_build(struct keyfilter *kf, void *mem, size_t mem_bytes, char *err, size_t cap)
{
	if (!kf->o.ring_set)
		return 0;
	size_t a = hashring_memory_bytes(&kf->o.ring, kf->from_nodes, kf->nfrom);
	ASSERT(a <= mem_bytes);
	int ret =
	    hashring_build(&kf->from, &kf->o.ring, kf->from_nodes, kf->nfrom, mem, a, err, cap);
	if (ret < 0 || !kf->resize)
		return ret;
	return hashring_build(&kf->to, &kf->o.ring, kf->to_nodes, kf->nto, (uint8_t *)mem + a,
			      mem_bytes - a, err, cap);
}

static bool has_prefix(const uint8_t *key, size_t len, const char *p)
{
	size_t n = strlen(p);
	return n <= len && memcmp(key, p, n) == 0;
}

enum keyfilter_verdict keyfilter_apply(const struct keyfilter *kf, const uint8_t *key, size_t len,
				       unsigned *group)
{
	const struct keyfilter_opts *o = &kf->o;
	*group = 0;
	if (o->ninclude > 0) {
		bool in = false;
		for (unsigned i = 0; i < o->ninclude && !in; i++)
			in = has_prefix(key, len, o->include[i]);
		if (!in)
			return KF_PREFIX;
	}
	for (unsigned i = 0; i < o->nexclude; i++)
		if (has_prefix(key, len, o->exclude[i]))
			return KF_PREFIX;
	if (!o->ring_set)
		return KF_TAKE;
	uint32_t h = hashring_key_hash(&kf->from, key, len); /* both rings hash alike */
	unsigned owner = hashring_lookup_hash(&kf->from, h);
	if (!kf->resize)
		return kf->keep_from[owner] ? KF_TAKE : KF_RING;
	unsigned now = hashring_lookup_hash(&kf->to, h);
	if (kf->to_in_from[now] == (int16_t)owner || kf->to_group[now] < 0)
		return KF_RING; /* not moved, or moved to a node this dump does not write for */
	*group = (unsigned)kf->to_group[now];
	return KF_TAKE;
}
