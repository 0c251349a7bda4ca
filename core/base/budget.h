/*
 * budget.h: the memory budget. One mapping of --memory bytes made at start-up, carved
 * into named regions, pre-faulted, never grown, never returned until exit. Every buffer
 * the data path uses is one of these regions.
 */
#ifndef MCW_BUDGET_H
#define MCW_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mcw_limits.h"

struct budget_region {
	const char *owner; /* "worker 0", "key reader" */
	const char *name;  /* "receive", "staging" */
	uint8_t *base;
	size_t bytes;
	int numa_node; /* -1: no binding */
};

struct budget {
	uint8_t *base;
	size_t bytes;
	size_t used;
	unsigned nregions;
	struct budget_region regions[BUDGET_REGIONS_MAX];
};

/* Reserves the address space (nothing is touched yet). 0 or -errno. */
int budget_map(struct budget *b, size_t bytes);

/* Carves a 4096-aligned region. Sizes are planned beforehand, so running out is a bug
 * (asserted). numa_node >= 0 binds the region to that node on multi-node hosts. */
void *budget_take(struct budget *b, size_t bytes, const char *owner, const char *name,
		  int numa_node);

/* Binds and pre-faults every region taken so far. Regions are zero when committed. */
void budget_commit(struct budget *b);

/* Prints the regions, one line per owner. */
void budget_print(const struct budget *b, FILE *f);

void budget_unmap(struct budget *b);

/* Nodes of the host and the node of a CPU (0 on single-node hosts or without libnuma). */
int budget_numa_nodes(void);
int budget_numa_node_of_cpu(int cpu);

#endif
