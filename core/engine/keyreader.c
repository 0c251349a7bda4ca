/*
 * keyreader.c: the key reader thread. It owns the dedicated key-dump connection, drains
 * `lru_crawler metadump` (or mgdump) at full speed, filters and dedupes keys and spools
 * them into key chunks on disk for the workers.
 *
 * Why it must never stall: memcached 1.6.18 holds a hash bucket lock while it writes a
 * hash-walk dump to a slow client, and a stalled dump client freezes a server worker
 * thread. So this thread does nothing but parse, filter and hand chunks to the kernel:
 * chunk writes go through its own io_uring with two staging buffers, and it only waits
 * for the disk when both are still in flight (the disk slower than the key stream).
 *
 *   send command --BUSY (before any key)--> backoff, resend (MCW_BUSY_RETRIES_MAX)
 *        |--ERROR to mgdump--> metadump instead
 *        v
 *   lines --> key --> filter --> dedupe --> group's chunk --(full)--> write --> publish
 *        \--> END: publish the last chunk, keys_done    EOF or timeout: failure
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "engine.h"
#include "keyspool.h"
#include "mcw_limits.h"

struct kr_slot {
	bool inflight;
	bool written;
	uint32_t seq;
	int fd;
	size_t bytes;
};

struct kr {
	struct engine *c;
	struct ur_ring *ring;
	struct keychunk_builder b[KEYFILTER_GROUPS_MAX]; /* one chunk being built per group */
	unsigned cur;					 /* staging buffer written next */
	struct kr_slot slots[2];
	uint32_t next_seq;
	bool items_seen;
	bool using_mgdump;
	unsigned unsendable_logged;
};

static void publish_ready(struct kr *k)
{
	struct engine *c = k->c;
	for (;;) {
		struct kr_slot *s = NULL;
		for (unsigned i = 0; i < 2; i++) {
			if (k->slots[i].written && k->slots[i].seq == c->chunks_ready)
				s = &k->slots[i];
		}
		if (s == NULL)
			return;
		s->written = false;
		pthread_mutex_lock(&c->run.mu);
		c->chunks_ready++;
		pthread_cond_broadcast(&c->run.cv);
		pthread_mutex_unlock(&c->run.mu);
	}
}

/* Reaps chunk write completions; waits for at least one if wait is set. */
static int reap(struct kr *k, bool wait)
{
	struct ur_cqe cqes[4];
	int ret = ur_submit_wait(k->ring, wait ? 1 : 0, MCW_IO_TIMEOUT_MS);
	if (ret < 0 && ret != -ETIME)
		return ret;
	if (ret == -ETIME && wait)
		return -ETIMEDOUT;
	unsigned n = ur_reap(k->ring, cqes, ARRAY_LEN(cqes));
	for (unsigned i = 0; i < n; i++) {
		ASSERT(ur_ud_owner(cqes[i].user_data) == UR_OWNER_KEY_SPOOL);
		struct kr_slot *s = &k->slots[ur_ud_payload(cqes[i].user_data)];
		ASSERT(s->inflight);
		s->inflight = false;
		int err = cqes[i].res < 0 ? cqes[i].res : 0;
		if (err == 0 && (size_t)cqes[i].res != s->bytes) {
			err = short_write_errno(s->fd, s->bytes - (size_t)cqes[i].res);
			engine_fail(
			    k->c, err, "short write of key chunk %u to %s: %d of %zu bytes: %s",
			    s->seq, k->c->spool_path, cqes[i].res, s->bytes, strerror(-err));
		}
		close(s->fd);
		if (err < 0)
			return err;
		s->written = true;
	}
	publish_ready(k);
	return 0;
}

static int open_chunk_file(struct kr *k, uint32_t seq)
{
	char name[32];
	keychunk_name(name, seq);
	int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
	int fd = openat(k->c->spool_fd, name, flags | O_DIRECT, 0644);
	if (fd < 0 && errno == EINVAL)
		fd = openat(k->c->spool_fd, name, flags, 0644);
	return fd < 0 ? -errno : fd;
}

/* Hands group g's chunk to the kernel and starts the group's next one. With one group
 * the chunk is built right in the staging buffer written next; with several, each group
 * builds in its own buffer and a full chunk is copied into the staging buffer. */
static int flush_chunk(struct kr *k, unsigned g)
{
	struct engine *c = k->c;
	struct keychunk_builder *b = &k->b[g];
	bool direct = c->kf.ngroups == 1;
	if (b->count == 0)
		return 0;
	struct kr_slot *s = &k->slots[k->cur];
	ASSERT(!s->inflight && !s->written);
	s->seq = k->next_seq++;
	s->bytes = keychunk_finish(b, c->id.dump_id, s->seq, (uint16_t)g);
	if (!direct) {
		memcpy(c->kr_stage[k->cur], b->buf, s->bytes);
		keychunk_builder_reset(b, c->kr_group[g], c->kr_group_bytes);
	}
	s->fd = open_chunk_file(k, s->seq);
	if (s->fd < 0)
		return s->fd;
	int ret = ur_prep_write_fixed(k->ring, s->fd, c->kr_stage[k->cur], s->bytes, 0, k->cur,
				      ur_ud(UR_OWNER_KEY_SPOOL, 0, k->cur));
	if (ret < 0) {
		close(s->fd);
		return ret;
	}
	s->inflight = true;
	k->cur ^= 1;
	while (k->slots[k->cur].inflight || k->slots[k->cur].written) {
		ret = reap(k, true);
		if (ret < 0)
			return ret;
	}
	if (direct)
		keychunk_builder_reset(b, c->kr_stage[k->cur], MCW_KEYCHUNK_BYTES);
	return reap(k, false); /* submits the write just queued */
}

/* Where group g's first chunk is built. */
static uint8_t *builder_area(struct kr *k, unsigned g, size_t *cap)
{
	struct engine *c = k->c;
	if (c->kf.ngroups == 1) {
		*cap = MCW_KEYCHUNK_BYTES;
		return c->kr_stage[k->cur];
	}
	*cap = c->kr_group_bytes;
	return c->kr_group[g];
}

static void log_unsendable(struct kr *k, const struct mcp_dump_item *it)
{
	char enc[3 * MCP_KEY_MAX + 1];
	if (k->unsendable_logged++ >= 5)
		return;
	size_t n = mcp_pct_encode(enc, sizeof(enc) - 1, it->key, it->key_len);
	enc[n] = '\0';
	log_warn("key %s (%zu bytes) cannot be fetched with a meta request (binary keys must "
		 "be at most %d bytes); skipped",
		 enc, it->key_len, MCP_KEY_B64_RAW_MAX);
}

/* Keys parsed but not yet checked for duplicates (KR_PREFETCH_KEYS): their table slots are
 * being prefetched meanwhile, so the checks that follow do not each wait for memory. */

struct kr_pending {
	struct mcp_dump_item it[KR_PREFETCH_KEYS];
	uint64_t id[KR_PREFETCH_KEYS];
	bool b64[KR_PREFETCH_KEYS];
	uint16_t group[KR_PREFETCH_KEYS];
	unsigned n;
	uint64_t listed; /* keys parsed since the last flush, admitted or not */
	int64_t now_s;	 /* the source's clock for this receive: read once, not per key */
};

/* Filters a freshly parsed key; true if it goes on to the duplicate check. */
static bool key_admit(struct kr *k, struct kr_pending *p)
{
	struct engine *c = k->c;
	const struct mcp_dump_item *it = &p->it[p->n];
	p->listed++; /* counted at the flush: the workers' counters share its cache lines */
	k->items_seen = true;
	if (it->exp > 0) {
		int64_t left = it->exp - p->now_s;
		if (left <= 0 || left < c->o.min_ttl_s) {
			atomic_fetch_add_explicit(&c->st.keys_expired, 1, memory_order_relaxed);
			return false;
		}
	}
	unsigned group = 0;
	if (c->filter_on) {
		enum keyfilter_verdict v = keyfilter_apply(&c->kf, it->key, it->key_len, &group);
		if (v != KF_TAKE) {
			atomic_fetch_add_explicit(v == KF_PREFIX ? &c->st.keys_filtered_prefix
								 : &c->st.keys_filtered_ring,
						  1, memory_order_relaxed);
			return false;
		}
	}
	if (c->sample_threshold != 0 && hash64(it->key, it->key_len) >= c->sample_threshold) {
		atomic_fetch_add_explicit(&c->st.keys_unsampled, 1, memory_order_relaxed);
		return false; /* verify --sample: the same keys every time */
	}
	p->group[p->n] = (uint16_t)group;
	bool b64 = it->key_needs_b64;
	if (it->key_len > (b64 ? (size_t)MCP_KEY_B64_RAW_MAX : (size_t)MCP_KEY_MAX)) {
		atomic_fetch_add(&c->st.keys_unsendable, 1);
		log_unsendable(k, it);
		return false;
	}
	p->b64[p->n] = b64;
	if (c->dedupe_on) {
		/* a resumed listing knows the keys already dumped by key, not by CAS (resume.c) */
		p->id[p->n] = dedupe_id(c->resuming ? 0 : it->cas, it->key, it->key_len);
		dedupe_prefetch(&c->dedupe, p->id[p->n]);
	}
	return true;
}

/* Dedupes the pending keys in order and adds the new ones to the key chunk. */
static int pending_flush(struct kr *k, struct kr_pending *p)
{
	struct engine *c = k->c;
	uint64_t dup = 0, unchecked = 0, queued = 0;
	int ret = 0;
	for (unsigned i = 0; i < p->n && ret == 0; i++) {
		const struct mcp_dump_item *it = &p->it[i];
		switch (c->dedupe_on ? dedupe_check(&c->dedupe, p->id[i]) : DEDUPE_NEW) {
		case DEDUPE_DUPLICATE:
			dup++;
			continue;
		case DEDUPE_UNCHECKED:
			unchecked++;
			break;
		case DEDUPE_NEW:
			break;
		}
		uint8_t flags = p->b64[i] ? KEYCHUNK_F_B64 : 0;
		unsigned g = p->group[i];
		if (!keychunk_add(&k->b[g], it->key, it->key_len, flags)) {
			ret = flush_chunk(k, g);
			if (ret == 0)
				ASSERT(keychunk_add(&k->b[g], it->key, it->key_len, flags));
		}
		queued++;
	}
	p->n = 0;
	atomic_fetch_add_explicit(&c->st.keys_listed, p->listed, memory_order_relaxed);
	p->listed = 0;
	atomic_fetch_add_explicit(&c->st.keys_duplicate, dup, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->st.keys_unchecked, unchecked, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->st.keys_queued, queued, memory_order_relaxed);
	return ret;
}

static const char *dump_command(const struct kr *k)
{
	bool all = k->c->o.crawl == KEYS_ALL;
	if (k->using_mgdump)
		return all ? "lru_crawler mgdump all\r\n" : "lru_crawler mgdump hash\r\n";
	return all ? "lru_crawler metadump all\r\n" : "lru_crawler metadump hash\r\n";
}

/* Sleeps a jittered, growing delay; false if the dump failed meanwhile. */
static bool busy_backoff(struct engine *c, unsigned attempt)
{
	uint64_t base = MCW_BUSY_BACKOFF_MIN_MS << MIN(attempt, 10u);
	base = MIN(base, (uint64_t)MCW_BUSY_BACKOFF_MAX_MS);
	uint32_t r;
	random_bytes(&r, sizeof(r));
	uint64_t delay_ms = base / 2 + r % (base + 1); /* 0.5x to 1.5x */
	for (uint64_t slept = 0; slept < delay_ms; slept += 50) {
		if (engine_failed(c))
			return false;
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	return true;
}

enum line_verdict { LINE_GO_ON, LINE_END, LINE_RESTART, LINE_FAIL };

static enum line_verdict handle_reply_line(struct kr *k, const struct mcp_dump_item *it,
					   unsigned *busy_attempts)
{
	struct engine *c = k->c;
	const char *addr = c->o.source.text;
	if (it->kind == MCP_DUMP_BUSY && !k->items_seen) {
		if (++*busy_attempts > MCW_BUSY_RETRIES_MAX) {
			engine_fail(c, -EBUSY,
				    "the crawler of %s stayed busy through %d retries (another "
				    "dump or crawl is running there): run again when it is done",
				    addr, MCW_BUSY_RETRIES_MAX);
			return LINE_FAIL;
		}
		atomic_fetch_add(&c->st.busy_retries, 1);
		log_info("crawler busy on %s (%.*s: another dump or crawl runs): retry %u of %d",
			 addr, (int)it->msg_len, it->msg, *busy_attempts, MCW_BUSY_RETRIES_MAX);
		return busy_backoff(c, *busy_attempts) ? LINE_RESTART : LINE_FAIL;
	}
	if (it->kind == MCP_DUMP_ERROR && k->using_mgdump && !k->items_seen &&
	    it->msg_len == 5) { /* plain ERROR: this server has no mgdump */
		k->using_mgdump = false;
		return LINE_RESTART;
	}
	if (it->kind == MCP_DUMP_ERROR && memmem(it->msg, it->msg_len, "not allowed", 11)) {
		engine_fail(c, -EOPNOTSUPP,
			    "%s refuses key dumps (%.*s): memcached was started with -X; restart "
			    "it without -X or warm from another replica",
			    addr, (int)it->msg_len, it->msg);
	} else if (it->kind == MCP_DUMP_ERROR && memmem(it->msg, it->msg_len, "disabled", 8)) {
		engine_fail(c, -EOPNOTSUPP,
			    "the LRU crawler of %s is disabled (%.*s): enable it with "
			    "'lru_crawler enable' on that server and run again",
			    addr, (int)it->msg_len, it->msg);
	} else {
		engine_fail(c, -EPROTO, "key dump from %s ended with an error: %.*s", addr,
			    (int)it->msg_len, it->msg);
	}
	return LINE_FAIL;
}

/* A key chunk could not be written: the dump fails, saying why. */
static void key_chunk_write_failed(struct engine *c, int ret)
{
	engine_fail(c, ret, "cannot write key chunk to %s: %s%s", c->spool_path, strerror(-ret),
		    ret == -ENOSPC || ret == -EDQUOT ? " (the volume is full: free space, then run "
						       "again; the dump continues where it stopped)"
						     : "");
}

static bool key_chunk_failed(struct kr *k, int ret, enum line_verdict *v)
{
	if (ret == 0)
		return false;
	key_chunk_write_failed(k->c, ret);
	*v = LINE_FAIL;
	return true;
}

/* Parses every complete line in buf; returns how many bytes were consumed. */
static size_t parse_lines(struct kr *k, const char *buf, size_t len, enum line_verdict *v,
			  unsigned *busy_attempts)
{
	static __thread struct kr_pending p; /* 10 KiB: off the stack */
	size_t pos = 0;
	*v = LINE_GO_ON;
	p.n = 0;
	p.listed = 0;
	p.now_s = server_now_s(&k->c->src);
	while (pos < len) {
		size_t used;
		struct mcp_dump_item *it = &p.it[p.n];
		enum mcp_status st = mcp_dump_line_parse(buf + pos, len - pos, &used, it);
		if (st == MCP_NEED_MORE)
			break;
		if (st != MCP_OK) {
			engine_fail(k->c, -EPROTO,
				    "malformed key dump line from %s (%s): \"%.80s\"",
				    k->c->o.source.text, mcp_status_name(st), buf + pos);
			*v = LINE_FAIL;
			return pos;
		}
		pos += used;
		if (it->kind == MCP_DUMP_ITEM) {
			if (key_admit(k, &p) && ++p.n == KR_PREFETCH_KEYS &&
			    key_chunk_failed(k, pending_flush(k, &p), v))
				return pos;
			continue;
		}
		if (key_chunk_failed(k, pending_flush(k, &p), v))
			return pos;
		if (it->kind == MCP_DUMP_END) {
			*v = LINE_END;
			return pos;
		}
		if (it->kind != MCP_DUMP_SKIP) {
			*v = handle_reply_line(k, it, busy_attempts);
			return pos;
		}
	}
	key_chunk_failed(k, pending_flush(k, &p), v);
	return pos;
}

/*
 * Why ask before dumping: on memcached <= 1.6.18 a dump request that arrives while another
 * client's dump runs blocks the server worker thread that received it until that dump
 * ends; if the other dump's connection lives on that same thread, the server deadlocks.
 * So the key reader never sends a dump request while stats says the crawler is running.
 */
static bool crawler_idle(struct kr *k, unsigned *busy_attempts)
{
	struct engine *c = k->c;
	char buf[16 * 1024];
	for (;;) {
		ssize_t n =
		    net_exchange(c->keys_fd, "stats\r\n", buf, sizeof(buf), mcp_stats_is_complete);
		const char *v;
		size_t vl;
		if (n < 0) {
			engine_fail(c, -ECONNRESET, "stats from %s failed: %s", c->o.source.text,
				    strerror((int)-n));
			return false;
		}
		if (!mcp_stats_find(buf, (size_t)n, "lru_crawler_running", &v, &vl) || vl != 1 ||
		    v[0] != '1')
			return true;
		struct mcp_dump_item busy = { .kind = MCP_DUMP_BUSY,
					      .msg = "lru_crawler_running 1",
					      .msg_len = 21 };
		if (handle_reply_line(k, &busy, busy_attempts) != LINE_RESTART)
			return false;
	}
}

/* Sends the dump command once the crawler is free; false if the dump failed. */
static bool start_dump(struct kr *k, unsigned *busy_attempts)
{
	if (!crawler_idle(k, busy_attempts))
		return false;
	int ret = net_send_all(k->c->keys_fd, dump_command(k), strlen(dump_command(k)));
	if (ret < 0) {
		engine_fail(k->c, -ECONNRESET, "cannot send the key dump request to %s: %s",
			    k->c->o.source.text, strerror(-ret));
		return false;
	}
	return true;
}

static int drain(struct kr *k)
{
	struct engine *c = k->c;
	char *buf = (char *)c->kr_recv;
	size_t len = 0;
	unsigned busy_attempts = 0;
	int ret = start_dump(k, &busy_attempts) ? 0 : -EIO;
	while (ret == 0 && !engine_failed(c)) {
		ssize_t n = net_recv_gather(c->keys_fd, buf + len, c->kr_recv_bytes - len,
					    MCW_KEYS_GATHER_BYTES, MCW_KEYS_GATHER_US);
		if (n <= 0) {
			engine_fail(c, -ECONNRESET,
				    "key dump from %s stopped before END: %s (the key list is "
				    "incomplete; run again)",
				    c->o.source.text,
				    n == 0 ? "the server closed the connection"
					   : strerror((int)-n));
			return -EPIPE;
		}
		len += (size_t)n;
		enum line_verdict v;
		size_t used = parse_lines(k, buf, len, &v, &busy_attempts);
		memmove(buf, buf + used, len - used);
		len -= used;
		if (v == LINE_END)
			return 0;
		if (v == LINE_FAIL)
			return -EIO;
		if (v == LINE_RESTART) {
			len = 0;
			ret = start_dump(k, &busy_attempts) ? 0 : -EIO;
		} else if (len == c->kr_recv_bytes) {
			engine_fail(c, -EPROTO, "key dump line from %s longer than %zu bytes",
				    c->o.source.text, c->kr_recv_bytes);
			return -EIO;
		}
		ret = ret == 0 ? reap(k, false) : ret;
	}
	if (ret < 0 && !engine_failed(c))
		key_chunk_write_failed(c, ret); /* the reader's other failures are reported */
	return -EIO;
}

void *keyreader_main(void *arg)
{
	struct kr k = { .c = arg, .using_mgdump = ((struct engine *)arg)->o.try_mgdump };
	struct engine *c = k.c;
	k.next_seq = c->chunks_ready; /* a resumed dump numbers on after its finished chunks */
	pthread_setname_np(pthread_self(), "mcw-keys");
	struct ur_ring_opts ro = { .sq_entries = 8, .iowq_workers_max = 1 };
	int ret = ur_ring_create(&ro, &k.ring);
	if (ret < 0) {
		engine_fail(c, -MCW_EBUG, "cannot create an io_uring for the key reader: %s",
			    strerror(-ret));
		goto out;
	}
	struct iovec iov[2] = { { c->kr_stage[0], MCW_KEYCHUNK_BYTES },
				{ c->kr_stage[1], MCW_KEYCHUNK_BYTES } };
	ret = ur_buffers_register(k.ring, iov, 2);
	if (ret < 0) {
		engine_fail(c, -MCW_EBUG, "cannot register key reader buffers: %s", strerror(-ret));
		goto out;
	}
	for (unsigned g = 0; g < c->kf.ngroups; g++) {
		size_t cap;
		uint8_t *area = builder_area(&k, g, &cap);
		keychunk_builder_reset(&k.b[g], area, cap);
	}
	if (drain(&k) == 0) {
		ret = 0;
		for (unsigned g = 0; g < c->kf.ngroups && ret == 0; g++)
			ret = flush_chunk(&k, g);
		while (ret == 0 && (k.slots[0].inflight || k.slots[1].inflight))
			ret = reap(&k, true);
		if (ret < 0) {
			key_chunk_write_failed(c, ret);
		} else if (c->ckpt_on && !engine_failed(c)) {
			ret = checkpoint_keys_done(&c->ckpt, c->chunks_ready);
			if (ret < 0)
				engine_fail(c, ret, "cannot write the checkpoint in %s: %s",
					    c->spool_path, strerror(-ret));
		}
	}
	c->key_dump_cmd = k.using_mgdump
			      ? (c->o.crawl == KEYS_ALL ? "mgdump all" : "mgdump hash")
			      : (c->o.crawl == KEYS_ALL ? "metadump all" : "metadump hash");
out:
	/* closing the socket ends a dump the server may still be sending */
	close(c->keys_fd);
	c->keys_fd = -1;
	for (unsigned i = 0; i < 2; i++) {
		if (k.slots[i].inflight)
			(void)reap(&k, true);
	}
	ur_ring_destroy(k.ring);
	pthread_mutex_lock(&c->run.mu);
	c->keys_done = true;
	c->keys_done_mono_ns = mono_ns();
	pthread_mutex_unlock(&c->run.mu);
	run_thread_done(&c->run);
	return NULL;
}
