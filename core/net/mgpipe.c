/*
 * mgpipe.c: pipelined `mg` over one connection (see mgpipe.h).
 *
 * Keys go out as batches of `mg <key> k f t v u [q] O<index>` closed by `mn`, up to
 * MCW_BATCHES_INFLIGHT batches in flight and one send in flight at a time. Replies are
 * parsed in place in the receive area.
 *
 * Invariants:
 *  1. The receive area is only compacted while no recv is in flight (the kernel writes
 *     at a fixed address) and while the owner says consumed bytes may be reused.
 *  2. Replies arrive in request order: a VA (or EN) names a key of the oldest unanswered
 *     batch, later than the previous one (exactly the next one without q). Anything else
 *     means the stream is out of sync and the pipe fails.
 *  3. Nothing about a reply is recorded before the owner consumes it.
 *  4. TLS: the ring sends and receives ciphertext only (tls.cout, tls.cin); the receive
 *     area gets plaintext from open_plain alone, so invariant 1's "no recv in flight"
 *     holds for it at all times. Ciphertext that does not fit yet stays in tls.cin (or
 *     in the session) and is opened when mgpipe_next runs out of replies.
 */
#include <errno.h>
#include <string.h>

#include "base.h"
#include "mgpipe.h"
#include "net.h"

#define UD_RECV 1ull
#define UD_SEND 2ull
/* user_data (uring.h's scheme): owner UR_OWNER_MGPIPE, the pipe's id, and in the payload
 * the kind (receive or send) and the batch slot */
#define UD(kind, id, slot) ur_ud(UR_OWNER_MGPIPE, (id), (kind) << 48 | (slot))
#define UD_KIND(ud)	   (ur_ud_payload(ud) >> 48)
#define UD_ID(ud)	   ur_ud_id(ud)

void mgpipe_init(struct mgpipe *p, const struct mgpipe_opts *o)
{
	ASSERT(o->id < 16);
	ASSERT(o->send_bytes >= MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES);
	ASSERT(o->recv_bytes >= o->value_max + MCW_REPLY_OVERHEAD_MAX);
	memset(p, 0, sizeof(*p));
	p->o = *o;
	p->rbuf = o->recv_area;
	p->rcap = o->recv_bytes;
	rate_bucket_init(&p->bucket, o->limits);
	struct tls_conn *t = tls_conn_of(o->fd);
	if (t != NULL) { /* invariant 4: the ciphertext areas end the receive area */
		ASSERT(o->recv_bytes >= MCW_TLS_PIPE_BYTES + o->value_max + MCW_REPLY_OVERHEAD_MAX);
		p->rcap -= MCW_TLS_PIPE_BYTES;
		tls_pipe_attach(&p->tls, t, p->rbuf + p->rcap, MCW_TLS_PIPE_BYTES);
		p->secure = true;
	}
}

void mgpipe_job(struct mgpipe *p, const struct keychunk_view *kv, const uint32_t *key_off,
		uint32_t nkeys)
{
	ASSERT(mgpipe_done(p) && !p->send_busy);
	p->kv = *kv;
	p->key_off = key_off;
	p->nkeys = nkeys;
	p->next_key = 0;
	p->b_alloc = p->b_sent = p->b_answered = 0;
	p->expect_key = 0;
	memset(p->b, 0, sizeof(p->b));
}

const uint8_t *mgpipe_key(const struct mgpipe *p, uint32_t index, uint16_t *len, uint8_t *flags)
{
	const uint8_t *k = p->kv.payload + p->key_off[index];
	memcpy(len, k, 2);
	*flags = k[2];
	return k + MCW_KEY_RECORD_HEADER;
}

bool mgpipe_done(const struct mgpipe *p)
{
	return p->next_key == p->nkeys && p->b_answered == p->b_alloc;
}

bool mgpipe_awaiting(const struct mgpipe *p)
{
	return p->b_answered < p->b_sent;
}

/* ---- sending ----------------------------------------------------------------------- */

static void fill_batches(struct mgpipe *p)
{
	const char *flags = p->o.quiet ? "k f t v u q" : "k f t v u";
	while (p->next_key < p->nkeys && p->b_alloc - p->b_answered < MCW_BATCHES_INFLIGHT) {
		unsigned slot = (unsigned)(p->b_alloc % MCW_BATCHES_INFLIGHT);
		struct mgpipe_batch *b = &p->b[slot];
		if (p->b_alloc >= MCW_BATCHES_INFLIGHT && !b->sent)
			return; /* answered, but its send completion is not reaped yet */
		char *out = (char *)p->o.send_area + slot * MCW_BATCH_REQ_BYTES;
		size_t len = 0;
		b->first_key = p->next_key;
		b->nkeys = b->values = 0;
		unsigned batch_keys = rate_bucket_batch(&p->bucket, MCW_BATCH_KEYS);
		while (p->next_key < p->nkeys && b->nkeys < batch_keys) {
			uint16_t klen;
			uint8_t kflags;
			const uint8_t *key = mgpipe_key(p, p->next_key, &klen, &kflags);
			size_t n = mcp_mg_encode(out + len, MCW_BATCH_REQ_BYTES - len - 4, key,
						 klen, kflags & KEYCHUNK_F_B64, flags, p->next_key);
			ASSERT(n > 0); /* the key reader only spools sendable keys */
			len += n;
			p->next_key++;
			b->nkeys++;
		}
		memcpy(out + len, "mn\r\n", 4);
		b->req_len = len + 4;
		b->sent = b->answered = false;
		p->b_alloc++;
	}
}

static void kick_send(struct mgpipe *p)
{
	p->wake_ns = 0;
	if (p->send_busy || p->b_sent == p->b_alloc)
		return;
	unsigned slot = (unsigned)(p->b_sent % MCW_BATCHES_INFLIGHT);
	int64_t now = mono_ns();
	int64_t wait = rate_bucket_take(&p->bucket, p->b[slot].nkeys, 0, now);
	if (wait > 0) {
		p->wake_ns = now + wait;
		return;
	}
	const uint8_t *out = p->o.send_area + slot * MCW_BATCH_REQ_BYTES;
	size_t out_len = p->b[slot].req_len;
	if (p->secure) { /* invariant 4: seal, then the ring sends ciphertext */
		if (tls_pipe_seal(&p->tls, out, out_len) < 0) {
			mcw_fault_set(&p->fault, -EPROTO, "%s", p->tls.error);
			return;
		}
		out = p->tls.cout;
		out_len = p->tls.out_sent = p->tls.out_len;
	}
	int ret = ur_prep_send(p->o.ring, p->o.fd, out, out_len, UD(UD_SEND, p->o.id, slot));
	if (ret < 0) {
		mcw_fault_set(&p->fault, -MCW_EBUG, "cannot queue a send: %s", strerror(-ret));
		return;
	}
	p->send_busy = true;
	p->b_sent++;
}

/* ---- receiving ---------------------------------------------------------------------- */

/* Invariant 1: the caller knows no recv writes into the receive area. */
static void compact(struct mgpipe *p)
{
	bool reusable = p->o.recv_reusable == NULL || p->o.recv_reusable(p->o.arg);
	if (p->rd == p->wr && reusable) {
		p->rd = p->wr = 0;
	} else if (p->rd > 0 && (p->rcap - p->wr < p->rcap / 4 || p->rcap - p->rd < p->need) &&
		   reusable) {
		memmove(p->rbuf, p->rbuf + p->rd, p->wr - p->rd);
		p->wr -= p->rd;
		p->rd = 0;
	}
}

/* TLS: opens received ciphertext into the receive area. true if plaintext came. */
static bool open_plain(struct mgpipe *p)
{
	if (p->fault.err)
		return false;
	compact(p);
	ssize_t n = tls_pipe_open(&p->tls, p->rbuf + p->wr, p->rcap - p->wr);
	if (n == -EPIPE)
		mcw_fault_set(&p->fault, -ECONNRESET,
			      "connection to %s lost: it ended the TLS session", p->o.what);
	else if (n < 0)
		mcw_fault_set(&p->fault, -EPROTO, "%s (from %s)", p->tls.error, p->o.what);
	if (n <= 0)
		return false;
	p->wr += (size_t)n;
	return true;
}

static void post_recv(struct mgpipe *p)
{
	if (p->recv_posted || p->fault.err)
		return;
	size_t len;
	if (!p->secure)
		compact(p);
	uint8_t *at =
	    tls_ring_recv_area(p->secure ? &p->tls : NULL, p->rbuf + p->wr, p->rcap - p->wr, &len);
	if (at == NULL)
		return; /* full: the owner must consume or release first (TLS: open first) */
	int ret = ur_prep_recv(p->o.ring, p->o.fd, at, len, UD(UD_RECV, p->o.id, 0));
	if (ret < 0) {
		mcw_fault_set(&p->fault, -MCW_EBUG, "cannot queue a receive: %s", strerror(-ret));
		return;
	}
	p->recv_posted = true;
}

void mgpipe_kick(struct mgpipe *p)
{
	fill_batches(p);
	kick_send(p);
	post_recv(p);
}

bool mgpipe_owns(const struct mgpipe *p, uint64_t ud)
{
	return ur_ud_owner(ud) == UR_OWNER_MGPIPE && UD_ID(ud) == p->o.id;
}

void mgpipe_on_cqe(struct mgpipe *p, const struct ur_cqe *cqe)
{
	if (UD_KIND(cqe->user_data) == UD_RECV) {
		p->recv_posted = false;
		if ((cqe->res == -EAGAIN || cqe->res == -EINTR) &&
		    ++p->recv_retries <= MCW_RECV_RETRIES_MAX) {
			post_recv(p); /* nothing arrived: ask again */
			return;
		}
		if (cqe->res <= 0) {
			mcw_fault_set(&p->fault, -ECONNRESET, "connection to %s lost: %s",
				      p->o.what,
				      cqe->res == 0 ? "closed by the server" : strerror(-cqe->res));
			return;
		}
		p->recv_retries = 0;
		p->recv_ms = wall_ns() / 1000000;
		if (!p->secure) {
			p->wr += (size_t)cqe->res;
			return;
		}
		tls_pipe_received(&p->tls, (size_t)cqe->res);
		open_plain(p);
		return;
	}
	unsigned slot = (unsigned)(cqe->user_data & 0xff);
	ASSERT(slot < MCW_BATCHES_INFLIGHT && p->send_busy);
	p->send_busy = false;
	size_t want = p->secure ? p->tls.out_sent : p->b[slot].req_len;
	if (p->secure && cqe->res > 0)
		tls_pipe_sent(&p->tls, (size_t)cqe->res);
	if (cqe->res < 0 || (size_t)cqe->res != want) {
		mcw_fault_set(&p->fault, -ECONNRESET, "sending to %s failed: %s", p->o.what,
			      cqe->res < 0 ? strerror(-cqe->res) : "short send");
		return;
	}
	p->b[slot].sent = true;
}

/* ---- replies ------------------------------------------------------------------------ */

static struct mgpipe_batch *oldest(struct mgpipe *p)
{
	return &p->b[p->b_answered % MCW_BATCHES_INFLIGHT];
}

static void batch_end(struct mgpipe *p)
{
	struct mgpipe_batch *b = oldest(p);
	b->answered = true;
	p->b_answered++;
	p->expect_key = p->b_answered < p->b_alloc ? oldest(p)->first_key : p->next_key;
	p->fetched += b->nkeys;
	if (p->o.quiet)
		p->misses += b->nkeys - b->values;
}

/* Checks a VA/EN against invariant 2 and the key it names. */
static bool reply_in_order(struct mgpipe *p, const struct mcp_meta_reply *rep, uint32_t *index)
{
	struct mgpipe_batch *b = oldest(p);
	bool ok = p->b_answered < p->b_sent && rep->has_opaque && rep->opaque >= p->expect_key &&
		  rep->opaque < (uint64_t)b->first_key + b->nkeys &&
		  (p->o.quiet || rep->opaque == p->expect_key);
	if (ok && rep->code == MCP_RC_VA)
		ok = rep->has_client_flags && rep->has_ttl;
	if (!ok) {
		mcw_fault_set(
		    &p->fault, -EPROTO,
		    "reply from %s out of order or without the flags asked for (the connection is "
		    "out of sync): reply for key #%lld, expected #%u to #%u, batches sent %llu "
		    "answered %llu: \"%.60s\"",
		    p->o.what, rep->has_opaque ? (long long)rep->opaque : -1LL, p->expect_key,
		    b->first_key + b->nkeys - 1, (unsigned long long)p->b_sent,
		    (unsigned long long)p->b_answered, (const char *)p->rbuf + p->rd);
		return false;
	}
	uint16_t klen;
	uint8_t kflags;
	const uint8_t *key = mgpipe_key(p, (uint32_t)rep->opaque, &klen, &kflags);
	bool same = !rep->has_key;
	if (rep->has_key && !rep->key_b64) {
		same = rep->key_len == klen && memcmp(rep->key, key, klen) == 0;
	} else if (rep->has_key) {
		uint8_t raw[MCP_KEY_MAX];
		long n = mcp_b64_decode(raw, sizeof(raw), rep->key, rep->key_len);
		same = n == (long)klen && memcmp(raw, key, klen) == 0;
	}
	if (!same) {
		mcw_fault_set(&p->fault, -EPROTO,
			      "a reply from %s names another key than the one asked for",
			      p->o.what);
		return false;
	}
	*index = (uint32_t)rep->opaque;
	return true;
}

/* The next reply among the bytes already in the receive area. */
static enum mgpipe_next next_reply(struct mgpipe *p, struct mcp_meta_reply *rep, uint32_t *index)
{
	while (p->fault.err == 0 && p->rd < p->wr) {
		const char *at = (const char *)p->rbuf + p->rd;
		enum mcp_status st = mcp_meta_reply_parse(at, p->wr - p->rd, p->o.value_max, rep);
		if (st == MCP_NEED_MORE) {
			p->need = rep->total_len > 0 ? rep->total_len : MCP_META_LINE_MAX;
			ASSERT(p->need <= p->rcap); /* the plan sized rcap for the largest reply */
			return MGPIPE_NONE;
		}
		p->need = 0;
		if (st != MCP_OK) {
			mcw_fault_set(&p->fault, -EPROTO, "malformed reply from %s (%s): \"%.60s\"",
				      p->o.what, mcp_status_name(st), at);
			break;
		}
		switch (rep->code) {
		case MCP_RC_VA:
			return reply_in_order(p, rep, index) ? MGPIPE_VALUE : MGPIPE_FAILED;
		case MCP_RC_EN:
			if (!p->o.quiet)
				return reply_in_order(p, rep, index) ? MGPIPE_MISS : MGPIPE_FAILED;
			break; /* a miss q did not hide: still a miss, counted at MN */
		case MCP_RC_MN:
			if (p->b_answered == p->b_sent) {
				mcw_fault_set(&p->fault, -EPROTO,
					      "MN from %s without a batch in flight", p->o.what);
				return MGPIPE_FAILED;
			}
			batch_end(p);
			break;
		case MCP_RC_CLIENT_ERROR:
		case MCP_RC_SERVER_ERROR:
			if (p->server_errors++ < MCW_SERVER_ERRORS_LOGGED_MAX)
				log_warn("%s answered an mg with: %.*s", p->o.what,
					 (int)rep->msg_len, rep->msg);
			break;
		default:
			mcw_fault_set(&p->fault, -EPROTO,
				      "unexpected reply to mg from %s: \"%.40s\"", p->o.what, at);
			return MGPIPE_FAILED;
		}
		p->rd += rep->total_len;
	}
	return p->fault.err ? MGPIPE_FAILED : MGPIPE_NONE;
}

enum mgpipe_next mgpipe_next(struct mgpipe *p, struct mcp_meta_reply *rep, uint32_t *index)
{
	for (;;) {
		enum mgpipe_next n = next_reply(p, rep, index);
		if (n != MGPIPE_NONE || !p->secure || !open_plain(p))
			return n;
	}
}

void mgpipe_consume(struct mgpipe *p, const struct mcp_meta_reply *rep)
{
	ASSERT(rep->code == MCP_RC_VA || rep->code == MCP_RC_EN);
	ASSERT(p->rd + rep->total_len <= p->wr);
	p->expect_key = (uint32_t)rep->opaque + 1;
	if (rep->code == MCP_RC_VA) {
		oldest(p)->values++;
		p->values++;
		rate_bucket_charge(&p->bucket, rep->value_len);
	} else {
		p->misses++;
	}
	p->rd += rep->total_len;
}

int64_t mgpipe_wake_ns(const struct mgpipe *p)
{
	return p->wake_ns;
}
