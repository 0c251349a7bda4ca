/*
 * util.c: the small pure helpers of objstore/: s3:// URL parsing, percent-encoding for
 * SigV4 (RFC 3986, uppercase hex), a bounded XML value finder for S3's flat answers,
 * base64 of a CRC-32C, and the error class names and exit codes. No I/O, no allocation.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "objstore_private.h"

int objs_uri_encode(const char *s, bool keep_slash, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
			     ch == '~' || (keep_slash && ch == '/');
		if (n + (plain ? 1 : 3) >= cap)
			return -E2BIG;
		if (plain) {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = 0;
	return (int)n;
}

const char *objs_xml_find(const char *p, const char *end, const char *tag, size_t *vlen,
			  const char **next)
{
	char open[64], close[64];
	int ol = snprintf(open, sizeof(open), "<%s>", tag);
	int cl = snprintf(close, sizeof(close), "</%s>", tag);

	if (!p || ol <= 0 || cl <= 0)
		return NULL;
	const char *v = memmem(p, (size_t)(end - p), open, (size_t)ol);
	if (!v)
		return NULL;
	v += ol;
	const char *e = memmem(v, (size_t)(end - v), close, (size_t)cl);
	if (!e)
		return NULL;
	*vlen = (size_t)(e - v);
	if (next)
		*next = e + cl;
	return v;
}

static size_t entity_decode(const char *v, size_t vl, char *out)
{
	static const struct {
		const char *ent;
		char ch;
	} ents[] = { { "&amp;", '&' },
		     { "&lt;", '<' },
		     { "&gt;", '>' },
		     { "&quot;", '"' },
		     { "&apos;", '\'' } };
	size_t n = 0;

	for (size_t i = 0; i < vl;) {
		size_t k = 0;
		for (; k < sizeof(ents) / sizeof(ents[0]); k++) {
			size_t el = strlen(ents[k].ent);
			if (vl - i >= el && memcmp(v + i, ents[k].ent, el) == 0) {
				out[n++] = ents[k].ch;
				i += el;
				break;
			}
		}
		if (k == sizeof(ents) / sizeof(ents[0]))
			out[n++] = v[i++];
	}
	return n;
}

bool objs_xml_get(const char *p, const char *end, const char *tag, char *out, size_t cap)
{
	size_t vl;
	const char *v = objs_xml_find(p, end, tag, &vl, NULL);

	if (!v || vl >= cap)
		return false;
	out[entity_decode(v, vl, out)] = 0; /* decoding only shortens */
	return true;
}

void objs_crc32c_b64(uint32_t crc, char out[9])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char be[4] = { crc >> 24, crc >> 16, crc >> 8, crc };
	uint32_t v = (uint32_t)be[0] << 16 | (uint32_t)be[1] << 8 | be[2];

	out[0] = b64[v >> 18 & 63];
	out[1] = b64[v >> 12 & 63];
	out[2] = b64[v >> 6 & 63];
	out[3] = b64[v & 63];
	v = (uint32_t)be[3] << 16;
	out[4] = b64[v >> 18 & 63];
	out[5] = b64[v >> 12 & 63];
	out[6] = '=';
	out[7] = '=';
	out[8] = 0;
}

/* S3's bucket rules: 3..63 of [a-z0-9.-], starting and ending with a letter or digit. */
static bool bucket_is_valid(const char *b, size_t n)
{
	if (n < 3 || n > OBJS_BUCKET_MAX_BYTES)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = b[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (!alnum && ((ch != '-' && ch != '.') || i == 0 || i == n - 1))
			return false;
	}
	return true;
}

int objs_url_parse(const char *s, struct objs_url *u, struct objs_error *err)
{
	const char *b, *slash;
	size_t bl;

	memset(u, 0, sizeof(*u));
	if (strncmp(s, "s3://", 5) != 0) {
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "%s: not an s3:// URL (write s3://BUCKET/PREFIX)", s);
		return -EINVAL;
	}
	b = s + 5;
	slash = strchr(b, '/');
	bl = slash ? (size_t)(slash - b) : strlen(b);
	if (!bucket_is_valid(b, bl)) {
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "%s: bad bucket name (3 to 63 of a-z 0-9 . -, starting and ending "
			       "with a letter or digit)",
			       s);
		return -EINVAL;
	}
	memcpy(u->bucket, b, bl);
	if (slash) {
		if (strlen(slash + 1) > OBJS_KEY_MAX_BYTES / 2) { /* room for the file names */
			objs_error_set(err, OBJS_ERR_CONFIG, "%s: prefix longer than %d bytes", s,
				       OBJS_KEY_MAX_BYTES / 2);
			return -EINVAL;
		}
		snprintf(u->prefix, sizeof(u->prefix), "%s", slash + 1);
	}
	return 0;
}

const char *objs_class_name(enum objs_class cls)
{
	static const char *const names[] = {
		[OBJS_OK] = "ok",
		[OBJS_ERR_CONFIG] = "config",
		[OBJS_ERR_CREDENTIALS] = "credentials",
		[OBJS_ERR_NO_BUCKET] = "no-bucket",
		[OBJS_ERR_NO_KEY] = "no-key",
		[OBJS_ERR_CHECKSUM] = "checksum",
		[OBJS_ERR_TEMPFAIL] = "tempfail",
		[OBJS_ERR_UNSUPPORTED] = "unsupported",
		[OBJS_ERR_PROTOCOL] = "protocol",
		[OBJS_ERR_TOO_LARGE] = "too-large",
	};
	return (unsigned)cls < sizeof(names) / sizeof(names[0]) ? names[cls] : "?";
}

int objs_exit_code(enum objs_class cls)
{
	static const int codes[] = {
		[OBJS_OK] = 0,
		[OBJS_ERR_CONFIG] = 78,
		[OBJS_ERR_CREDENTIALS] = 77,
		[OBJS_ERR_NO_BUCKET] = 69,
		[OBJS_ERR_NO_KEY] = 66,
		[OBJS_ERR_CHECKSUM] = 65,
		[OBJS_ERR_TEMPFAIL] = 75,
		[OBJS_ERR_UNSUPPORTED] = 69,
		[OBJS_ERR_PROTOCOL] = 76,
		[OBJS_ERR_TOO_LARGE] = 70,
	};
	return (unsigned)cls < sizeof(codes) / sizeof(codes[0]) ? codes[cls] : 70;
}
