/*
 * budget.c: one anonymous mapping for the whole memory budget.
 *
 * Why pre-fault: on the VMs we run on, the first touch of a page costs 1 to 4 s/GiB and
 * freed pages go back to the host, so regions are touched once at start-up and kept.
 * libnuma earns its place only on multi-node hosts: there each worker's regions are
 * bound to the node of the CPU the worker is pinned to. On one node it is not called.
 */
#include <errno.h>
#include <numa.h>
#include <string.h>
#include <sys/mman.h>

#include "base.h"
#include "budget.h"
#include "mcw_limits.h"

int budget_map(struct budget *b, size_t bytes)
{
	memset(b, 0, sizeof(*b));
	bytes = ROUND_UP(bytes, MCW_ALIGN_BYTES);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* faster first touch where THP is on */
	b->base = p;
	b->bytes = bytes;
	return 0;
}

void *budget_take(struct budget *b, size_t bytes, const char *owner, const char *name,
		  int numa_node)
{
	bytes = ROUND_UP(bytes, MCW_ALIGN_BYTES);
	ASSERT(b->base != NULL);
	ASSERT(b->nregions < BUDGET_REGIONS_MAX);
	ASSERT(b->used + bytes <= b->bytes);
	struct budget_region *r = &b->regions[b->nregions++];
	r->owner = owner;
	r->name = name;
	r->base = b->base + b->used;
	r->bytes = bytes;
	r->numa_node = numa_node;
	b->used += bytes;
	return r->base;
}

int budget_numa_nodes(void)
{
	if (numa_available() < 0)
		return 1;
	int n = numa_num_configured_nodes();
	return n > 0 ? n : 1;
}

int budget_numa_node_of_cpu(int cpu)
{
	if (budget_numa_nodes() < 2)
		return 0;
	int node = numa_node_of_cpu(cpu);
	return node < 0 ? 0 : node;
}

void budget_commit(struct budget *b)
{
	bool multi_node = budget_numa_nodes() > 1;
	for (unsigned i = 0; i < b->nregions; i++) {
		struct budget_region *r = &b->regions[i];
		if (multi_node && r->numa_node >= 0)
			numa_tonode_memory(r->base, r->bytes, r->numa_node);
		memset(r->base, 0, r->bytes);
	}
}

void budget_print(const struct budget *b, FILE *f)
{
	char s1[32], s2[32];
	fprintf(f, "mcwarm: memory budget %s, %s in fixed buffers:\n",
		size_format(s1, sizeof(s1), b->bytes), size_format(s2, sizeof(s2), b->used));
	for (unsigned i = 0; i < b->nregions;) {
		const char *owner = b->regions[i].owner;
		char line[512];
		int n = snprintf(line, sizeof(line), "  %-12s", owner);
		for (; i < b->nregions && strcmp(b->regions[i].owner, owner) == 0; i++) {
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %s,",
				      b->regions[i].name,
				      size_format(s1, sizeof(s1), b->regions[i].bytes));
			if ((size_t)n >= sizeof(line))
				break;
		}
		if (n > 0 && (size_t)n < sizeof(line) && line[n - 1] == ',')
			line[n - 1] = '\0';
		fprintf(f, "%s\n", line);
	}
}

void budget_unmap(struct budget *b)
{
	if (b->base != NULL)
		munmap(b->base, b->bytes);
	memset(b, 0, sizeof(*b));
}
