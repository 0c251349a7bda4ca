/*
 * uring.h: mcwarm's io_uring layer. The only header that stands between the project and
 * liburing: one ring per worker thread, created and used by that thread only.
 *
 * Conventions (as liburing): actions return 0 or -errno; ur_reap returns a count.
 * A prep call queues one request; it is sent to the kernel by the next ur_submit_wait.
 * Buffers handed to a prep call belong to the kernel until its completion is reaped.
 * user_data is the caller's 64-bit tag, returned unchanged in the completion.
 *
 * The user_data scheme, so that several owners share one ring without colliding: every
 * tag is ur_ud(owner, id, payload): bits 63-60 the owner's kind (enum ur_owner), bits
 * 59-56 which instance of that kind (a worker's source and destination pipes: 0..15),
 * bits 55-0 the owner's own payload (a slot, a file generation, a byte count). An owner
 * routes a completion with ur_ud_owner and ur_ud_id, then reads ur_ud_payload.
 */
#ifndef URING_H
#define URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct ur_ring;

enum ur_owner {
	UR_OWNER_MGPIPE = 1,	   /* mgpipe.c: pipelined mg */
	UR_OWNER_MSPIPE = 2,	   /* mspipe.c: pipelined ms */
	UR_OWNER_FILE_READ = 3,	   /* populate's chunk file reads */
	UR_OWNER_KEY_SPOOL = 4,	   /* the key reader's key chunk writes */
	UR_OWNER_CHUNK_WRITER = 5, /* chunk_writer.c: chunk file writes and syncs */
};
#define UR_UD_PAYLOAD_MASK ((1ull << 56) - 1)

static inline uint64_t ur_ud(enum ur_owner owner, unsigned id, uint64_t payload)
{
	return (uint64_t)owner << 60 | (uint64_t)(id & 0xf) << 56 | (payload & UR_UD_PAYLOAD_MASK);
}
static inline enum ur_owner ur_ud_owner(uint64_t ud)
{
	return (enum ur_owner)(ud >> 60);
}
static inline unsigned ur_ud_id(uint64_t ud)
{
	return (unsigned)(ud >> 56) & 0xf;
}
static inline uint64_t ur_ud_payload(uint64_t ud)
{
	return ud & UR_UD_PAYLOAD_MASK;
}

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

/* As ur_submit_wait for one completion, but where the kernel can (6.12 and later, with
 * DEFER_TASKRUN: "min_timeout" in ur_ring_features) the wait first gathers: it returns
 * once gather_nr completions are ready or gather_us has passed with at least one ready.
 * A receive then takes everything that arrived meanwhile in one completion, and the
 * thread sleeps and wakes once for many of them. Elsewhere: ur_submit_wait(r, 1, ...). */
int ur_submit_wait_gather(struct ur_ring *r, unsigned gather_nr, unsigned gather_us,
			  int timeout_ms);

/* Copies up to max ready completions into out and frees their ring slots. */
unsigned ur_reap(struct ur_ring *r, struct ur_cqe *out, unsigned max);

#endif
