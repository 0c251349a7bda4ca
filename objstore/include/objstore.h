/*
 * objstore.h: an S3 client for chunk files (issue 15): dump uploads chunk files as
 * multipart uploads from its staging buffers, populate lists a prefix and reads objects in
 * ranged GETs straight into its read buffers. HTTP, TLS and SigV4 signing come from
 * libcurl (CURLOPT_AWS_SIGV4); this library builds URLs, reads the AWS configuration,
 * retries what S3 says to retry, and turns every failure into a class and a message.
 *
 * Memory: a client is caller storage (struct objs_client) plus one scratch buffer the
 * caller lends at init (request bodies and response documents). Object data moves between
 * S3 and caller buffers without a copy in this library. Nothing here allocates per request
 * except libcurl's own small state.
 *
 * Errors: every operation returns 0 or a negative errno-style value and fills the
 * client's last error: a class (below), the HTTP status, S3's Code and Message, and an
 * operator-facing text that names the bucket/key and the fix. One client is used by one
 * thread at a time.
 *
 * Exit codes proposed for the commands (sysexits, as core.h):
 *   OBJS_ERR_CONFIG       78 EX_CONFIG   bad s3:// URL, no region, no credentials found
 *   OBJS_ERR_CREDENTIALS  77 EX_NOPERM   403: bad key id or secret, expired token, denied
 *   OBJS_ERR_NO_BUCKET    69 UNAVAILABLE the bucket does not exist (NoSuchBucket)
 *   OBJS_ERR_NO_KEY       66 EX_NOINPUT  the object or upload does not exist
 *   OBJS_ERR_CHECKSUM     65 DATA        BadDigest, checksum mismatch, short object
 *   OBJS_ERR_TEMPFAIL     75 TEMPFAIL    SlowDown/503/500/resets/timeouts past the retries
 *   OBJS_ERR_UNSUPPORTED  69 UNAVAILABLE the store does not implement the operation
 *   OBJS_ERR_PROTOCOL     76 PROTOCOL    an answer we cannot read, other 4xx
 *   OBJS_ERR_TOO_LARGE    70 SOFTWARE    a caller buffer or limit too small
 * objs_exit_code() returns this mapping.
 */
#ifndef OBJSTORE_H
#define OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits (named here because they are part of the contract with the callers). */
#define OBJS_BUCKET_MAX_BYTES	  63   /* S3's bucket name limit */
#define OBJS_KEY_MAX_BYTES	  1024 /* S3's object key limit */
#define OBJS_REGION_MAX_BYTES	  32
#define OBJS_ENDPOINT_MAX_BYTES	  256
#define OBJS_KEY_ID_MAX_BYTES	  128
#define OBJS_SECRET_MAX_BYTES	  128
#define OBJS_TOKEN_MAX_BYTES	  4096	     /* session tokens of instance roles are ~1.3 KiB */
#define OBJS_UPLOAD_ID_MAX_BYTES  1024	     /* AWS's are ~150 bytes */
#define OBJS_ETAG_MAX_BYTES	  80	     /* quoted md5 plus "-N" for multipart objects */
#define OBJS_URL_MAX_BYTES	  4096	     /* endpoint + bucket + encoded key + query */
#define OBJS_PARTS_MAX		  10000	     /* S3's part count limit */
#define OBJS_PART_MIN_BYTES	  (5u << 20) /* S3: every part but the last */
#define OBJS_PART_MAX_BYTES	  (5ull << 30)
#define OBJS_SCRATCH_MIN_BYTES	  (64u << 10)
#define OBJS_ERROR_BODY_MAX_BYTES 4096 /* an <Error> document; longer ones are cut */
#define OBJS_LIST_KEYS_MAX	  1000 /* S3's max-keys */
#define OBJS_RETRIES_DEFAULT	  6    /* attempts after the first */
#define OBJS_RETRIES_MAX	  20
#define OBJS_BACKOFF_MIN_MS	  50	/* first retry waits up to this (full jitter) */
#define OBJS_BACKOFF_MAX_MS	  10000 /* no retry waits longer */
#define OBJS_CONNECT_TIMEOUT_MS	  5000
#define OBJS_STALL_TIMEOUT_MS	  30000	  /* no byte moved for this long: a timeout */
#define OBJS_REQUEST_TIMEOUT_MS	  600000  /* a whole request (a 5 GiB part at ~10 MB/s) */
#define OBJS_IMDS_TIMEOUT_MS	  2000	  /* per request to the instance metadata service */
#define OBJS_IMDS_REFRESH_S	  300	  /* renew role credentials this long before expiry */
#define OBJS_DELETE_PREFIX_MAX	  1000000 /* objects one delete_prefix removes at most */

enum objs_class {
	OBJS_OK = 0,
	OBJS_ERR_CONFIG,
	OBJS_ERR_CREDENTIALS,
	OBJS_ERR_NO_BUCKET,
	OBJS_ERR_NO_KEY,
	OBJS_ERR_CHECKSUM,
	OBJS_ERR_TEMPFAIL,
	OBJS_ERR_UNSUPPORTED,
	OBJS_ERR_PROTOCOL,
	OBJS_ERR_TOO_LARGE,
};

struct objs_error {
	enum objs_class cls;
	long http_status; /* 0 when no answer came */
	unsigned attempts;
	char code[64];	   /* S3's <Code>, or a curl error name */
	char message[256]; /* S3's <Message>, or curl's text */
	char text[1024];   /* for the operator: what failed, why, the fix */
};

struct objs_creds {
	char key_id[OBJS_KEY_ID_MAX_BYTES];
	char secret[OBJS_SECRET_MAX_BYTES];
	char token[OBJS_TOKEN_MAX_BYTES]; /* empty: long-term keys */
	int64_t expires_unix;		  /* 0: never (env, file) */
	char source[640];		  /* "environment", "/root/.aws/credentials [prod]", ... */
};

struct objs_config {
	char region[OBJS_REGION_MAX_BYTES];
	char endpoint[OBJS_ENDPOINT_MAX_BYTES]; /* empty: AWS itself (https, virtual-hosted) */
	bool path_style;			/* set with an endpoint: S3-compatible stores */
	struct objs_creds creds;
	char imds_endpoint[OBJS_ENDPOINT_MAX_BYTES]; /* set when creds came from the role */
	unsigned retries;			     /* 0: OBJS_RETRIES_DEFAULT */
	unsigned backoff_min_ms, backoff_max_ms;     /* 0: the defaults above */
	unsigned stall_timeout_ms;		     /* 0: OBJS_STALL_TIMEOUT_MS */
	unsigned request_timeout_ms;		     /* 0: OBJS_REQUEST_TIMEOUT_MS */
};

/* Fills c the AWS way, from the environment:
 *   credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); else the
 *     shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), profile
 *     AWS_PROFILE or "default"; else the EC2 instance role through IMDSv2 (endpoint
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254; skipped when
 *     AWS_EC2_METADATA_DISABLED=true). A profile named by AWS_PROFILE must exist.
 *   region: AWS_REGION, AWS_DEFAULT_REGION, the instance's region (IMDS), else us-east-1
 *     with an endpoint (S3-compatible stores) and an error without.
 *   endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; path-style addressing when set.
 * Returns 0, or -EINVAL/-ENOENT/-EACCES with err->cls OBJS_ERR_CONFIG and a text naming
 * every source tried and the fix. */
int objs_config_from_env(struct objs_config *c, struct objs_error *err);

/* s3://BUCKET[/PREFIX]: bucket checked against S3's naming rules, prefix kept as given
 * (a trailing '/' is the caller's choice). Returns 0 or -EINVAL (err: OBJS_ERR_CONFIG). */
struct objs_url {
	char bucket[OBJS_BUCKET_MAX_BYTES + 1];
	char prefix[OBJS_KEY_MAX_BYTES + 1];
};
int objs_url_parse(const char *s, struct objs_url *u, struct objs_error *err);

struct objs_client {
	struct objs_config cfg;
	void *curl;    /* CURL *, one easy handle reused (keeps the connection) */
	char *scratch; /* lent by the caller: request bodies and answers */
	size_t scratch_bytes;
	size_t resp_len; /* bytes of the last answer in resp */
	char url[OBJS_URL_MAX_BYTES];
	char err_body[OBJS_ERROR_BODY_MAX_BYTES];
	size_t err_body_len;
	char etag[OBJS_ETAG_MAX_BYTES]; /* ETag header of the last answer */
	int64_t content_length;		/* of the last answer, -1 unknown */
	long http_status;		/* of the last answer */
	uint64_t rng;			/* jitter */
	struct objs_error err;		/* the last failure */
	struct objs_stats {
		uint64_t requests, retries, bytes_up, bytes_down;
	} stats;
};

/* Takes cfg by value (the first call must come before other threads run: it initializes
 * libcurl); scratch (at least OBJS_SCRATCH_MIN_BYTES, caller-owned until
 * objs_client_fini) holds request bodies (complete) and answers (lists). Returns 0,
 * -EINVAL (scratch too small) or -ENOMEM (libcurl). */
int objs_client_init(struct objs_client *c, const struct objs_config *cfg, void *scratch,
		     size_t scratch_bytes);
void objs_client_fini(struct objs_client *c);
const struct objs_error *objs_last_error(const struct objs_client *c);
int objs_exit_code(enum objs_class cls);
const char *objs_class_name(enum objs_class cls);

/* PUT a small object (MANIFEST, DONE) from buf, with its CRC-32C (crc32c: the caller's,
 * core's mcw_crc32c) as x-amz-checksum-crc32c. Payloads are never hashed for the signature
 * (UNSIGNED-PAYLOAD): the CRC-32C, checked by S3 on receipt, protects them. */
int objs_put(struct objs_client *c, const char *bucket, const char *key, const void *buf,
	     size_t len, uint32_t crc32c);

/* GET bytes [offset, offset+len) into buf. Returns the count (less than len only at the end
 * of the object), -ENOENT (no such key/bucket), or another -errno. len 0 is refused. */
int64_t objs_get_range(struct objs_client *c, const char *bucket, const char *key, uint64_t offset,
		       void *buf, size_t len);

/* HEAD: size and etag (etag_out OBJS_ETAG_MAX_BYTES, may be NULL). -ENOENT if missing. */
int objs_head(struct objs_client *c, const char *bucket, const char *key, uint64_t *size_out,
	      char *etag_out);

int objs_delete(struct objs_client *c, const char *bucket, const char *key);

/* Server-side copy of src_key to dst_key in one bucket (CopyObject, objects up to 5 GiB):
 * how a chunk object gets its final name, which carries a crc known only at its end. */
int objs_copy(struct objs_client *c, const char *bucket, const char *src_key, const char *dst_key);

/* ListObjectsV2 under prefix, page by page (page_keys 0: OBJS_LIST_KEYS_MAX), one callback
 * per key in S3's order (UTF-8 binary). The key points into the scratch buffer and is
 * valid during the call; the callback may call objs_delete, objs_head, objs_abort (they do
 * not use the scratch buffer) and returns 0 to go on, anything else to stop (returned).
 * Returns 0, the callback's value, or -errno. */
typedef int (*objs_list_cb)(void *arg, const char *key, uint64_t size, const char *etag);
int objs_list(struct objs_client *c, const char *bucket, const char *prefix, unsigned page_keys,
	      objs_list_cb cb, void *arg);

/* Every object under prefix deleted (listing, then one DELETE each: bounded by
 * OBJS_DELETE_PREFIX_MAX). Returns the count deleted or -errno. */
int64_t objs_delete_prefix(struct objs_client *c, const char *bucket, const char *prefix);

/* Multipart upload. Parts are numbered from 1; each carries its CRC-32C (the caller's: the
 * chunk writer computes it anyway) as x-amz-checksum-crc32c, which S3 checks on receipt. */
struct objs_part {
	uint32_t number;
	uint32_t crc32c;
	char etag[OBJS_ETAG_MAX_BYTES];
};
int objs_mpu_create(struct objs_client *c, const char *bucket, const char *key,
		    char upload_id[OBJS_UPLOAD_ID_MAX_BYTES]);
/* Uploads buf as part p->number with p->crc32c; fills p->etag. -EBADMSG: S3 found the
 * checksum wrong (OBJS_ERR_CHECKSUM). */
int objs_mpu_upload_part(struct objs_client *c, const char *bucket, const char *key,
			 const char *upload_id, struct objs_part *p, const void *buf, size_t len);
/* Completes with the parts in ascending order; the body is built in the scratch buffer
 * (about 160 bytes a part: -E2BIG with OBJS_ERR_TOO_LARGE when it does not fit). */
int objs_mpu_complete(struct objs_client *c, const char *bucket, const char *key,
		      const char *upload_id, const struct objs_part *parts, unsigned n_parts);
int objs_mpu_abort(struct objs_client *c, const char *bucket, const char *key,
		   const char *upload_id);
/* Unfinished uploads under prefix (ListMultipartUploads, with continuation); rules of
 * objs_list's callback apply. */
typedef int (*objs_upload_cb)(void *arg, const char *key, const char *upload_id);
int objs_mpu_list(struct objs_client *c, const char *bucket, const char *prefix, objs_upload_cb cb,
		  void *arg);

/* base64 of the big-endian CRC-32C, as x-amz-checksum-crc32c carries it: out >= 9 bytes. */
void objs_crc32c_b64(uint32_t crc, char out[9]);

#endif
