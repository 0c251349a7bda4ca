/*
 * mspipe.c: pipelined `ms` over one connection (see mspipe.h).
 *
 *   batch: open --full/mspipe_close--> closed --encode+sendmsg--> sent --MN--> free
 *   connection: up --loss--> lost --stale completions reaped, reconnect--> up (resend)
 *
 * Invariants:
 *  1. Headers are encoded when a batch is (re)sent, so TTLs are computed at send time;
 *     after a reconnect every unanswered batch is re-encoded and resent.
 *  2. Completions of a dead connection are waited for before its batches are resent, so
 *     the kernel no longer reads the iovecs being rewritten.
 *  3. Replies arrive in request order: an NS names a request of the oldest unanswered
 *     batch and MN ends it. Anything else means the stream is out of sync: the pipe fails.
 *  4. Bytes go to the ring only in send_iov and land only in on_recv_bytes (one place
 *     each, for the encryption step).
 *  5. TLS: every record ends at an item's end, or inside a value larger than a record
 *     (a burst, what one send carries, ends there only when the value is larger than the
 *     stage, and the next burst follows without waiting for any answer): memcached
 *     1.6.18 stalls on a record that ends inside a value (docs/architecture.md).
 *  6. TLS: the ring sends only sealed bytes (tls.cout) and receives only into tls.cin; the
 *     plaintext receive area is filled by open alone, so it may be compacted at any time.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "capacity.h"
#include "mspipe.h"
#include "net.h"

static_assert(MCW_TLS_SEAL_BYTES(MSPIPE_TLS_STAGE_BYTES) <=
		  MCW_TLS_PIPE_BYTES - MCW_TLS_RECV_CIPHER_BYTES,
	      "a sealed burst fits the session's ciphertext area");

static const char crlf[] = "\r\n", mn[] = "mn\r\n";

/* user_data (uring.h's scheme): owner UR_OWNER_MSPIPE, the pipe's id, and in the payload
 * the kind (receive or send) and the connection's generation */
#define UD_RECV		  1ull
#define UD_SEND		  2ull
#define UD(kind, id, gen) ur_ud(UR_OWNER_MSPIPE, (id), (kind) << 48 | (uint64_t)((gen)&0xffff))
#define UD_KIND(ud)	  (ur_ud_payload(ud) >> 48)
#define UD_ID(ud)	  ur_ud_id(ud)
#define UD_GEN(ud)	  ((uint32_t)(ur_ud_payload(ud) & 0xffff))

int64_t mspipe_exptime(int64_t expires_at_ms, int64_t now, int64_t min_ttl_s, int64_t dest_now_s)
{
	if (expires_at_ms == 0)
		return 0;
	int64_t left_s = (expires_at_ms - now) / 1000; /* rounds down: never extends */
	if (expires_at_ms - now < 0 || left_s < MAX(min_ttl_s, 1))
		return -1;
	if (left_s <= MSPIPE_TTL_REL_MAX_S)
		return left_s;
	return dest_now_s + left_s;
}

static size_t batch_bytes(unsigned records, unsigned pieces, size_t copy_bytes)
{
	return records * sizeof(struct mspipe_rec) + pieces * sizeof(struct iovec) +
	       (2 * (size_t)records + pieces + 1) * sizeof(struct iovec) +
	       (size_t)records * MCP_REQ_MAX + ROUND_UP(copy_bytes, 16);
}

size_t mspipe_area_bytes(unsigned batches, unsigned batch_records, unsigned batch_pieces,
			 size_t copy_bytes)
{
	return batches * batch_bytes(batch_records, batch_pieces, copy_bytes);
}

void mspipe_init(struct mspipe *p, const struct mspipe_opts *o)
{
	ASSERT(o->id < 16 && o->batches >= 2 && o->batches <= MSPIPE_BATCHES_MAX);
	ASSERT(o->batch_records > 0 && o->batch_pieces >= o->batch_records);
	ASSERT(o->area_bytes >=
	       mspipe_area_bytes(o->batches, o->batch_records, o->batch_pieces, o->copy_bytes));
	ASSERT(o->recv_bytes >= MSPIPE_RECV_MIN);
	memset(p, 0, sizeof(*p));
	p->o = *o;
	p->rcap = o->recv_bytes;
	struct tls_conn *t = tls_conn_of(o->fd);
	if (t != NULL) { /* the stage and the ciphertext areas end the receive area */
		ASSERT(o->recv_bytes >= MSPIPE_RECV_MIN + MSPIPE_TLS_BYTES);
		p->rcap -= MSPIPE_TLS_BYTES;
		p->stage = o->recv_area + p->rcap;
		tls_pipe_attach(&p->tls, t, p->stage + MSPIPE_TLS_STAGE_BYTES, MCW_TLS_PIPE_BYTES);
		p->secure = true;
	}
	uint8_t *m = o->area; /* largest alignment first: iovecs, records, copies, headers */
	for (unsigned i = 0; i < o->batches; i++) {
		struct mspipe_batch *b = &p->b[i];
		b->pieces = (struct iovec *)m;
		m += o->batch_pieces * sizeof(struct iovec);
		b->iov = (struct iovec *)m;
		m += (2 * (size_t)o->batch_records + o->batch_pieces + 1) * sizeof(struct iovec);
		b->recs = (struct mspipe_rec *)m;
		m += o->batch_records * sizeof(struct mspipe_rec);
		b->copy = m;
		m += ROUND_UP(o->copy_bytes, 16);
		b->hdr = (char *)m;
		m += (size_t)o->batch_records * MCP_REQ_MAX;
	}
	ASSERT((size_t)(m - o->area) <= o->area_bytes);
	rate_bucket_init(&p->bucket, o->limits);
	p->last_io_ns = mono_ns();
}

/* ---- batches ---------------------------------------------------------------------- */

static struct mspipe_batch *batch_at(struct mspipe *p, uint64_t n)
{
	return &p->b[n % p->o.batches];
}

static bool batch_open(struct mspipe *p)
{
	if (p->has_open)
		return true;
	/* a slot is free once answered and its last send is reaped (an MN can come first) */
	if (p->b_alloc - MIN(p->b_answered, p->b_sent) >= p->o.batches)
		return false;
	struct mspipe_batch *b = batch_at(p, p->b_alloc++);
	b->nrec = b->npieces = b->niov = b->iov_done = 0;
	b->copy_used = 0;
	b->encoded = b->charged = false;
	b->present = 0;
	b->value_bytes = 0;
	p->has_open = true;
	return true;
}

void mspipe_close(struct mspipe *p)
{
	if (p->has_open && batch_at(p, p->b_alloc - 1)->nrec == 0)
		p->b_alloc--; /* nothing in it: give the slot back */
	p->has_open = false;
}

static bool has_room(struct mspipe *p, const struct mspipe_batch *b, const struct mspipe_item *it)
{
	uint32_t pieces = p->o.copy_bytes ? 1 : it->npieces;
	return b->nrec < rate_bucket_batch(&p->bucket, p->o.batch_records) &&
	       b->npieces + pieces <= p->o.batch_pieces &&
	       (p->o.copy_bytes == 0 || b->copy_used + it->value_len <= p->o.copy_bytes);
}

/* The value's pieces into the batch: lent, or copied into one piece. */
static void put_pieces(struct mspipe *p, struct mspipe_batch *b, const struct mspipe_item *it)
{
	if (p->o.copy_bytes == 0) {
		for (uint32_t i = 0; i < it->npieces; i++) /* mostly one: no memcpy call */
			b->pieces[b->npieces + i] = it->pieces[i];
		b->npieces += it->npieces;
		return;
	}
	uint8_t *to = b->copy + b->copy_used;
	for (uint32_t i = 0; i < it->npieces; i++) {
		memcpy(b->copy + b->copy_used, it->pieces[i].iov_base, it->pieces[i].iov_len);
		b->copy_used += it->pieces[i].iov_len;
	}
	b->pieces[b->npieces++] = (struct iovec){ to, it->value_len };
}

int64_t mspipe_add(struct mspipe *p, const struct mspipe_item *it)
{
	ASSERT(p->o.copy_bytes == 0 || it->value_len <= p->o.copy_bytes);
	ASSERT(it->npieces <= p->o.batch_pieces);
	for (;;) {
		if (!batch_open(p))
			return -EAGAIN;
		if (has_room(p, batch_at(p, p->b_alloc - 1), it))
			break;
		mspipe_close(p);
	}
	struct mspipe_batch *b = batch_at(p, p->b_alloc - 1);
	b->recs[b->nrec++] = (struct mspipe_rec){
		.key = it->key,
		.expires_at_ms = it->expires_at_ms,
		.client_flags = it->client_flags,
		.value_len = it->value_len,
		.piece0 = b->npieces,
		.npieces = p->o.copy_bytes ? 1 : it->npieces,
		.key_len = it->key_len,
		.key_b64 = it->key_b64 ||
			   (!it->key_b64_decided && mcp_key_needs_b64(it->key, it->key_len)),
	};
	put_pieces(p, b, it);
	b->value_bytes += it->value_len;
	return (int64_t)(p->b_alloc - 1);
}

/* Invariant 1: headers with the TTLs of now; expired items are left out and counted. */
static void encode(struct mspipe *p, struct mspipe_batch *b)
{
	int64_t dest_now = p->o.dest_now_s(p->o.arg);
	int64_t now = wall_ns() / 1000000;
	size_t hdr_used = 0;
	b->niov = 0;
	b->encoded_records = b->expired = 0;
	b->opaque_base = p->opaque_next;
	p->opaque_next += b->nrec;
	for (uint32_t i = 0; i < b->nrec; i++) {
		const struct mspipe_rec *r = &b->recs[i];
		int64_t t = mspipe_exptime(r->expires_at_ms, now, p->o.min_ttl_s, dest_now);
		if (t < 0) {
			b->expired++; /* counted once, when the batch is answered */
			continue;
		}
		size_t n =
		    mcp_ms_encode(b->hdr + hdr_used, MCP_REQ_MAX, r->key, r->key_len, r->key_b64,
				  r->value_len, t, r->client_flags, p->o.mode, b->opaque_base + i);
		ASSERT(n > 0); /* lengths were checked when the item was read */
		b->iov[b->niov++] = (struct iovec){ b->hdr + hdr_used, n };
		hdr_used += n;
		for (uint32_t k = 0; k < r->npieces; k++)
			b->iov[b->niov++] = b->pieces[r->piece0 + k];
		b->iov[b->niov++] = (struct iovec){ (void *)crlf, 2 };
		b->encoded_records++;
	}
	b->iov[b->niov++] = (struct iovec){ (void *)mn, 4 };
	b->encoded = true;
	b->iov_done = 0;
	b->iov_off = 0;
}

/* ---- the connection ------------------------------------------------------------------ */

/* Invariant 4: the one place bytes go to the ring. */
static int send_iov(struct mspipe *p, struct iovec *iov, uint32_t n)
{
	memset(&p->msg, 0, sizeof(p->msg));
	p->msg.msg_iov = iov;
	p->msg.msg_iovlen = n;
	return ur_prep_sendmsg(p->o.ring, p->o.fd, &p->msg, UD(UD_SEND, p->o.id, p->gen));
}

/* Invariant 5: where the next burst of b ends (iov_chunk iovecs on, chunk_end_off into
 * the last) and its plaintext bytes: whole items up to the stage, or as much of one item
 * as fits when it alone is larger. */
static size_t burst_end(struct mspipe_batch *b)
{
	size_t len = 0, off = b->iov_off, at_item_end = 0;
	uint32_t items_iov = 0;
	for (uint32_t i = b->iov_done; i < b->niov; i++, off = 0) {
		size_t n = b->iov[i].iov_len - off;
		if (len + n > MSPIPE_TLS_STAGE_BYTES) {
			if (at_item_end > 0)
				break;
			b->iov_chunk = i - b->iov_done; /* inside one large item */
			b->chunk_end_off = off + (MSPIPE_TLS_STAGE_BYTES - len);
			return MSPIPE_TLS_STAGE_BYTES;
		}
		len += n;
		const void *base = b->iov[i].iov_base;
		if (base == crlf || base == mn) { /* an item (or the batch) ends here */
			at_item_end = len;
			items_iov = i + 1 - b->iov_done;
		}
	}
	b->iov_chunk = items_iov;
	b->chunk_end_off = 0;
	return at_item_end;
}

/* Seals stage [*from, to) as records of their own; 0 or -EPROTO (the pipe failed). */
static int seal_records(struct mspipe *p, size_t *from, size_t to)
{
	if (to == *from)
		return 0;
	if (tls_pipe_seal(&p->tls, p->stage + *from, to - *from) < 0) {
		mcw_fault_set(&p->fault, -EPROTO, "%s (to %s)", p->tls.error, p->o.what);
		return -EPROTO;
	}
	*from = to;
	return 0;
}

/* TLS: the next burst of b copied into the stage and sealed; the ring sends tls.cout.
 * Invariant 5 for every record, not just the burst's last: memcached reads a record
 * into its 16 KiB read buffer (or a value straight into the item) and may yield to
 * other connections between requests, and plaintext left in its OpenSSL buffer then waits
 * for socket bytes that may never come. So whole items share a record up to
 * MCW_TLS_RECORD_BYTES; a larger item, or the end of one that began in an earlier burst,
 * is sealed alone (OpenSSL cuts it in records; the last ends with the item). */
static int seal_burst(struct mspipe *p, struct mspipe_batch *b)
{
	size_t len = burst_end(b), used = 0, off = b->iov_off, rec = 0, item = 0;
	bool continued =
	    b->iov_off > 0 || (b->iov_done > 0 && b->iov[b->iov_done - 1].iov_base != crlf);
	uint32_t last = b->iov_done + b->iov_chunk; /* partly when chunk_end_off > 0 */
	ASSERT(p->tls.out_len == 0);		    /* one send at a time, and it took all */
	for (uint32_t i = b->iov_done; used < len; i++, off = 0) {
		size_t n = i == last ? b->chunk_end_off - off : b->iov[i].iov_len - off;
		memcpy(p->stage + used, (const uint8_t *)b->iov[i].iov_base + off, n);
		used += n;
		if (b->iov[i].iov_base != crlf && b->iov[i].iov_base != mn)
			continue;
		/* an item ends at used: it began at item, the open record at rec */
		if (used - rec > MCW_TLS_RECORD_BYTES && seal_records(p, &rec, item) < 0)
			return -EPROTO;
		if ((continued || used - rec > MCW_TLS_RECORD_BYTES) &&
		    seal_records(p, &rec, used) < 0)
			return -EPROTO;
		item = used;
		continued = false;
	}
	ASSERT(used == len);
	if (seal_records(p, &rec, used) < 0)
		return -EPROTO;
	b->chunk_bytes = p->tls.out_sent = p->tls.out_len;
	return ur_prep_send(p->o.ring, p->o.fd, p->tls.cout, p->tls.out_len,
			    UD(UD_SEND, p->o.id, p->gen));
}

static void kick_send(struct mspipe *p)
{
	p->wake_ns = 0;
	if (p->send_busy || p->lost || p->b_sent == p->b_alloc - p->has_open)
		return;
	struct mspipe_batch *b = batch_at(p, p->b_sent);
	if (!b->charged) {
		int64_t now = mono_ns();
		int64_t wait = rate_bucket_take(&p->bucket, b->nrec, b->value_bytes, now);
		if (wait > 0) {
			p->wake_ns = now + wait;
			return;
		}
		b->charged = true;
	}
	if (!b->encoded)
		encode(p, b);
	int ret;
	if (p->secure) {
		ret = seal_burst(p, b);
		if (p->fault.err)
			return;
	} else {
		b->iov_chunk = MIN(b->niov - b->iov_done, (uint32_t)MSPIPE_SENDMSG_IOV);
		b->chunk_bytes = 0;
		for (uint32_t i = 0; i < b->iov_chunk; i++)
			b->chunk_bytes += b->iov[b->iov_done + i].iov_len;
		ret = send_iov(p, &b->iov[b->iov_done], b->iov_chunk);
	}
	if (ret < 0) {
		mcw_fault_set(&p->fault, -MCW_EBUG, "cannot queue a send: %s", strerror(-ret));
		return;
	}
	p->send_busy = true;
}

/* Room at the end of the plaintext receive area: only while the kernel does not write
 * there (no receive posted, or TLS: invariant 6). */
static void compact(struct mspipe *p)
{
	if (p->rd == p->wr) {
		p->rd = p->wr = 0;
	} else if (p->rd > 0 && p->rcap - p->wr < MCP_META_LINE_MAX) {
		memmove(p->o.recv_area, p->o.recv_area + p->rd, p->wr - p->rd);
		p->wr -= p->rd;
		p->rd = 0;
	}
}

static void post_recv(struct mspipe *p)
{
	if (p->recv_posted || p->lost || p->fault.err)
		return;
	size_t len;
	if (!p->secure)
		compact(p);
	uint8_t *at = tls_ring_recv_area(p->secure ? &p->tls : NULL, p->o.recv_area + p->wr,
					 p->rcap - p->wr, &len);
	if (at == NULL)
		return; /* ciphertext waits to be opened (plain: replies are lines, never) */
	int ret = ur_prep_recv(p->o.ring, p->o.fd, at, len, UD(UD_RECV, p->o.id, p->gen));
	if (ret < 0) {
		mcw_fault_set(&p->fault, -MCW_EBUG, "cannot queue a receive: %s", strerror(-ret));
		return;
	}
	p->recv_posted = true;
}

/* The connection broke: close it now; completions still due from it are stale. The
 * reconnect waits for them (invariant 2) in mspipe_kick. */
static void connection_lost(struct mspipe *p, const char *why)
{
	if (p->lost || p->fault.err)
		return;
	if (p->o.reconnect == NULL) {
		mcw_fault_set(&p->fault, -ECONNRESET, "connection to %s lost: %s", p->o.what, why);
		return;
	}
	log_warn("connection to %s lost (%s): reconnecting, then resending %llu unanswered "
		 "batch(es)",
		 p->o.what, why, (unsigned long long)(p->b_alloc - p->b_answered - p->has_open));
	p->n.reconnects++;
	shutdown(p->o.fd, SHUT_RDWR);
	net_close(p->o.fd); /* and its TLS session */
	p->o.fd = -1;
	p->stale += p->recv_posted + p->send_busy;
	p->recv_posted = p->send_busy = false;
	p->gen++;
	p->lost = true;
}

/* Invariants 1 and 2: every unanswered batch is re-encoded and sent again. */
static void reconnect(struct mspipe *p)
{
	p->rd = p->wr = 0;
	p->b_sent = p->b_answered;
	for (uint64_t i = p->b_answered; i < p->b_alloc; i++) {
		struct mspipe_batch *b = batch_at(p, i);
		b->encoded = false;
		b->iov_done = 0;
		b->iov_off = 0;
		b->present = 0;
	}
	int fd = p->o.reconnect(p->o.arg);
	if (fd < 0) {
		mcw_fault_set(&p->fault, -ECONNRESET, "%s stayed unreachable", p->o.what);
		return;
	}
	struct tls_conn *t = tls_conn_of(fd);
	ASSERT((t != NULL) == p->secure); /* the same side's options: the plan holds its areas */
	if (t != NULL) /* a new session (its own handshake): on the same areas (invariant 2) */
		tls_pipe_attach(&p->tls, t, p->stage + MSPIPE_TLS_STAGE_BYTES, MCW_TLS_PIPE_BYTES);
	p->o.fd = fd;
	p->lost = false;
	p->last_io_ns = mono_ns();
}

void mspipe_kick(struct mspipe *p)
{
	if (p->fault.err)
		return;
	if (p->lost && p->stale == 0)
		reconnect(p);
	kick_send(p);
	post_recv(p);
}

void mspipe_check_silence(struct mspipe *p, int64_t now_ns)
{
	if (mspipe_awaiting(p) && now_ns - p->last_io_ns >= (int64_t)p->o.io_timeout_ms * 1000000)
		connection_lost(p, "no reply within --io-timeout");
}

/* ---- replies --------------------------------------------------------------------------- */

static void on_ns(struct mspipe *p, const struct mcp_meta_reply *rep)
{
	struct mspipe_batch *b = batch_at(p, p->b_answered);
	if (!rep->has_opaque || rep->opaque < b->opaque_base ||
	    rep->opaque >= b->opaque_base + b->nrec) {
		mcw_fault_set(&p->fault, -EPROTO,
			      "an NS from %s names no request in flight (out of sync)", p->o.what);
		return;
	}
	b->present++;
}

static void on_batch_end(struct mspipe *p)
{
	struct mspipe_batch *b = batch_at(p, p->b_answered);
	p->n.sent += b->encoded_records;
	p->n.present += b->present;
	p->n.expired += b->expired;
	p->b_answered++;
}

/* A SERVER_ERROR answer (the item is not stored): counted, the first few logged; out of
 * memory stops the run at once when the destination does not evict (-M), else after
 * CAP_OOM_ERRORS_MAX answers of the run (its slabs are stuck). */
static void on_server_error(struct mspipe *p, const struct mcp_meta_reply *rep)
{
	char why[512];
	p->n.server_errors++;
	if (cap_is_out_of_memory(rep->msg, rep->msg_len)) {
		uint64_t n = atomic_fetch_add(p->o.oom_answers, 1) + 1;
		if (cap_oom_stops(p->o.dest_evicts(p->o.arg), p->o.what, n, why, sizeof(why))) {
			mcw_fault_set(&p->fault, -MCW_ETOOSMALL, "%s", why);
			return;
		}
	}
	if (p->errors_logged++ < p->o.errors_logged_max)
		log_warn("%s could not store an item: %.*s", p->o.what, (int)rep->msg_len,
			 rep->msg);
}

/* A batch answers from its first bytes on, even while the rest is being sent. */
static bool reply_due(struct mspipe *p)
{
	bool sending =
	    p->send_busy || (p->b_sent < p->b_alloc && (batch_at(p, p->b_sent)->iov_done > 0 ||
							batch_at(p, p->b_sent)->iov_off > 0));
	return p->b_answered < p->b_sent + (sending ? 1 : 0);
}

static void parse_replies(struct mspipe *p)
{
	while (p->rd < p->wr && p->fault.err == 0) {
		struct mcp_meta_reply rep;
		const char *at = (const char *)p->o.recv_area + p->rd;
		enum mcp_status st = mcp_meta_reply_parse(at, p->wr - p->rd, 0, &rep);
		if (st == MCP_NEED_MORE)
			return;
		const char *nl = memchr(at, '\n', p->wr - p->rd);
		int line = nl ? (int)MIN(nl - at, 80) : (int)MIN(p->wr - p->rd, 80);
		if (st != MCP_OK || !reply_due(p)) {
			mcw_fault_set(&p->fault, -EPROTO, "unexpected reply from %s: \"%.*s\"",
				      p->o.what, line, at);
			return;
		}
		switch (rep.code) {
		case MCP_RC_NS:
			on_ns(p, &rep);
			break;
		case MCP_RC_MN:
			on_batch_end(p);
			break;
		case MCP_RC_HD: /* stored (a server that ignores q) */
			break;
		case MCP_RC_SERVER_ERROR:
			on_server_error(p, &rep);
			break;
		default:
			mcw_fault_set(&p->fault, -EPROTO,
				      "%s refused a request: \"%.*s\" (please report it)",
				      p->o.what, line, at);
			return;
		}
		p->rd += rep.total_len;
	}
}

/* Invariant 4: the one place received bytes land. */
static void on_recv_bytes(struct mspipe *p, size_t n)
{
	if (!p->secure) {
		p->wr += n;
		parse_replies(p);
		return;
	}
	tls_pipe_received(&p->tls, n);
	while (p->fault.err == 0 && !p->lost) {
		compact(p); /* invariant 6 */
		ssize_t got = tls_pipe_open(&p->tls, p->o.recv_area + p->wr, p->rcap - p->wr);
		if (got == -EPIPE) {
			connection_lost(p, "it ended the TLS session");
		} else if (got < 0) {
			mcw_fault_set(&p->fault, -EPROTO, "%s (from %s)", p->tls.error, p->o.what);
		} else if (got > 0) {
			p->wr += (size_t)got;
			parse_replies(p);
			continue;
		}
		return;
	}
}

static void on_send(struct mspipe *p, int res)
{
	struct mspipe_batch *b = batch_at(p, p->b_sent);
	p->send_busy = false;
	if (p->secure && res > 0)
		tls_pipe_sent(&p->tls, (size_t)res);
	if (res < 0 || (size_t)res != b->chunk_bytes) {
		connection_lost(p, res < 0 ? strerror(-res) : "short send");
		return;
	}
	b->iov_done += b->iov_chunk;
	if (p->secure)
		b->iov_off = b->chunk_end_off;
	if (b->iov_done == b->niov)
		p->b_sent++;
}

static void on_recv(struct mspipe *p, int res)
{
	p->recv_posted = false;
	if ((res == -EAGAIN || res == -EINTR) && ++p->recv_retries <= MCW_RECV_RETRIES_MAX) {
		post_recv(p); /* nothing arrived: ask again */
		return;
	}
	if (res <= 0) {
		connection_lost(p, res == 0 ? "closed by the server" : strerror(-res));
		return;
	}
	p->recv_retries = 0;
	on_recv_bytes(p, (size_t)res);
}

bool mspipe_owns(const struct mspipe *p, uint64_t ud)
{
	return ur_ud_owner(ud) == UR_OWNER_MSPIPE && UD_ID(ud) == p->o.id;
}

void mspipe_on_cqe(struct mspipe *p, const struct ur_cqe *cqe)
{
	if (UD_GEN(cqe->user_data) != (p->gen & 0xffff)) { /* a dead connection's */
		ASSERT(p->stale > 0);
		p->stale--;
		return;
	}
	p->last_io_ns = mono_ns(); /* silence counts from the last send or receive */
	if (UD_KIND(cqe->user_data) == UD_SEND)
		on_send(p, cqe->res);
	else
		on_recv(p, cqe->res);
}

/* ---- state --------------------------------------------------------------------------- */

uint64_t mspipe_answered(const struct mspipe *p)
{
	return p->b_answered;
}

bool mspipe_idle(const struct mspipe *p)
{
	return p->b_answered == p->b_alloc && !p->has_open;
}

bool mspipe_awaiting(const struct mspipe *p)
{
	return !p->lost && (p->b_answered < p->b_sent || p->send_busy);
}

int64_t mspipe_wake_ns(const struct mspipe *p)
{
	return p->wake_ns;
}

void mspipe_take_counts(struct mspipe *p, struct mspipe_counts *out)
{
	*out = p->n;
	memset(&p->n, 0, sizeof(p->n));
}
