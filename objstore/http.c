/*
 * http.c: one S3 request over libcurl, retried, and its failure classified.
 *
 * A request is built into c->url (virtual-hosted for AWS, path-style with an endpoint),
 * signed by libcurl (CURLOPT_AWS_SIGV4, payload UNSIGNED-PAYLOAD or the empty hash) and
 * performed on the client's one easy handle, which keeps its connection. Success bodies go
 * to the caller's sink or the scratch buffer, error bodies to c->err_body; nothing is
 * allocated here. Retried, with jittered exponential backoff and at most cfg.retries
 * times: 500, 502, 503, 504, 429, SlowDown, RequestTimeout, connection failures, resets,
 * stalls and timeouts. Never retried: 403, 404, 400 (BadDigest, ...), 405, 501.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "objstore_private.h"

struct sink_state {
	struct objs_client *c;
	char *buf;
	size_t cap, len;
	bool overflow;
};

void objs_error_set(struct objs_error *err, enum objs_class cls, const char *fmt, ...)
{
	va_list ap;

	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
}

int objs_fail(struct objs_client *c, enum objs_class cls, int e, const char *fmt, ...)
{
	va_list ap;

	c->err.cls = cls;
	va_start(ap, fmt);
	vsnprintf(c->err.text, sizeof(c->err.text), fmt, ap);
	va_end(ap);
	return -e;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct sink_state *s = arg;
	struct objs_client *c = s->c;
	size_t len = size * n;
	long status = 0;

	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300) { /* an error document: kept up to its limit, the rest dropped */
		size_t room = sizeof(c->err_body) - 1 - c->err_body_len;
		size_t take = len < room ? len : room;
		memcpy(c->err_body + c->err_body_len, data, take);
		c->err_body_len += take;
		c->err_body[c->err_body_len] = 0;
		return len;
	}
	if (len > s->cap - s->len) {
		s->overflow = true;
		return 0; /* CURLE_WRITE_ERROR */
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct objs_client *c = arg;
	size_t len = size * n;

	if (len > 5 && strncasecmp(data, "etag:", 5) == 0) {
		const char *v = data + 5;
		size_t vl = len - 5;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(c->etag)) {
			memcpy(c->etag, v, vl);
			c->etag[vl] = 0;
		}
	}
	return len;
}

static int url_build(struct objs_client *c, const struct objs_req *r)
{
	const struct objs_config *g = &c->cfg;
	char key_enc[OBJS_URL_MAX_BYTES];
	int n;

	key_enc[0] = 0;
	if (r->key && objs_uri_encode(r->key, true, key_enc, sizeof(key_enc)) < 0)
		return -E2BIG;
	if (g->path_style)
		n = snprintf(c->url, sizeof(c->url), "%s/%s/%s%s%s", g->endpoint, r->bucket,
			     key_enc, r->query ? "?" : "", r->query ? r->query : "");
	else if (g->endpoint[0]) /* an endpoint that takes virtual-hosted names */
		n = snprintf(c->url, sizeof(c->url), "%s/%s%s%s", g->endpoint, key_enc,
			     r->query ? "?" : "", r->query ? r->query : "");
	else
		n = snprintf(c->url, sizeof(c->url), "https://%s.s3.%s.amazonaws.com/%s%s%s",
			     r->bucket, g->region, key_enc, r->query ? "?" : "",
			     r->query ? r->query : "");
	return n > 0 && (size_t)n < sizeof(c->url) ? 0 : -E2BIG;
}

static struct curl_slist *headers_build(struct objs_client *c, const struct objs_req *r)
{
	char line[OBJS_TOKEN_MAX_BYTES + 64];
	struct curl_slist *h = NULL, *t;

	snprintf(line, sizeof(line), "x-amz-content-sha256: %s",
		 r->body ? "UNSIGNED-PAYLOAD" : OBJS_EMPTY_SHA256);
	h = curl_slist_append(h, line);
	if (h && c->cfg.creds.token[0]) {
		snprintf(line, sizeof(line), "x-amz-security-token: %s", c->cfg.creds.token);
		h = (t = curl_slist_append(h, line)) ? t : (curl_slist_free_all(h), NULL);
	}
	if (h && r->checksum_b64) {
		snprintf(line, sizeof(line), "x-amz-checksum-crc32c: %s", r->checksum_b64);
		h = (t = curl_slist_append(h, line)) ? t : (curl_slist_free_all(h), NULL);
	}
	if (h && r->header)
		h = (t = curl_slist_append(h, r->header)) ? t : (curl_slist_free_all(h), NULL);
	if (h && r->body) { /* no form type, no 100-continue round trip */
		h = (t = curl_slist_append(h, "Content-Type:")) ? t
								: (curl_slist_free_all(h), NULL);
		if (h)
			h = (t = curl_slist_append(h, "Expect:")) ? t
								  : (curl_slist_free_all(h), NULL);
	}
	return h;
}

static void curl_setup(struct objs_client *c, const struct objs_req *r, struct sink_state *s,
		       struct curl_slist *h, char *sigv4)
{
	CURL *e = c->curl;
	const struct objs_config *g = &c->cfg;

	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, c->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(e, CURLOPT_USERNAME, g->creds.key_id);
	curl_easy_setopt(e, CURLOPT_PASSWORD, g->creds.secret);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)OBJS_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(
	    e, CURLOPT_TIMEOUT_MS,
	    (long)(g->request_timeout_ms ? g->request_timeout_ms : OBJS_REQUEST_TIMEOUT_MS));
	/* a stall: less than 1 byte/s for the stall time (curl counts in whole seconds) */
	unsigned stall_ms = g->stall_timeout_ms ? g->stall_timeout_ms : OBJS_STALL_TIMEOUT_MS;
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(stall_ms + 999) / 1000);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (strcmp(r->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (r->body) { /* sent from the caller's buffer, not copied */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	}
}

static bool code_is(const struct objs_client *c, const char *code)
{
	return strcmp(c->err.code, code) == 0;
}

/* After an HTTP error status: the class, and whether to retry. */
static enum objs_class http_class(const struct objs_client *c, long st, bool *retry)
{
	*retry = st == 500 || st == 502 || st == 503 || st == 504 || st == 429 ||
		 code_is(c, "SlowDown") || code_is(c, "RequestTimeout") ||
		 code_is(c, "InternalError");
	if (*retry)
		return OBJS_ERR_TEMPFAIL;
	if (st == 403 || st == 401 || code_is(c, "InvalidAccessKeyId") ||
	    code_is(c, "SignatureDoesNotMatch") || code_is(c, "ExpiredToken"))
		return OBJS_ERR_CREDENTIALS;
	if (code_is(c, "NoSuchBucket"))
		return OBJS_ERR_NO_BUCKET;
	if (st == 404)
		return OBJS_ERR_NO_KEY;
	if (code_is(c, "BadDigest") || code_is(c, "InvalidDigest") ||
	    code_is(c, "XAmzContentChecksumMismatch") || code_is(c, "InvalidChecksum") ||
	    code_is(c, "IncompleteBody"))
		return OBJS_ERR_CHECKSUM;
	if (st == 405 || st == 501 || code_is(c, "NotImplemented"))
		return OBJS_ERR_UNSUPPORTED;
	return OBJS_ERR_PROTOCOL;
}

static bool curl_is_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static const char *class_fix(enum objs_class cls)
{
	switch (cls) {
	case OBJS_ERR_CREDENTIALS:
		return "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the profile, or the "
		       "instance role) and the bucket policy; an expired AWS_SESSION_TOKEN must "
		       "be renewed";
	case OBJS_ERR_NO_BUCKET:
		return "create the bucket, or fix the name, the region (AWS_REGION) or the "
		       "endpoint (AWS_ENDPOINT_URL_S3)";
	case OBJS_ERR_NO_KEY:
		return "the object is gone or was never written: check the prefix";
	case OBJS_ERR_CHECKSUM:
		return "the data changed on the way: the part is sent again by running the same "
		       "command again; if it repeats, check memory and network hardware";
	case OBJS_ERR_TEMPFAIL:
		return "the store is overloaded or unreachable: run the same command again later, "
		       "or lower --max-bytes";
	case OBJS_ERR_UNSUPPORTED:
		return "this S3-compatible store lacks the operation: use another store or AWS";
	default:
		return "see the store's documentation of the code above";
	}
}

/* Fills c->err from one failed attempt; returns whether to retry. */
static bool attempt_classify(struct objs_client *c, const struct objs_req *r, CURLcode rc, long st,
			     const struct sink_state *s)
{
	bool retry = false;
	const char *be = c->err_body, *end = c->err_body + c->err_body_len;

	c->err.http_status = st;
	c->err.code[0] = c->err.message[0] = 0;
	if (rc == CURLE_WRITE_ERROR && s->overflow) {
		c->err.cls = OBJS_ERR_TOO_LARGE;
		snprintf(c->err.code, sizeof(c->err.code), "BufferTooSmall");
		snprintf(c->err.message, sizeof(c->err.message),
			 "the answer is larger than the %zu-byte buffer", s->cap);
		return false;
	}
	if (rc != CURLE_OK) {
		snprintf(c->err.code, sizeof(c->err.code), "curl error %d", (int)rc);
		snprintf(c->err.message, sizeof(c->err.message), "%s", curl_easy_strerror(rc));
		retry = curl_is_transient(rc);
		c->err.cls = retry ? OBJS_ERR_TEMPFAIL : OBJS_ERR_PROTOCOL;
		return retry;
	}
	if (!objs_xml_get(be, end, "Code", c->err.code, sizeof(c->err.code)))
		snprintf(c->err.code, sizeof(c->err.code), "HTTP %ld", st);
	objs_xml_get(be, end, "Message", c->err.message, sizeof(c->err.message));
	c->err.cls = http_class(c, st, &retry);
	(void)r;
	return retry;
}

static void error_text(struct objs_client *c, const struct objs_req *r)
{
	struct objs_error *e = &c->err;

	snprintf(e->text, sizeof(e->text), "%s s3://%s/%s: %s%s%s (HTTP %ld, %u attempt%s; %s)",
		 r->method, r->bucket, r->key ? r->key : "", e->code, e->message[0] ? ": " : "",
		 e->message, e->http_status, e->attempts, e->attempts == 1 ? "" : "s",
		 class_fix(e->cls));
}

static void backoff_sleep(struct objs_client *c, unsigned attempt)
{
	unsigned lo = c->cfg.backoff_min_ms ? c->cfg.backoff_min_ms : OBJS_BACKOFF_MIN_MS;
	unsigned hi = c->cfg.backoff_max_ms ? c->cfg.backoff_max_ms : OBJS_BACKOFF_MAX_MS;
	uint64_t cap = (uint64_t)lo << (attempt < 20 ? attempt : 20);
	if (cap > hi)
		cap = hi;
	c->rng ^= c->rng << 13, c->rng ^= c->rng >> 7, c->rng ^= c->rng << 17;
	uint64_t ms = cap / 2 + c->rng % (cap / 2 + 1); /* equal jitter: never a zero wait */
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int creds_refresh_if_due(struct objs_client *c)
{
	struct objs_creds *cr = &c->cfg.creds;

	if (!cr->expires_unix || !c->cfg.imds_endpoint[0] ||
	    time(NULL) + OBJS_IMDS_REFRESH_S < cr->expires_unix)
		return 0;
	if (objs_imds_fetch(c->cfg.imds_endpoint, cr, NULL, 0, &c->err) < 0)
		return -EACCES;
	return 0;
}

static int errno_of(enum objs_class cls)
{
	switch (cls) {
	case OBJS_ERR_CREDENTIALS:
		return EACCES;
	case OBJS_ERR_NO_BUCKET:
	case OBJS_ERR_NO_KEY:
		return ENOENT;
	case OBJS_ERR_CHECKSUM:
		return EBADMSG;
	case OBJS_ERR_TEMPFAIL:
		return EAGAIN;
	case OBJS_ERR_UNSUPPORTED:
		return EOPNOTSUPP;
	case OBJS_ERR_TOO_LARGE:
		return E2BIG;
	default:
		return EPROTO;
	}
}

int objs_request(struct objs_client *c, const struct objs_req *r)
{
	unsigned retries = c->cfg.retries ? c->cfg.retries : OBJS_RETRIES_DEFAULT;
	char sigv4[OBJS_REGION_MAX_BYTES + 16];
	struct sink_state s = { .c = c };

	if (retries > OBJS_RETRIES_MAX)
		retries = OBJS_RETRIES_MAX;
	if (url_build(c, r) < 0)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG,
				 "s3://%s/%s: URL longer than %d bytes", r->bucket,
				 r->key ? r->key : "", OBJS_URL_MAX_BYTES);
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", c->cfg.region);
	memset(&c->err, 0, sizeof(c->err));
	for (unsigned attempt = 0;; attempt++) {
		if (creds_refresh_if_due(c) < 0)
			return -EACCES;
		struct curl_slist *h = headers_build(c, r);
		if (!h)
			return objs_fail(c, OBJS_ERR_TOO_LARGE, ENOMEM,
					 "out of memory (curl headers)");
		s = (struct sink_state){ .c = c,
					 .buf = r->sink ? r->sink : c->scratch,
					 .cap = r->sink ? r->sink_cap : c->scratch_bytes - 1 };
		c->err_body_len = 0;
		c->err_body[0] = 0;
		c->etag[0] = 0;
		curl_setup(c, r, &s, h, sigv4);
		CURLcode rc = curl_easy_perform(c->curl);
		long st = 0;
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &st);
		curl_off_t cl = -1;
		curl_easy_getinfo(c->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		curl_slist_free_all(h);
		c->stats.requests++;
		c->err.attempts = attempt + 1;
		if (rc == CURLE_OK && st >= 200 && st < 300) {
			c->resp_len = s.len;
			if (!r->sink)
				c->scratch[s.len] = 0;
			c->content_length = cl;
			c->http_status = st;
			c->stats.bytes_up += r->body ? r->body_len : 0;
			c->stats.bytes_down += s.len;
			return 0;
		}
		bool retry = attempt_classify(c, r, rc, st, &s);
		if (!retry || attempt >= retries) {
			error_text(c, r);
			return -errno_of(c->err.cls);
		}
		c->stats.retries++;
		backoff_sleep(c, attempt);
	}
}

int objs_client_init(struct objs_client *c, const struct objs_config *cfg, void *scratch,
		     size_t scratch_bytes)
{
	static bool global_done; /* curl_global_init: first client, before any thread */

	memset(c, 0, sizeof(*c));
	if (!scratch || scratch_bytes < OBJS_SCRATCH_MIN_BYTES)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, EINVAL, "scratch buffer below %u bytes",
				 OBJS_SCRATCH_MIN_BYTES);
	if (!global_done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		global_done = true;
	}
	c->cfg = *cfg;
	c->scratch = scratch;
	c->scratch_bytes = scratch_bytes;
	c->content_length = -1;
	c->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uintptr_t)c;
	if (!c->rng)
		c->rng = 1;
	c->curl = curl_easy_init();
	if (!c->curl)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, ENOMEM, "curl_easy_init failed");
	return 0;
}

void objs_client_fini(struct objs_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

const struct objs_error *objs_last_error(const struct objs_client *c)
{
	return &c->err;
}
