/*
 * run.h: what every multi-threaded command shares: one mutex and condition variable, the
 * first failure (later ones are dropped), and the set-up and exit of worker threads.
 */
#ifndef MCW_RUN_H
#define MCW_RUN_H

#include <pthread.h>
#include <stdbool.h>

#include "base.h"
#include "uring.h"

struct run_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mcw_fault fault; /* the first failure (base.h); fault.err != 0 once failed */
	unsigned threads_running;
};

void run_init(struct run_state *r);
/* Records the first failure (err: -errno or -MCW_E*, base.h), wakes every waiter. */
void run_fail(struct run_state *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool run_failed(struct run_state *r);
/* With mu held: waits for a signal or interval_ms, whichever comes first. */
void run_wait_ms(struct run_state *r, int interval_ms);
/* A worker thread ends: one less running, waiters woken. */
void run_thread_done(struct run_state *r);

/* In a new worker thread: names it (for top -H), pins it to cpu (best effort) and creates
 * its io_uring. 0 or -errno. */
int run_thread_setup(const char *name, int cpu, int nice, struct ur_ring **ring);

#endif
