/*
 * test_keyfilter.c: the key reader's filters (core/keys/keyfilter.c): prefixes to include and
 * exclude; instance warming (keys the ring gives to the --keep nodes); resize groups (keys
 * whose owner changes between two rings, grouped by their new owner, owners compared by
 * host and port, not position); option parsing and every refusal of prepare. Ring
 * verdicts are checked against rings built here straight from hashring.c, as
 * test_hashring.c builds them (whose own correctness that test checks against
 * libmemcached).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base.h"
#include "core.h"
#include "keyfilter.h"

#define ERR_BYTES 512
#define KEYS	  20000

/* ---- helpers ---- */

struct ring_fixture {
	struct hashring r;
	unsigned n;
	struct hashring_node nodes[HASHRING_NODES_MAX];
	void *mem;
};

static struct ring_fixture *ring_new(const struct hashring_opts *o, const char *list)
{
	char err[ERR_BYTES] = "";
	struct ring_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	if (hashring_parse_nodes(list, f->nodes, HASHRING_NODES_MAX, &f->n, err, sizeof(err)) != 0)
		fail_msg("parse \"%s\": %s", list, err);
	size_t bytes = hashring_memory_bytes(o, f->nodes, f->n);
	assert_true(bytes > 0);
	f->mem = malloc(bytes);
	assert_non_null(f->mem);
	if (hashring_build(&f->r, o, f->nodes, f->n, f->mem, bytes, err, sizeof(err)) != 0)
		fail_msg("build on \"%s\": %s", list, err);
	return f;
}

static void ring_del(struct ring_fixture *f)
{
	free(f->mem);
	free(f);
}

/* A filter prepared and built from o; its ring memory is returned for kf_del. */
static void *kf_new(struct keyfilter *kf, const struct keyfilter_opts *o)
{
	char err[ERR_BYTES] = "";
	size_t bytes = 12345;
	if (keyfilter_prepare(kf, o, &bytes, err, sizeof(err)) != 0)
		fail_msg("prepare: %s", err);
	void *mem = bytes ? malloc(bytes) : NULL;
	if (keyfilter_build(kf, mem, bytes, err, sizeof(err)) != 0)
		fail_msg("build: %s", err);
	return mem;
}

static enum keyfilter_verdict apply_str(const struct keyfilter *kf, const char *key,
					unsigned *group)
{
	*group = 999;
	return keyfilter_apply(kf, (const uint8_t *)key, strlen(key), group);
}

static size_t make_key(char *out, size_t cap, unsigned i)
{
	return (size_t)snprintf(out, cap, "%s:%u:%08x", i % 3 ? "user" : "sess", i,
				i * 2654435761u);
}

/* "host:port" of a node, as owners are compared. */
static void node_id(char *out, size_t cap, const struct hashring_node *n)
{
	snprintf(out, cap, "%s:%u", n->host, n->port);
}

/* ---- prefixes ---- */

static void test_prefixes(void **state)
{
	(void)state;
	struct keyfilter kf;
	unsigned g;
	struct keyfilter_opts none = { 0 };
	assert_null(kf_new(&kf, &none));
	assert_false(keyfilter_active(&kf));
	assert_int_equal(kf.ngroups, 1);
	assert_int_equal(apply_str(&kf, "anything", &g), KF_TAKE);
	assert_int_equal(g, 0);
	assert_int_equal(keyfilter_apply(&kf, (const uint8_t *)"", 0, &g), KF_TAKE);

	struct keyfilter_opts inc = { .include = { "user:", "sess:" }, .ninclude = 2 };
	assert_null(kf_new(&kf, &inc));
	assert_true(keyfilter_active(&kf));
	assert_int_equal(apply_str(&kf, "user:1", &g), KF_TAKE);
	assert_int_equal(g, 0);
	assert_int_equal(apply_str(&kf, "sess:", &g), KF_TAKE);	 /* the prefix is the key */
	assert_int_equal(apply_str(&kf, "sess", &g), KF_PREFIX); /* shorter than the prefix */
	assert_int_equal(apply_str(&kf, "xuser:1", &g), KF_PREFIX);
	assert_int_equal(apply_str(&kf, "USER:1", &g), KF_PREFIX); /* bytes, not case */
	assert_int_equal(keyfilter_apply(&kf, (const uint8_t *)"", 0, &g), KF_PREFIX);

	struct keyfilter_opts exc = { .exclude = { "tmp:", "lock" }, .nexclude = 2 };
	assert_null(kf_new(&kf, &exc));
	assert_true(keyfilter_active(&kf));
	assert_int_equal(apply_str(&kf, "user:1", &g), KF_TAKE);
	assert_int_equal(apply_str(&kf, "tmp:1", &g), KF_PREFIX);
	assert_int_equal(apply_str(&kf, "locked", &g), KF_PREFIX);
	assert_int_equal(apply_str(&kf, "loc", &g), KF_TAKE);
	assert_int_equal(apply_str(&kf, "tmp", &g), KF_TAKE);

	/* both: in an include and in no exclude; a binary key is compared as bytes */
	struct keyfilter_opts both = {
		.include = { "user:" },
		.ninclude = 1,
		.exclude = { "user:tmp" },
		.nexclude = 1,
	};
	assert_null(kf_new(&kf, &both));
	assert_int_equal(apply_str(&kf, "user:42", &g), KF_TAKE);
	assert_int_equal(apply_str(&kf, "user:tmp:1", &g), KF_PREFIX);
	assert_int_equal(apply_str(&kf, "sess:1", &g), KF_PREFIX);
	const uint8_t bin[] = { 'u', 's', 'e', 'r', ':', 0, 0xff, '\r', '\n' };
	assert_int_equal(keyfilter_apply(&kf, bin, sizeof(bin), &g), KF_TAKE);
	const uint8_t nul[] = { 'u', 's', 'e', 'r', 0, ':' };
	assert_int_equal(keyfilter_apply(&kf, nul, sizeof(nul), &g), KF_PREFIX);

	/* a key is compared with every prefix, not only the first */
	struct keyfilter_opts many = { .ninclude = KEYFILTER_PREFIXES_MAX };
	char names[KEYFILTER_PREFIXES_MAX][16];
	for (unsigned i = 0; i < KEYFILTER_PREFIXES_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "p%u:", i);
		many.include[i] = names[i];
	}
	assert_null(kf_new(&kf, &many));
	assert_int_equal(apply_str(&kf, "p31:x", &g), KF_TAKE);
	assert_int_equal(apply_str(&kf, "p0:x", &g), KF_TAKE);
	assert_int_equal(apply_str(&kf, "p32:x", &g), KF_PREFIX);
}

/* ---- instance warming ---- */

static void check_keep(enum hashring_kind kind, const char *nodes, const char *const *keep,
		       unsigned nkeep)
{
	struct keyfilter_opts o = {
		.ring_set = true,
		.ring = { .kind = kind },
		.nodes = nodes,
		.nkeep = nkeep,
	};
	for (unsigned i = 0; i < nkeep; i++)
		o.keep[i] = keep[i];
	struct keyfilter kf;
	void *mem = kf_new(&kf, &o);
	assert_non_null(mem);
	assert_true(keyfilter_active(&kf));
	assert_int_equal(kf.ngroups, 1);
	struct ring_fixture *ref = ring_new(&o.ring, nodes);
	bool kept[HASHRING_NODES_MAX] = { false };
	for (unsigned i = 0; i < nkeep; i++) {
		int f = hashring_find_node(ref->nodes, ref->n, keep[i]);
		assert_true(f >= 0);
		kept[f] = true;
	}
	unsigned taken = 0;
	for (unsigned i = 0; i < KEYS; i++) {
		char key[64];
		size_t len = make_key(key, sizeof(key), i);
		unsigned owner = hashring_lookup(&ref->r, (const uint8_t *)key, len), g = 99;
		enum keyfilter_verdict v = keyfilter_apply(&kf, (const uint8_t *)key, len, &g);
		if (v != (kept[owner] ? KF_TAKE : KF_RING))
			fail_msg("%s: key %s owned by %s: verdict %d", nodes, key,
				 ref->nodes[owner].name, (int)v);
		assert_int_equal(g, 0);
		taken += v == KF_TAKE;
	}
	/* each node owns a fair share: the filter neither takes all nor nothing */
	assert_true(taken > KEYS * nkeep / ref->n / 2 && taken < KEYS * nkeep * 2 / ref->n);
	ring_del(ref);
	free(mem);
}

static void test_ring_keep(void **state)
{
	(void)state;
	const char *three = "10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211";
	const char *one[] = { "10.0.0.2:11211" };
	check_keep(RING_LIBMEMCACHED, three, one, 1);
	check_keep(RING_SPYMEMCACHED, three, one, 1);
	/* a node named without its default port, or by another spelling, is the same node */
	const char *bare[] = { "10.0.0.2" };
	check_keep(RING_LIBMEMCACHED_MD5, three, bare, 1);
	const char *two[] = { "10.0.0.3:11211", "10.0.0.1" };
	check_keep(RING_EVCACHE, "a/10.0.0.1,b/10.0.0.2,c/10.0.0.3,d/10.0.0.4", two, 2);
	const char *h3[] = { "h3:11213" };
	check_keep(RING_LIBMEMCACHED_OAAT, "h1:11211,h2:11212,h3:11213,h4:11214,h5:11215", h3, 1);

	/* prefixes come first: a key the ring would take is still dropped by its prefix */
	struct keyfilter_opts o = {
		.ring_set = true,
		.ring = { .kind = RING_LIBMEMCACHED },
		.nodes = "10.0.0.1:11211",
		.keep = { "10.0.0.1:11211" },
		.nkeep = 1,
		.exclude = { "tmp:" },
		.nexclude = 1,
	};
	struct keyfilter kf;
	void *mem = kf_new(&kf, &o);
	unsigned g;
	assert_int_equal(apply_str(&kf, "user:1", &g), KF_TAKE);
	assert_int_equal(apply_str(&kf, "tmp:1", &g), KF_PREFIX);
	free(mem);
}

/* ---- resize groups ---- */

struct resize_case {
	enum hashring_kind kind;
	const char *from, *to;
	const char *keep[4];
	unsigned nkeep;
};

static void check_resize(const struct resize_case *c)
{
	struct keyfilter_opts o = {
		.ring_set = true,
		.ring = { .kind = c->kind },
		.ring_from = c->from,
		.ring_to = c->to,
		.nkeep = c->nkeep,
	};
	for (unsigned i = 0; i < c->nkeep; i++)
		o.keep[i] = c->keep[i];
	char err[ERR_BYTES];
	size_t bytes = 0;
	struct keyfilter kf;
	assert_int_equal(keyfilter_prepare(&kf, &o, &bytes, err, sizeof(err)), 0);
	struct ring_fixture *a = ring_new(&o.ring, c->from), *b = ring_new(&o.ring, c->to);
	/* the rings' memory, as the budget must provide it */
	assert_int_equal(bytes, hashring_memory_bytes(&o.ring, a->nodes, a->n) +
				    hashring_memory_bytes(&o.ring, b->nodes, b->n));
	void *mem = malloc(bytes);
	assert_int_equal(keyfilter_build(&kf, mem, bytes, err, sizeof(err)), 0);

	/* groups: every node of the new ring in its order, or the --keep ones in theirs */
	int group_of[HASHRING_NODES_MAX];
	unsigned ngroups = 0;
	for (unsigned t = 0; t < b->n; t++)
		group_of[t] = -1;
	for (unsigned i = 0; i < (c->nkeep ? c->nkeep : b->n); i++) {
		int t = c->nkeep ? hashring_find_node(b->nodes, b->n, c->keep[i]) : (int)i;
		assert_true(t >= 0);
		if (group_of[t] >= 0)
			continue; /* named twice: one group */
		group_of[t] = (int)ngroups;
		char id[HASHRING_NAME_MAX + 8], dir[HASHRING_NAME_MAX + 8];
		node_id(id, sizeof(id), &b->nodes[t]);
		assert_string_equal(kf.group_node[ngroups], id);
		snprintf(dir, sizeof(dir), "%s_%u", b->nodes[t].host, b->nodes[t].port);
		assert_string_equal(kf.group_name[ngroups], dir);
		assert_null(strchr(kf.group_name[ngroups], '/'));
		ngroups++;
	}
	assert_int_equal(kf.ngroups, ngroups);

	unsigned per_group[KEYFILTER_GROUPS_MAX] = { 0 }, moved = 0;
	for (unsigned i = 0; i < KEYS; i++) {
		char key[64];
		size_t len = make_key(key, sizeof(key), i);
		unsigned was = hashring_lookup(&a->r, (const uint8_t *)key, len);
		unsigned now = hashring_lookup(&b->r, (const uint8_t *)key, len);
		char id_was[HASHRING_NAME_MAX + 8], id_now[HASHRING_NAME_MAX + 8];
		node_id(id_was, sizeof(id_was), &a->nodes[was]);
		node_id(id_now, sizeof(id_now), &b->nodes[now]);
		bool moves = strcmp(id_was, id_now) != 0;
		moved += moves;
		bool take = moves && group_of[now] >= 0;
		unsigned g = 999;
		enum keyfilter_verdict v = keyfilter_apply(&kf, (const uint8_t *)key, len, &g);
		if (v != (take ? KF_TAKE : KF_RING) || (take && g != (unsigned)group_of[now]))
			fail_msg("%s -> %s: key %s from %s to %s: verdict %d group %u, want %d",
				 c->from, c->to, key, id_was, id_now, (int)v, g,
				 take ? group_of[now] : -1);
		if (take)
			per_group[g]++;
	}
	/* a resize moves some keys and keeps most */
	assert_true(moved > 0 && moved < KEYS * 3 / 4);
	ring_del(a);
	ring_del(b);
	free(mem);
}

static void test_resize_groups(void **state)
{
	(void)state;
	static const struct resize_case c[] = {
		/* grow: keys move only to the new node */
		{ .kind = RING_LIBMEMCACHED,
		  .from = "10.0.0.1,10.0.0.2,10.0.0.3",
		  .to = "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4" },
		/* shrink: the removed node's keys go to the others */
		{ .kind = RING_LIBMEMCACHED_MD5,
		  .from = "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4",
		  .to = "10.0.0.1,10.0.0.2,10.0.0.4" },
		/* replace one node; ports and host names */
		{ .kind = RING_SPYMEMCACHED,
		  .from = "a/10.0.0.1:11211,b/10.0.0.2:11212",
		  .to = "a/10.0.0.1:11211,c/10.0.0.3:11213" },
		/* a node keeps its keys though its position changes */
		{ .kind = RING_LIBMEMCACHED_OAAT,
		  .from = "h1:1,h2:2,h3:3",
		  .to = "h2:2,h4:4,h1:1,h3:3" },
		/* only some new owners written for, one named twice */
		{ .kind = RING_EVCACHE,
		  .from = "a/10.0.0.1,b/10.0.0.2",
		  .to = "a/10.0.0.1,b/10.0.0.2,c/10.0.0.3,d/10.0.0.4",
		  .keep = { "10.0.0.4", "10.0.0.4:11211", "a/10.0.0.1" },
		  .nkeep = 3 },
		{ .kind = RING_CACHEMOVER,
		  .from = "10.0.0.1:5,10.0.0.2:5",
		  .to = "10.0.0.1:5,10.0.0.2:5,10.0.0.2:6",
		  .keep = { "10.0.0.2:6" },
		  .nkeep = 1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++)
		check_resize(&c[i]);
}

/* ---- refusals and options ---- */

static void expect_refused(const struct keyfilter_opts *o, const char *words)
{
	struct keyfilter kf;
	char err[ERR_BYTES] = "";
	size_t bytes = 0;
	assert_int_equal(keyfilter_prepare(&kf, o, &bytes, err, sizeof(err)), -EINVAL);
	if (strstr(err, words) == NULL)
		fail_msg("refusal \"%s\" does not say \"%s\"", err, words);
}

static void test_prepare_refusals(void **state)
{
	(void)state;
	struct keyfilter_opts o = { .nodes = "a,b" };
	expect_refused(&o, "need --ring KIND");
	o = (struct keyfilter_opts){ .keep = { "a" }, .nkeep = 1 };
	expect_refused(&o, "need --ring KIND");
	o = (struct keyfilter_opts){ .ring.points = 80 };
	expect_refused(&o, "need --ring KIND");
	o = (struct keyfilter_opts){ .ring_set = true };
	expect_refused(&o, "--ring needs --nodes LIST and --keep NODE");
	o = (struct keyfilter_opts){ .ring_set = true, .nodes = "a,b" };
	expect_refused(&o, "--keep NODE");
	o = (struct keyfilter_opts){
		.ring_set = true, .nodes = "a,b", .keep = { "c" }, .nkeep = 1
	};
	expect_refused(&o, "--keep c: not one of --nodes");
	o = (struct keyfilter_opts){
		.ring_set = true, .nodes = "a,,b", .keep = { "a" }, .nkeep = 1
	};
	expect_refused(&o, "--nodes: ");
	o = (struct keyfilter_opts){
		.ring_set = true,
		.ring = { .kind = RING_LIBMEMCACHED, .points = 80 },
		.nodes = "a",
		.keep = { "a" },
		.nkeep = 1,
	};
	expect_refused(&o, "fixed number of points");
	o = (struct keyfilter_opts){ .ring_set = true, .ring_from = "a,b" };
	expect_refused(&o, "both --ring-from and --ring-to");
	o = (struct keyfilter_opts){
		.ring_set = true, .ring_from = "a", .ring_to = "a,b", .nodes = "a"
	};
	expect_refused(&o, "no --nodes");
	o = (struct keyfilter_opts){ .ring_set = true, .ring_from = "a", .ring_to = "a:1:2" };
	expect_refused(&o, "--ring-to: ");
	o = (struct keyfilter_opts){
		.ring_set = true, .ring_from = "a", .ring_to = "a,b", .keep = { "c" }, .nkeep = 1
	};
	expect_refused(&o, "--keep c: not a node of --ring-to");

	/* more new owners than groups: refused with the way out */
	char list[KEYFILTER_GROUPS_MAX * 16 + 32];
	size_t len = 0;
	for (unsigned i = 0; i <= KEYFILTER_GROUPS_MAX; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s10.1.0.%u", i ? "," : "",
					i + 1);
	o = (struct keyfilter_opts){ .ring_set = true, .ring_from = "10.1.0.1", .ring_to = list };
	expect_refused(&o, "with --keep");
	/* exactly as many as groups: accepted */
	*strrchr(list, ',') = '\0';
	struct keyfilter kf;
	char err[ERR_BYTES];
	size_t bytes;
	assert_int_equal(keyfilter_prepare(&kf, &o, &bytes, err, sizeof(err)), 0);
	assert_int_equal(kf.ngroups, KEYFILTER_GROUPS_MAX);
	assert_true(bytes > 0);
}

static void test_options(void **state)
{
	(void)state;
	struct keyfilter_opts o = { 0 };
	assert_int_equal(keyfilter_option("dump", KF_OPT_INCLUDE, "user:", &o), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_EXCLUDE, "tmp:", &o), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING, "evcache", &o), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING_POINTS, "80", &o), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING_PARTIAL, ":", &o), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_NODES, "a/10.0.0.1,b/10.0.0.2", &o), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_KEEP, "10.0.0.2", &o), 0);
	assert_int_equal(keyfilter_option("dump", 'x', "1", &o), 1); /* not ours */
	assert_int_equal(o.ninclude, 1);
	assert_string_equal(o.include[0], "user:");
	assert_string_equal(o.exclude[0], "tmp:");
	assert_true(o.ring_set);
	assert_int_equal(o.ring.kind, RING_EVCACHE);
	assert_int_equal(o.ring.points, 80);
	assert_int_equal(o.ring.partial_delim, ':');
	assert_int_equal(o.nkeep, 1);
	struct keyfilter kf;
	void *mem = kf_new(&kf, &o);
	unsigned g;
	assert_int_equal(apply_str(&kf, "tmp:1", &g), KF_PREFIX);
	free(mem);

	/* refusals are usage errors */
	assert_int_equal(keyfilter_option("dump", KF_OPT_INCLUDE, "", &o), MCW_EXIT_USAGE);
	assert_int_equal(keyfilter_option("dump", KF_OPT_EXCLUDE, "", &o), MCW_EXIT_USAGE);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING, "ketama", &o), MCW_EXIT_USAGE);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING_POINTS, "82", &o), MCW_EXIT_USAGE);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING_POINTS, "0", &o), MCW_EXIT_USAGE);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING_POINTS, "8192", &o), MCW_EXIT_USAGE);
	assert_int_equal(keyfilter_option("dump", KF_OPT_RING_PARTIAL, "::", &o), MCW_EXIT_USAGE);
	assert_int_equal(o.ring.points, 80); /* unchanged by the refusals */
	assert_int_equal(o.ninclude, 1);
	struct keyfilter_opts full = { 0 };
	for (unsigned i = 0; i < KEYFILTER_PREFIXES_MAX; i++)
		assert_int_equal(keyfilter_option("dump", KF_OPT_INCLUDE, "p", &full), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_INCLUDE, "p", &full), MCW_EXIT_USAGE);
	for (unsigned i = 0; i < KEYFILTER_KEEP_MAX; i++)
		assert_int_equal(keyfilter_option("dump", KF_OPT_KEEP, "a", &full), 0);
	assert_int_equal(keyfilter_option("dump", KF_OPT_KEEP, "a", &full), MCW_EXIT_USAGE);
	assert_int_equal(full.nkeep, KEYFILTER_KEEP_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefixes),      cmocka_unit_test(test_ring_keep),
		cmocka_unit_test(test_resize_groups), cmocka_unit_test(test_prepare_refusals),
		cmocka_unit_test(test_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
