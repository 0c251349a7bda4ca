/*
 * fault.c: see fault.h. Process-wide counters per kind of request (atomics: every worker
 * counts into them), a per-ring table of the requests in flight that carry a fault.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

#define FAULT_RULES_MAX	  8
#define FAULT_PENDING_MAX 256 /* faulted requests in flight per ring */

struct rule {
	enum ur_op op;
	enum { W_NTH, W_FROM, W_P } when;
	uint64_t n;
	double p;
	bool is_short;
	int32_t res;
};

struct ur_fault_state {
	struct {
		uint64_t user_data;
		int32_t res;
		bool used;
	} pending[FAULT_PENDING_MAX];
	uint64_t rng;
};

static struct rule rules[FAULT_RULES_MAX];
static unsigned nrules;
static atomic_uint_fast64_t counts[UR_OP_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t seed = 1;

static const char *const op_names[UR_OP_COUNT] = { "recv", "send", "write", "read", "fsync" };

static void bad_plan(const char *rule)
{
	fprintf(stderr, "MCW_URING_FAULTS: cannot read the rule '%s' (see uring/fault.h)\n", rule);
	exit(70);
}

static void parse_plan(void)
{
	const char *env = getenv("MCW_URING_FAULTS");
	const char *s = getenv("MCW_URING_FAULTS_SEED");
	if (s != NULL)
		seed = strtoull(s, NULL, 10) | 1;
	if (env == NULL || *env == '\0')
		return;
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", env);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (nrules == FAULT_RULES_MAX)
			bad_plan(tok);
		struct rule r = { 0 };
		char op[16], when[32], what[32];
		if (sscanf(tok, "%15[a-z]:%31[^:]:%31s", op, when, what) != 3)
			bad_plan(tok);
		unsigned i;
		for (i = 0; i < UR_OP_COUNT && strcmp(op, op_names[i]) != 0; i++)
			;
		if (i == UR_OP_COUNT)
			bad_plan(tok);
		r.op = (enum ur_op)i;
		if (sscanf(when, "nth=%lu", &r.n) == 1)
			r.when = W_NTH;
		else if (sscanf(when, "from=%lu", &r.n) == 1)
			r.when = W_FROM;
		else if (sscanf(when, "p=%lf", &r.p) == 1)
			r.when = W_P;
		else
			bad_plan(tok);
		if (strcmp(what, "short") == 0)
			r.is_short = true;
		else if (sscanf(what, "res=%d", &r.res) != 1 || r.res >= 0)
			bad_plan(tok);
		rules[nrules++] = r;
	}
	fprintf(stderr, "mcwarm: fault injection on: %s\n", env);
}

static double next_random(struct ur_fault_state *st)
{
	st->rng ^= st->rng << 13;
	st->rng ^= st->rng >> 7;
	st->rng ^= st->rng << 17;
	return (double)(st->rng >> 11) / 9007199254740992.0;
}

enum ur_fault_kind ur_fault_decide(struct ur_fault_state **stp, enum ur_op op, uint64_t user_data)
{
	pthread_once(&once, parse_plan);
	if (nrules == 0)
		return UR_FAULT_NONE;
	if (*stp == NULL) {
		*stp = calloc(1, sizeof(**stp));
		if (*stp == NULL)
			return UR_FAULT_NONE;
		(*stp)->rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)(uintptr_t)*stp;
	}
	struct ur_fault_state *st = *stp;
	uint64_t n = atomic_fetch_add(&counts[op], 1) + 1;
	for (unsigned i = 0; i < nrules; i++) {
		const struct rule *r = &rules[i];
		if (r->op != op)
			continue;
		bool hit = r->when == W_NTH    ? n == r->n
			   : r->when == W_FROM ? n >= r->n
					       : next_random(st) < r->p;
		if (!hit)
			continue;
		if (r->is_short)
			return UR_FAULT_SHORT;
		for (unsigned k = 0; k < FAULT_PENDING_MAX; k++) {
			if (!st->pending[k].used) {
				st->pending[k].used = true;
				st->pending[k].user_data = user_data;
				st->pending[k].res = r->res;
				return UR_FAULT_FAIL;
			}
		}
		return UR_FAULT_NONE; /* too many in flight: this one goes through */
	}
	return UR_FAULT_NONE;
}

int32_t ur_fault_result(struct ur_fault_state *st, uint64_t user_data, int32_t res)
{
	if (st == NULL)
		return res;
	for (unsigned k = 0; k < FAULT_PENDING_MAX; k++) {
		if (st->pending[k].used && st->pending[k].user_data == user_data) {
			st->pending[k].used = false;
			return st->pending[k].res;
		}
	}
	return res;
}

void ur_fault_free(struct ur_fault_state *st)
{
	free(st);
}
