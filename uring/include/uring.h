/*
 * uring.h: mcwarm's io_uring layer. The only header that stands between the project and
 * liburing: one ring per worker thread, created and used by that thread only.
 *
 * Conventions (as liburing): actions return 0 or -errno; ur_reap returns a count.
 * A prep call queues one request; it is sent to the kernel by the next ur_submit_wait.
 * Buffers handed to a prep call belong to the kernel until its completion is reaped.
 * user_data is the caller's 64-bit tag, returned unchanged in the completion.
 */
#ifndef URING_H
#define URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct ur_ring;

struct ur_ring_opts {
	unsigned sq_entries;	   /* submission queue size (power of two is best) */
	unsigned cq_entries;	   /* 0: twice sq_entries */
	unsigned iowq_workers_max; /* bound on io-wq threads per kind; 0: kernel default */
};

/* One completion, copied out of the ring. */
struct ur_cqe {
	uint64_t user_data;
	int32_t res; /* bytes transferred or -errno */
	uint32_t flags;
};

/* Creates a ring owned by the calling thread. Tries SINGLE_ISSUER, DEFER_TASKRUN,
 * COOP_TASKRUN and SUBMIT_ALL and drops what the kernel refuses. Allocates once. */
int ur_ring_create(const struct ur_ring_opts *opts, struct ur_ring **out);
void ur_ring_destroy(struct ur_ring *r);

/* Names the setup flags in effect ("single_issuer,defer_taskrun,..."), for logs. */
const char *ur_ring_features(const struct ur_ring *r);

/* Registers fixed buffers (index = position in iovs). Call once, before any *_fixed op. */
int ur_buffers_register(struct ur_ring *r, const struct iovec *iovs, unsigned n);

/* Queue operations. -EBUSY if the submission queue stays full after a flush. */
int ur_prep_recv(struct ur_ring *r, int fd, void *buf, size_t len, uint64_t user_data);
/* Sends the whole buffer (MSG_WAITALL | MSG_NOSIGNAL): a short result means an error. */
int ur_prep_send(struct ur_ring *r, int fd, const void *buf, size_t len, uint64_t user_data);
int ur_prep_sendmsg(struct ur_ring *r, int fd, const struct msghdr *msg, uint64_t user_data);
int ur_prep_write_fixed(struct ur_ring *r, int fd, const void *buf, size_t len, uint64_t offset,
			unsigned buf_index, uint64_t user_data);
int ur_prep_read_fixed(struct ur_ring *r, int fd, void *buf, size_t len, uint64_t offset,
		       unsigned buf_index, uint64_t user_data);
int ur_prep_writev(struct ur_ring *r, int fd, const struct iovec *iov, unsigned n, uint64_t offset,
		   uint64_t user_data);
int ur_prep_read(struct ur_ring *r, int fd, void *buf, size_t len, uint64_t offset,
		 uint64_t user_data);
int ur_prep_fsync(struct ur_ring *r, int fd, bool datasync, uint64_t user_data);

/* Submits everything queued and waits until at least wait_nr completions are ready or
 * timeout_ms passes (-1: no timeout). Returns 0, -ETIME on timeout, or -errno. */
int ur_submit_wait(struct ur_ring *r, unsigned wait_nr, int timeout_ms);

/* Copies up to max ready completions into out and frees their ring slots. */
unsigned ur_reap(struct ur_ring *r, struct ur_cqe *out, unsigned max);

#endif
