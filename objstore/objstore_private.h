/*
 * objstore_private.h: what the files of objstore/ share: one request (struct objs_req)
 * performed with retries by http.c, the tiny XML and URL helpers, and the error setter.
 */
#ifndef OBJSTORE_PRIVATE_H
#define OBJSTORE_PRIVATE_H

#include <stdarg.h>

#include "objstore.h"

#define OBJS_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct objs_req {
	const char *method; /* GET PUT POST DELETE HEAD */
	const char *bucket;
	const char *key;   /* NULL: the bucket itself */
	const char *query; /* encoded, parameters in byte order (SigV4), no '?'; or NULL */
	const void *body;  /* NULL: none */
	size_t body_len;
	const char *checksum_b64; /* x-amz-checksum-crc32c, or NULL */
	const char *header;	  /* one more header line, or NULL */
	void *sink;		  /* 2xx body goes here; NULL: the scratch buffer */
	size_t sink_cap;
};

/* Performs r with retries; on success the 2xx body length is in c->resp_len (in sink or
 * scratch). Returns 0 or -errno with c->err filled. */
int objs_request(struct objs_client *c, const struct objs_req *r);

/* Sets c->err: cls, and text formatted from fmt. Returns -e. */
int objs_fail(struct objs_client *c, enum objs_class cls, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void objs_error_set(struct objs_error *err, enum objs_class cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Percent-encodes s (RFC 3986 unreserved kept; '/' kept when keep_slash) into out.
 * Returns the length or -E2BIG. */
int objs_uri_encode(const char *s, bool keep_slash, char *out, size_t cap);

/* XML: finds <tag>...</tag> in [p, end); returns the value start and sets *vlen, or NULL.
 * *next (may be NULL) is set past the closing tag. */
const char *objs_xml_find(const char *p, const char *end, const char *tag, size_t *vlen,
			  const char **next);
/* Copies the value of tag into out, decoding the five XML entities. false: absent or too
 * long. */
bool objs_xml_get(const char *p, const char *end, const char *tag, char *out, size_t cap);

/* Credentials of an instance role, fetched again from IMDSv2 (config.c). */
int objs_imds_fetch(const char *endpoint, struct objs_creds *cr, char *region, size_t region_cap,
		    struct objs_error *err);

#endif
