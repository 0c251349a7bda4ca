/*
 * keyfilter.h: which keys a dump (or a verify) takes, and into which group.
 *
 *   --key-include P / --key-exclude P   key prefixes (each repeatable): a key is taken when
 *                                       it starts with an include prefix (if any is given)
 *                                       and with no exclude prefix
 *   --ring KIND --nodes LIST --keep N   instance warming: keys the ring gives to node N
 *                                       (repeatable); one output
 *   --ring KIND --ring-from A --ring-to B
 *                                       resizing: keys whose owner changes from ring A to
 *                                       ring B, grouped by their new owner: one output
 *                                       directory per node of B (or per --keep node of B),
 *                                       so each feeds the populator of that node
 *
 * Owners are compared by node (host and port), not by position, so a node that keeps
 * its place in a resized list keeps its keys. Everything is fixed after keyfilter_build:
 * the key reader calls keyfilter_apply for every listed key without locking.
 */
#ifndef MCW_KEYFILTER_H
#define MCW_KEYFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashring.h"
#include "mcw_limits.h"

#define KEYFILTER_GROUP_NAME (HASHRING_NAME_MAX + 8)

struct keyfilter_opts {
	const char *include[KEYFILTER_PREFIXES_MAX];
	unsigned ninclude;
	const char *exclude[KEYFILTER_PREFIXES_MAX];
	unsigned nexclude;
	bool ring_set;		   /* --ring given */
	struct hashring_opts ring; /* kind, points, partial key */
	const char *nodes;	   /* --nodes */
	const char *ring_from;	   /* --ring-from */
	const char *ring_to;	   /* --ring-to */
	const char *keep[KEYFILTER_KEEP_MAX];
	unsigned nkeep;
};

enum keyfilter_verdict {
	KF_TAKE,
	KF_PREFIX, /* excluded by --key-include / --key-exclude */
	KF_RING,   /* owned by another node, or not moved by the resize */
};

struct keyfilter {
	struct keyfilter_opts o;
	bool resize;
	struct hashring_node from_nodes[HASHRING_NODES_MAX]; /* --nodes or --ring-from */
	unsigned nfrom;
	struct hashring_node to_nodes[HASHRING_NODES_MAX]; /* --ring-to */
	unsigned nto;
	struct hashring from, to;
	bool keep_from[HASHRING_NODES_MAX];	/* instance warming: nodes whose keys are taken */
	int16_t to_group[HASHRING_NODES_MAX];	/* resize: group of a new owner, -1: not taken */
	int16_t to_in_from[HASHRING_NODES_MAX]; /* resize: the same node in ring A, -1: new */
	unsigned ngroups;			/* 1 unless resizing */
	char group_name[KEYFILTER_GROUPS_MAX][KEYFILTER_GROUP_NAME]; /* directory names */
	char group_node[KEYFILTER_GROUPS_MAX][HASHRING_NAME_MAX];    /* "host:port" */
};

/* Parses and checks the options (node lists, --keep names, combinations) and says how
 * much memory the rings need. 0 or -EINVAL with err for the operator. */
int keyfilter_prepare(struct keyfilter *kf, const struct keyfilter_opts *o, size_t *mem_bytes,
		      char *err, size_t cap);

/* Builds the rings in mem (keyfilter_prepare's size). */
int keyfilter_build(struct keyfilter *kf, void *mem, size_t mem_bytes, char *err, size_t cap);

/* Is any filter set? */
bool keyfilter_active(const struct keyfilter *kf);

/* The verdict for a key; *group is its output group when taken. */
enum keyfilter_verdict keyfilter_apply(const struct keyfilter *kf, const uint8_t *key, size_t len,
				       unsigned *group);

/* Command-line options shared by dump and verify: 0 when ch was one of them (taken),
 * 1 when it was not, or the usage exit code. */
int keyfilter_option(const char *cmd, int ch, const char *arg, struct keyfilter_opts *o);

/* getopt_long entries (splice into a command's table) and their help text. */
enum {
	KF_OPT_INCLUDE = 300,
	KF_OPT_EXCLUDE,
	KF_OPT_RING,
	KF_OPT_RING_POINTS,
	KF_OPT_RING_PARTIAL,
	KF_OPT_NODES,
	KF_OPT_KEEP,
	KF_OPT_RING_FROM,
	KF_OPT_RING_TO,
};
#define KEYFILTER_LONGOPTS                                                                         \
	{ "key-include", required_argument, NULL, KF_OPT_INCLUDE },                                \
	    { "key-exclude", required_argument, NULL, KF_OPT_EXCLUDE },                            \
	    { "ring", required_argument, NULL, KF_OPT_RING },                                      \
	    { "ring-points", required_argument, NULL, KF_OPT_RING_POINTS },                        \
	    { "ring-partial-key", required_argument, NULL, KF_OPT_RING_PARTIAL },                  \
	    { "nodes", required_argument, NULL, KF_OPT_NODES },                                    \
	    { "keep", required_argument, NULL, KF_OPT_KEEP },                                      \
	    { "ring-from", required_argument, NULL, KF_OPT_RING_FROM },                            \
	{                                                                                          \
		"ring-to", required_argument, NULL, KF_OPT_RING_TO                                 \
	}
extern const char keyfilter_help[];

#endif
