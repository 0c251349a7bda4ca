/*
 * run.c: see run.h.
 */
#include <errno.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "base.h"
#include "mcw_limits.h"
#include "run.h"

void run_init(struct run_state *r)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->fault.err = 0;
	r->fault.msg[0] = '\0';
	r->threads_running = 0;
}

void run_fail(struct run_state *r, int err, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&r->mu);
	va_start(ap, fmt);
	mcw_fault_vset(&r->fault, err, fmt, ap);
	va_end(ap);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

bool run_failed(struct run_state *r)
{
	pthread_mutex_lock(&r->mu);
	bool f = r->fault.err != 0;
	pthread_mutex_unlock(&r->mu);
	return f;
}

void run_wait_ms(struct run_state *r, int interval_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)interval_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / NS_PER_SEC;
	ts.tv_nsec %= NS_PER_SEC;
	pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

void run_thread_done(struct run_state *r)
{
	pthread_mutex_lock(&r->mu);
	r->threads_running--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

int run_thread_setup(const char *name, int cpu, int nice, struct ur_ring **ring)
{
	/* this thread only (Linux: a nice value is a thread's); raising it needs no privilege */
	id_t tid = (id_t)gettid();
	errno = 0;
	int cur = getpriority(PRIO_PROCESS, tid);
	if (nice > 0 && errno == 0 && cur < nice)
		(void)setpriority(PRIO_PROCESS, tid, nice);
	pthread_setname_np(pthread_self(), name);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	struct ur_ring_opts ro = { .sq_entries = MCW_RING_ENTRIES,
				   .iowq_workers_max = MCW_IOWQ_WORKERS_MAX };
	return ur_ring_create(&ro, ring);
}
