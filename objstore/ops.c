/*
 * ops.c: the S3 operations mcwarm uses, each one objs_request (http.c) plus the building
 * of its query and body and the reading of its answer. Object data goes from and to the
 * caller's buffers; listings and the complete body use the scratch buffer, which is why
 * a listing callback may only call operations that do not (delete, head, abort).
 * Query parameters are written in byte order, valueless ones as "name=", because SigV4
 * signs the canonical query and libcurl 7.88 signs the query as written.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore_private.h"

int objs_put(struct objs_client *c, const char *bucket, const char *key, const void *buf,
	     size_t len, uint32_t crc32c)
{
	char b64[9];

	objs_crc32c_b64(crc32c, b64);
	return objs_request(c, &(struct objs_req){ .method = "PUT",
						   .bucket = bucket,
						   .key = key,
						   .body = buf ? buf : "",
						   .body_len = len,
						   .checksum_b64 = b64 });
}

int64_t objs_get_range(struct objs_client *c, const char *bucket, const char *key, uint64_t offset,
		       void *buf, size_t len)
{
	char range[80];
	int rc;

	if (!len)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, EINVAL, "GET s3://%s/%s: empty range",
				 bucket, key);
	snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, offset,
		 offset + len - 1);
	rc = objs_request(c, &(struct objs_req){ .method = "GET",
						 .bucket = bucket,
						 .key = key,
						 .header = range,
						 .sink = buf,
						 .sink_cap = len });
	if (rc == 0 && c->http_status != 206 && offset > 0) /* the Range was ignored */
		return objs_fail(c, OBJS_ERR_PROTOCOL, EPROTO,
				 "GET s3://%s/%s: the store ignored the Range header (HTTP %ld)",
				 bucket, key, c->http_status);
	if (rc == 0)
		return (int64_t)c->resp_len;
	if (c->err.http_status == 416) /* at or past the end: nothing to read */
		return 0;
	return rc;
}

/* Answers without a body (HEAD, DELETE, abort) land in a small buffer of their own, so a
 * listing callback can make them without touching the page in the scratch buffer. */
#define NOBODY_BYTES 256

int objs_head(struct objs_client *c, const char *bucket, const char *key, uint64_t *size_out,
	      char *etag_out)
{
	char none[NOBODY_BYTES];
	int rc = objs_request(c, &(struct objs_req){ .method = "HEAD",
						     .bucket = bucket,
						     .key = key,
						     .sink = none,
						     .sink_cap = sizeof(none) });

	if (rc < 0)
		return rc;
	if (size_out)
		*size_out = c->content_length < 0 ? 0 : (uint64_t)c->content_length;
	if (etag_out)
		snprintf(etag_out, OBJS_ETAG_MAX_BYTES, "%s", c->etag);
	return 0;
}

int objs_delete(struct objs_client *c, const char *bucket, const char *key)
{
	char none[NOBODY_BYTES];

	return objs_request(c, &(struct objs_req){ .method = "DELETE",
						   .bucket = bucket,
						   .key = key,
						   .sink = none,
						   .sink_cap = sizeof(none) });
}

int objs_copy(struct objs_client *c, const char *bucket, const char *src_key, const char *dst_key)
{
	char src[OBJS_KEY_MAX_BYTES * 3 + 1],
	    hdr[OBJS_KEY_MAX_BYTES * 3 + OBJS_BUCKET_MAX_BYTES + 32];
	size_t len;

	if (objs_uri_encode(src_key, true, src, sizeof(src)) < 0)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG, "copy source key too long");
	snprintf(hdr, sizeof(hdr), "x-amz-copy-source: /%s/%s", bucket, src);
	int rc = objs_request(c, &(struct objs_req){ .method = "PUT",
						     .bucket = bucket,
						     .key = dst_key,
						     .body = "",
						     .body_len = 0,
						     .header = hdr });
	if (rc < 0)
		return rc;
	const char *a = c->scratch, *end = a + c->resp_len;
	if (objs_xml_find(a, end, "Error", &len, NULL)) { /* S3 may fail after a 200 */
		objs_xml_get(a, end, "Code", c->err.code, sizeof(c->err.code));
		objs_xml_get(a, end, "Message", c->err.message, sizeof(c->err.message));
		return objs_fail(c, OBJS_ERR_TEMPFAIL, EAGAIN,
				 "CopyObject s3://%s/%s to %s: %s: %s (run again)", bucket, src_key,
				 dst_key, c->err.code, c->err.message);
	}
	return 0;
}

/* A paged listing (ListObjectsV2, ListMultipartUploads): query, markers and entries are
 * the operation's, the walk is shared. w is the first member of the operation's state. */
struct page_walk {
	struct objs_client *c;
	const char *bucket, *prefix, *op, *entry_tag;
	int (*query)(struct page_walk *w, char *q, size_t cap);
	bool (*markers)(struct page_walk *w, const char *p, const char *end);
	int (*entry)(struct page_walk *w, const char *v, const char *end);
};

static int pages_walk(struct page_walk *w)
{
	struct objs_client *c = w->c;
	char q[OBJS_URL_MAX_BYTES], trunc[8];
	int rc;

	for (;;) {
		if ((rc = w->query(w, q, sizeof(q))) < 0)
			return rc;
		rc = objs_request(
		    c, &(struct objs_req){ .method = "GET", .bucket = w->bucket, .query = q });
		if (rc < 0)
			return rc;
		const char *p = c->scratch, *end = c->scratch + c->resp_len, *v, *next;
		size_t vl;
		bool more = objs_xml_get(p, end, "IsTruncated", trunc, sizeof(trunc)) &&
			    strcmp(trunc, "true") == 0;
		if (more && !w->markers(w, p, end)) /* read before the entries' callbacks */
			return objs_fail(c, OBJS_ERR_PROTOCOL, EPROTO,
					 "%s s3://%s/%s: truncated without continuation markers",
					 w->op, w->bucket, w->prefix);
		while ((v = objs_xml_find(p, end, w->entry_tag, &vl, &next))) {
			if ((rc = w->entry(w, v, v + vl)) != 0)
				return rc;
			p = next;
		}
		if (!more)
			return 0;
	}
}

static int encode_or_fail(struct objs_client *c, const char *s, char *out, size_t cap)
{
	if (objs_uri_encode(s, false, out, cap) < 0)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG,
				 "listing: a marker or prefix of "
				 "more than %d bytes",
				 OBJS_KEY_MAX_BYTES);
	return 0;
}

static int query_done(struct objs_client *c, int n, size_t cap)
{
	if (n > 0 && (size_t)n < cap)
		return 0;
	return objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG, "listing: query longer than %zu bytes", cap);
}

struct list_walk {
	struct page_walk w;
	unsigned page_keys;
	char token[OBJS_KEY_MAX_BYTES + 1];
	objs_list_cb cb;
	void *arg;
};

static int list_query(struct page_walk *w, char *q, size_t cap)
{
	struct list_walk *l = (struct list_walk *)w;
	char tok[OBJS_KEY_MAX_BYTES * 3 + 1], pre[OBJS_KEY_MAX_BYTES * 3 + 1];

	if (encode_or_fail(w->c, l->token, tok, sizeof(tok)) < 0 ||
	    encode_or_fail(w->c, w->prefix, pre, sizeof(pre)) < 0)
		return -E2BIG;
	return query_done(w->c,
			  snprintf(q, cap, "%s%s%slist-type=2&max-keys=%u&prefix=%s",
				   tok[0] ? "continuation-token=" : "", tok, tok[0] ? "&" : "",
				   l->page_keys, pre),
			  cap);
}

static bool list_markers(struct page_walk *w, const char *p, const char *end)
{
	struct list_walk *l = (struct list_walk *)w;

	return objs_xml_get(p, end, "NextContinuationToken", l->token, sizeof(l->token));
}

/* One <Contents> entry of a ListObjectsV2 page: key, size, etag. */
static int list_entry(struct page_walk *w, const char *v, const char *end)
{
	struct list_walk *l = (struct list_walk *)w;
	char key[OBJS_KEY_MAX_BYTES + 1], size[32], etag[OBJS_ETAG_MAX_BYTES];

	if (!objs_xml_get(v, end, "Key", key, sizeof(key)) ||
	    !objs_xml_get(v, end, "Size", size, sizeof(size)))
		return objs_fail(w->c, OBJS_ERR_PROTOCOL, EPROTO,
				 "ListObjectsV2: an entry without Key or Size");
	if (!objs_xml_get(v, end, "ETag", etag, sizeof(etag)))
		etag[0] = 0;
	return l->cb(l->arg, key, strtoull(size, NULL, 10), etag);
}

int objs_list(struct objs_client *c, const char *bucket, const char *prefix, unsigned page_keys,
	      objs_list_cb cb, void *arg)
{
	static_assert(offsetof(struct list_walk, w) == 0, "w first");
	struct list_walk l = {
		.w = { .c = c,
		       .bucket = bucket,
		       .prefix = prefix,
		       .op = "ListObjectsV2",
		       .entry_tag = "Contents",
		       .query = list_query,
		       .markers = list_markers,
		       .entry = list_entry },
		.page_keys =
		    !page_keys || page_keys > OBJS_LIST_KEYS_MAX ? OBJS_LIST_KEYS_MAX : page_keys,
		.cb = cb,
		.arg = arg,
	};

	return pages_walk(&l.w);
}

struct del_state {
	struct objs_client *c;
	const char *bucket;
	int64_t count;
};

static int delete_one(void *arg, const char *key, uint64_t size, const char *etag)
{
	struct del_state *d = arg;
	int rc;

	(void)size, (void)etag;
	if (d->count >= OBJS_DELETE_PREFIX_MAX)
		return objs_fail(d->c, OBJS_ERR_TOO_LARGE, E2BIG,
				 "delete of a prefix stops at %d objects", OBJS_DELETE_PREFIX_MAX);
	if ((rc = objs_delete(d->c, d->bucket, key)) < 0)
		return rc;
	d->count++;
	return 0;
}

int64_t objs_delete_prefix(struct objs_client *c, const char *bucket, const char *prefix)
{
	struct del_state d = { .c = c, .bucket = bucket };
	int rc = objs_list(c, bucket, prefix, 0, delete_one, &d);

	return rc < 0 ? rc : d.count;
}

int objs_mpu_create(struct objs_client *c, const char *bucket, const char *key,
		    char upload_id[OBJS_UPLOAD_ID_MAX_BYTES])
{
	int rc =
	    objs_request(c, &(struct objs_req){ .method = "POST",
						.bucket = bucket,
						.key = key,
						.query = "uploads=",
						.header = "x-amz-checksum-algorithm: CRC32C" });

	if (rc < 0)
		return rc;
	if (!objs_xml_get(c->scratch, c->scratch + c->resp_len, "UploadId", upload_id,
			  OBJS_UPLOAD_ID_MAX_BYTES))
		return objs_fail(c, OBJS_ERR_PROTOCOL, EPROTO,
				 "CreateMultipartUpload s3://%s/%s: no UploadId in the answer",
				 bucket, key);
	return 0;
}

static int query_upload(struct objs_client *c, char *q, size_t cap, uint32_t part,
			const char *upload_id)
{
	char id[OBJS_UPLOAD_ID_MAX_BYTES * 3];
	int n;

	if (objs_uri_encode(upload_id, false, id, sizeof(id)) < 0)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG, "upload id too long");
	if (part)
		n = snprintf(q, cap, "partNumber=%u&uploadId=%s", part, id);
	else
		n = snprintf(q, cap, "uploadId=%s", id);
	return n > 0 && (size_t)n < cap ? 0 : objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG, "query");
}

int objs_mpu_upload_part(struct objs_client *c, const char *bucket, const char *key,
			 const char *upload_id, struct objs_part *p, const void *buf, size_t len)
{
	char q[OBJS_UPLOAD_ID_MAX_BYTES * 3 + 64], b64[9];
	int rc;

	if (p->number < 1 || p->number > OBJS_PARTS_MAX || len > OBJS_PART_MAX_BYTES)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, EINVAL,
				 "part %u of s3://%s/%s: numbers go 1..%d, at most 5 GiB each",
				 p->number, bucket, key, OBJS_PARTS_MAX);
	if ((rc = query_upload(c, q, sizeof(q), p->number, upload_id)) < 0)
		return rc;
	objs_crc32c_b64(p->crc32c, b64);
	rc = objs_request(c, &(struct objs_req){ .method = "PUT",
						 .bucket = bucket,
						 .key = key,
						 .query = q,
						 .body = buf ? buf : "",
						 .body_len = len,
						 .checksum_b64 = b64 });
	if (rc < 0)
		return rc;
	if (!c->etag[0])
		return objs_fail(c, OBJS_ERR_PROTOCOL, EPROTO,
				 "UploadPart %u of s3://%s/%s: no ETag in the answer", p->number,
				 bucket, key);
	snprintf(p->etag, sizeof(p->etag), "%s", c->etag);
	return 0;
}

/* The CompleteMultipartUpload document, in the scratch buffer. */
static int complete_body(struct objs_client *c, const struct objs_part *parts, unsigned n,
			 size_t *len)
{
	size_t cap = c->scratch_bytes, off = 0;
	int w = snprintf(c->scratch, cap, "<CompleteMultipartUpload>");

	for (unsigned i = 0; w > 0 && (off += (size_t)w) < cap && i < n; i++) {
		char b64[9], etag[OBJS_ETAG_MAX_BYTES * 2];
		size_t el = 0;
		for (const char *e = parts[i].etag; *e && el + 7 < sizeof(etag); e++)
			el += (size_t)snprintf(etag + el, sizeof(etag) - el, "%s",
					       *e == '"' ? "&quot;" : (char[2]){ *e, 0 });
		objs_crc32c_b64(parts[i].crc32c, b64);
		w = snprintf(c->scratch + off, cap - off,
			     "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag>"
			     "<ChecksumCRC32C>%s</ChecksumCRC32C></Part>",
			     parts[i].number, etag, b64);
	}
	if (w > 0 && off < cap)
		w = snprintf(c->scratch + off, cap - off, "</CompleteMultipartUpload>");
	if (w < 0 || off + (size_t)w >= cap)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, E2BIG,
				 "%u parts do not fit the %zu-byte scratch buffer", n, cap);
	*len = off + (size_t)w;
	return 0;
}

int objs_mpu_complete(struct objs_client *c, const char *bucket, const char *key,
		      const char *upload_id, const struct objs_part *parts, unsigned n_parts)
{
	char q[OBJS_UPLOAD_ID_MAX_BYTES * 3 + 64];
	size_t len;
	int rc;

	for (unsigned i = 0; i < n_parts; i++)
		if (parts[i].number != (i ? parts[i - 1].number + 1 : 1) || !parts[i].etag[0])
			return objs_fail(c, OBJS_ERR_TOO_LARGE, EINVAL,
					 "complete s3://%s/%s: part %u is out of order or has no "
					 "ETag",
					 bucket, key, i);
	if (!n_parts || n_parts > OBJS_PARTS_MAX)
		return objs_fail(c, OBJS_ERR_TOO_LARGE, EINVAL, "complete: 1..%d parts",
				 OBJS_PARTS_MAX);
	if ((rc = query_upload(c, q, sizeof(q), 0, upload_id)) < 0 ||
	    (rc = complete_body(c, parts, n_parts, &len)) < 0)
		return rc;
	/* the body is sent from the scratch buffer, the answer lands after it */
	rc = objs_request(c, &(struct objs_req){ .method = "POST",
						 .bucket = bucket,
						 .key = key,
						 .query = q,
						 .body = c->scratch,
						 .body_len = len,
						 .sink = c->scratch + len + 1,
						 .sink_cap = c->scratch_bytes - len - 2 });
	if (rc < 0)
		return rc;
	const char *a = c->scratch + len + 1, *end = a + c->resp_len;
	if (objs_xml_find(a, end, "Error", &len, NULL)) { /* S3 may fail after a 200 */
		objs_xml_get(a, end, "Code", c->err.code, sizeof(c->err.code));
		objs_xml_get(a, end, "Message", c->err.message, sizeof(c->err.message));
		return objs_fail(c, OBJS_ERR_TEMPFAIL, EAGAIN,
				 "CompleteMultipartUpload s3://%s/%s: %s: %s (run again)", bucket,
				 key, c->err.code, c->err.message);
	}
	return 0;
}

int objs_mpu_abort(struct objs_client *c, const char *bucket, const char *key,
		   const char *upload_id)
{
	char q[OBJS_UPLOAD_ID_MAX_BYTES * 3 + 64];
	int rc = query_upload(c, q, sizeof(q), 0, upload_id);

	if (rc < 0)
		return rc;
	char none[NOBODY_BYTES];

	return objs_request(c, &(struct objs_req){ .method = "DELETE",
						   .bucket = bucket,
						   .key = key,
						   .query = q,
						   .sink = none,
						   .sink_cap = sizeof(none) });
}

struct uploads_walk {
	struct page_walk w;
	char key_marker[OBJS_KEY_MAX_BYTES + 1];
	char id_marker[OBJS_UPLOAD_ID_MAX_BYTES];
	objs_upload_cb cb;
	void *arg;
};

static int uploads_query(struct page_walk *w, char *q, size_t cap)
{
	struct uploads_walk *u = (struct uploads_walk *)w;
	char km[OBJS_KEY_MAX_BYTES * 3 + 1], im[OBJS_UPLOAD_ID_MAX_BYTES * 3], pre[sizeof(km)];

	if (encode_or_fail(w->c, u->key_marker, km, sizeof(km)) < 0 ||
	    encode_or_fail(w->c, u->id_marker, im, sizeof(im)) < 0 ||
	    encode_or_fail(w->c, w->prefix, pre, sizeof(pre)) < 0)
		return -E2BIG;
	return query_done(w->c,
			  snprintf(q, cap,
				   "%s%s%sprefix=%s%s%s&uploads=", km[0] ? "key-marker=" : "", km,
				   km[0] ? "&" : "", pre, im[0] ? "&upload-id-marker=" : "", im),
			  cap);
}

static bool uploads_markers(struct page_walk *w, const char *p, const char *end)
{
	struct uploads_walk *u = (struct uploads_walk *)w;

	return objs_xml_get(p, end, "NextKeyMarker", u->key_marker, sizeof(u->key_marker)) &&
	       objs_xml_get(p, end, "NextUploadIdMarker", u->id_marker, sizeof(u->id_marker));
}

static int uploads_entry(struct page_walk *w, const char *v, const char *end)
{
	struct uploads_walk *u = (struct uploads_walk *)w;
	char key[OBJS_KEY_MAX_BYTES + 1], id[OBJS_UPLOAD_ID_MAX_BYTES];

	if (!objs_xml_get(v, end, "Key", key, sizeof(key)) ||
	    !objs_xml_get(v, end, "UploadId", id, sizeof(id)))
		return objs_fail(w->c, OBJS_ERR_PROTOCOL, EPROTO,
				 "ListMultipartUploads: an entry without Key or UploadId");
	return u->cb(u->arg, key, id);
}

int objs_mpu_list(struct objs_client *c, const char *bucket, const char *prefix, objs_upload_cb cb,
		  void *arg)
{
	static_assert(offsetof(struct uploads_walk, w) == 0, "w first");
	struct uploads_walk u = {
		.w = { .c = c,
		       .bucket = bucket,
		       .prefix = prefix,
		       .op = "ListMultipartUploads",
		       .entry_tag = "Upload",
		       .query = uploads_query,
		       .markers = uploads_markers,
		       .entry = uploads_entry },
		.cb = cb,
		.arg = arg,
	};

	return pages_walk(&u.w);
}
