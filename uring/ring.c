/*
 * ring.c: ring setup with feature probing, request preparation, submission and reaping.
 *
 * Owns: the liburing struct io_uring of one worker. Does not own any I/O buffer.
 * Invariants: only the creating thread submits or waits (SINGLE_ISSUER where the kernel
 * has it); a prep call never blocks: when the SQ is full it submits what is queued and
 * retries once; completions are copied out and the CQ advanced in one batch.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "uring.h"

#include "fault.h"
#ifdef MCW_FAULT_INJECTION
#define FAULT(r, op, ud) ur_fault_decide(&(r)->faults, (op), (ud))
#else
#define FAULT(r, op, ud) ((void)(r), (void)(op), (void)(ud), UR_FAULT_NONE) /* product: none */
#endif

/* The length of a request the fault plan shortens (fault.h). */
static size_t short_len(size_t len, bool aligned)
{
	if (!aligned)
		return len > 1 ? len / 2 : len;
	size_t half = len / 2 / 4096 * 4096;
	return half >= 4096 ? half : len;
}

/* Kernel 6.12 and later: a wait can gather completions for a while before it returns
 * (io_uring_getevents_arg's former pad is min_wait_usec). Debian 12's headers predate it. */
#define UR_FEAT_MIN_TIMEOUT (1U << 15)

struct ur_ring {
	struct io_uring ring;
	unsigned setup_flags;
	bool min_timeout; /* the kernel has UR_FEAT_MIN_TIMEOUT */
	char features[128];
#ifdef MCW_FAULT_INJECTION
	struct ur_fault_state *faults; /* test builds only (fault.h) */
#endif
};

/* Asks the fault plan (fault.h) about a request: a FAIL is prepared here as a no-op that
 * completes with the planned error; SHORT tells the caller to halve the request. */
static enum ur_fault_kind fault_begin(struct ur_ring *r, struct io_uring_sqe *sqe, enum ur_op op,
				      uint64_t user_data)
{
	enum ur_fault_kind f = FAULT(r, op, user_data);
	if (f == UR_FAULT_FAIL) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, user_data);
	}
	return f;
}

/* Flag sets tried in order; the first the kernel accepts wins. */
static const unsigned setup_attempts[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
	0,
};

static void describe(struct ur_ring *r)
{
	static const struct {
		unsigned flag;
		const char *name;
	} names[] = {
		{ IORING_SETUP_SINGLE_ISSUER, "single_issuer" },
		{ IORING_SETUP_DEFER_TASKRUN, "defer_taskrun" },
		{ IORING_SETUP_COOP_TASKRUN, "coop_taskrun" },
		{ IORING_SETUP_SUBMIT_ALL, "submit_all" },
		{ 0, "min_timeout" }, /* not a setup flag: r->min_timeout */
	};
	size_t o = 0;
	r->features[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].flag ? !(r->setup_flags & names[i].flag) : !r->min_timeout)
			continue;
		int n = snprintf(r->features + o, sizeof(r->features) - o, "%s%s", o ? "," : "",
				 names[i].name);
		if (n > 0 && (size_t)n < sizeof(r->features) - o)
			o += (size_t)n;
	}
	if (o == 0)
		snprintf(r->features, sizeof(r->features), "basic");
}

int ur_ring_create(const struct ur_ring_opts *opts, struct ur_ring **out)
{
	struct ur_ring *r = calloc(1, sizeof(*r));
	int ret = -EINVAL;

	if (r == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(setup_attempts) / sizeof(setup_attempts[0]); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = setup_attempts[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = opts->cq_entries ? opts->cq_entries : 2 * opts->sq_entries;
		ret = io_uring_queue_init_params(opts->sq_entries, &r->ring, &p);
		if (ret == 0) {
			r->setup_flags = setup_attempts[i];
			/* gathering needs the deferred task work too: without it completions are
			 * posted as they happen and every one wakes the waiter anyway */
			r->min_timeout = (p.features & UR_FEAT_MIN_TIMEOUT) &&
					 (p.flags & IORING_SETUP_DEFER_TASKRUN);
			break;
		}
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		free(r);
		return ret;
	}
	if (opts->iowq_workers_max > 0) {
		unsigned vals[2] = { opts->iowq_workers_max, opts->iowq_workers_max };
		(void)io_uring_register_iowq_max_workers(&r->ring, vals); /* best effort */
	}
	describe(r);
	*out = r;
	return 0;
}

void ur_ring_destroy(struct ur_ring *r)
{
	if (r == NULL)
		return;
	io_uring_queue_exit(&r->ring);
#ifdef MCW_FAULT_INJECTION
	ur_fault_free(r->faults);
#endif
	free(r);
}

const char *ur_ring_features(const struct ur_ring *r)
{
	return r->features;
}

int ur_buffers_register(struct ur_ring *r, const struct iovec *iovs, unsigned n)
{
	return io_uring_register_buffers(&r->ring, iovs, n);
}

static struct io_uring_sqe *get_sqe(struct ur_ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	if (sqe == NULL) {
		int ret = io_uring_submit(&r->ring);
		if (ret < 0 && ret != -EBUSY && ret != -EAGAIN)
			return NULL;
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

#define PREP_OR_BUSY(r, sqe)                                                                       \
	struct io_uring_sqe *sqe = get_sqe(r);                                                     \
	if (sqe == NULL)                                                                           \
	return -EBUSY

int ur_prep_recv(struct ur_ring *r, int fd, void *buf, size_t len, uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_RECV, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	if (fault == UR_FAULT_SHORT)
		len = short_len(len, false);
	io_uring_prep_recv(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_send(struct ur_ring *r, int fd, const void *buf, size_t len, uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_SEND, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	if (fault == UR_FAULT_SHORT)
		len = short_len(len, false);
	io_uring_prep_send(sqe, fd, buf, len, MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_sendmsg(struct ur_ring *r, int fd, const struct msghdr *msg, uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_SEND, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	io_uring_prep_sendmsg(sqe, fd, msg, MSG_WAITALL | MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_write_fixed(struct ur_ring *r, int fd, const void *buf, size_t len, uint64_t offset,
			unsigned buf_index, uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_WRITE, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	if (fault == UR_FAULT_SHORT)
		len = short_len(len, true);
	io_uring_prep_write_fixed(sqe, fd, buf, (unsigned)len, offset, (int)buf_index);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_read_fixed(struct ur_ring *r, int fd, void *buf, size_t len, uint64_t offset,
		       unsigned buf_index, uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_READ, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	if (fault == UR_FAULT_SHORT)
		len = short_len(len, true);
	io_uring_prep_read_fixed(sqe, fd, buf, (unsigned)len, offset, (int)buf_index);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_writev(struct ur_ring *r, int fd, const struct iovec *iov, unsigned n, uint64_t offset,
		   uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_WRITE, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	if (fault == UR_FAULT_SHORT)
		n = n > 1 ? n / 2 : n;
	io_uring_prep_writev(sqe, fd, iov, n, offset);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_read(struct ur_ring *r, int fd, void *buf, size_t len, uint64_t offset,
		 uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_READ, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	if (fault == UR_FAULT_SHORT)
		len = short_len(len, true);
	io_uring_prep_read(sqe, fd, buf, (unsigned)len, offset);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

int ur_prep_fsync(struct ur_ring *r, int fd, bool datasync, uint64_t user_data)
{
	PREP_OR_BUSY(r, sqe);
	enum ur_fault_kind fault = fault_begin(r, sqe, UR_OP_FSYNC, user_data);
	if (fault == UR_FAULT_FAIL)
		return 0;
	io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * When an enter both submits and times out, the kernel reports the submission count, not
 * the timeout; so the deadline is kept here and the wait repeated until a completion is
 * ready or the deadline has passed.
 */
/* What is left until deadline (now_ms clock), never negative, as the kernel takes it. */
static struct __kernel_timespec time_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();
	left = left < 0 ? 0 : left;
	return (struct __kernel_timespec){ .tv_sec = left / 1000,
					   .tv_nsec = (long long)(left % 1000) * 1000000 };
}

int ur_submit_wait(struct ur_ring *r, unsigned wait_nr, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
	for (;;) {
		int ret;
		if (wait_nr == 0) {
			/* With DEFER_TASKRUN completions are only run on a GETEVENTS enter. */
			ret = io_uring_submit_and_get_events(&r->ring);
			return ret < 0 ? ret : 0;
		}
		if (timeout_ms < 0) {
			ret = io_uring_submit_and_wait(&r->ring, wait_nr);
		} else {
			struct __kernel_timespec ts = time_left(deadline);
			struct io_uring_cqe *cqe = NULL;
			ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, wait_nr, &ts, NULL);
		}
		if (io_uring_cq_ready(&r->ring) > 0)
			return 0;
		if (ret == -EINTR || ret >= 0) {
			if (timeout_ms >= 0 && now_ms() >= deadline)
				return -ETIME;
			continue;
		}
		return ret;
	}
}

/* Hands the queued requests to the kernel's SQ ring (what liburing's submit does before
 * its io_uring_enter); returns how many are there to submit. No SQPOLL here. */
static unsigned sq_flush(struct io_uring *ring)
{
	struct io_uring_sq *sq = &ring->sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		io_uring_smp_store_release(sq->ktail, tail);
	}
	return tail - *sq->khead;
}

/* The kernel's struct io_uring_getevents_arg since 6.12. */
struct ur_getevents_arg {
	uint64_t sigmask;
	uint32_t sigmask_sz;
	uint32_t min_wait_usec;
	uint64_t ts;
};

int ur_submit_wait_gather(struct ur_ring *r, unsigned gather_nr, unsigned gather_us, int timeout_ms)
{
	if (!r->min_timeout || gather_us == 0 || gather_nr <= 1 || timeout_ms < 0)
		return ur_submit_wait(r, 1, timeout_ms);
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		struct __kernel_timespec ts = time_left(deadline);
		struct ur_getevents_arg arg = {
			.sigmask_sz = _NSIG / 8,
			.min_wait_usec = gather_us,
			.ts = (uint64_t)(uintptr_t)&ts,
		};
		unsigned submit = sq_flush(&r->ring);
		long ret =
		    syscall(__NR_io_uring_enter, r->ring.ring_fd, submit, gather_nr,
			    IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
		int err = ret < 0 ? errno : 0;
		if (io_uring_cq_ready(&r->ring) > 0)
			return 0;
		if (err == 0 || err == EINTR || err == ETIME) {
			if (now_ms() >= deadline)
				return -ETIME;
			continue;
		}
		return -err;
	}
}

unsigned ur_reap(struct ur_ring *r, struct ur_cqe *out, unsigned max)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&r->ring, head, cqe)
	{
		if (n == max)
			break;
		out[n].user_data = io_uring_cqe_get_data64(cqe);
		out[n].res = cqe->res;
#ifdef MCW_FAULT_INJECTION
		out[n].res = ur_fault_result(r->faults, out[n].user_data, cqe->res);
#endif
		out[n].flags = cqe->flags;
		n++;
	}
	io_uring_cq_advance(&r->ring, n);
	return n;
}
