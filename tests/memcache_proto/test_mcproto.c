/*
 * test_mcproto.c: the protocol parsers and encoders. Every parser is fed each prefix of a
 * valid stream (a partial read at every byte boundary) and must answer NEED_MORE until the
 * whole unit is there, then the same result as with the whole stream; malformed input
 * must give an MCP_ERR_* status, never a crash or a read past the given length (the
 * sanitizer build checks the latter: inputs are copied to exact-size heap buffers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mcproto.h"

/* An exact-size heap copy, so ASan catches any read past len. */
static char *exact(const char *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	memcpy(p, s, len);
	return p;
}

static enum mcp_status dump_parse(const char *s, size_t len, size_t *used, struct mcp_dump_item *it)
{
	char *p = exact(s, len);
	enum mcp_status st = mcp_dump_line_parse(p, len, used, it);
	if (st == MCP_OK && it->kind != MCP_DUMP_ITEM)
		it->msg = NULL; /* points into p, freed below */
	free(p);
	return st;
}

static void test_metadump_line(void **state)
{
	(void)state;
	const char *line = "key=a%3Db%26c%2Fd%2Be%25%00%20%0A exp=-1 la=1700000000 cas=42 "
			   "fetch=no cls=1 size=71 flags=7\n";
	struct mcp_dump_item it;
	size_t used;
	size_t len = strlen(line);
	assert_int_equal(dump_parse(line, len, &used, &it), MCP_OK);
	assert_int_equal(used, len);
	assert_int_equal(it.kind, MCP_DUMP_ITEM);
	assert_int_equal(it.key_len, 13);
	assert_memory_equal(it.key, "a=b&c/d+e%\0 \n", 13);
	assert_int_equal(it.exp, -1);
	assert_int_equal(it.cas, 42);
	/* every shorter prefix lacks the newline */
	for (size_t n = 0; n < len; n++)
		assert_int_equal(dump_parse(line, n, &used, &it), MCP_NEED_MORE);
}

static void test_metadump_stream_boundaries(void **state)
{
	(void)state;
	const char *stream = "OK\r\nkey=k1 exp=1800000000 la=1 cas=1 fetch=yes cls=1 size=1\n"
			     "key=k%C3%A9 exp=-1 la=1 cas=2 fetch=no cls=2 size=2\nEND\r\n";
	size_t len = strlen(stream);
	/* parse the stream fed in two parts split at every byte */
	for (size_t split = 0; split <= len; split++) {
		char buf[512];
		size_t have = 0, pos = 0, keys = 0;
		bool end = false;
		memcpy(buf, stream, split);
		have = split;
		for (int round = 0; round < 2 && !end; round++) {
			for (;;) {
				struct mcp_dump_item it;
				size_t used;
				enum mcp_status st = dump_parse(buf + pos, have - pos, &used, &it);
				if (st == MCP_NEED_MORE)
					break;
				assert_int_equal(st, MCP_OK);
				pos += used;
				if (it.kind == MCP_DUMP_ITEM)
					keys++;
				if (it.kind == MCP_DUMP_END) {
					end = true;
					break;
				}
			}
			memcpy(buf + have, stream + split, len - split);
			have = len;
		}
		assert_true(end);
		assert_int_equal(keys, 2);
		assert_int_equal(pos, len);
	}
}

static void test_mgdump_lines(void **state)
{
	(void)state;
	struct mcp_dump_item it;
	size_t used;
	assert_int_equal(dump_parse("mg plain\r\n", 10, &used, &it), MCP_OK);
	assert_int_equal(it.key_len, 5);
	assert_false(it.key_b64);
	assert_int_equal(dump_parse("mg AAEgc3AK b\r\n", 15, &used, &it), MCP_OK);
	assert_true(it.key_b64);
	assert_int_equal(it.key_len, 6);
	assert_memory_equal(it.key, "\x00\x01 sp\n", 6);
	assert_int_equal(dump_parse("EN\r\n", 4, &used, &it), MCP_OK);
	assert_int_equal(it.kind, MCP_DUMP_END);
}

static void test_dump_errors_and_replies(void **state)
{
	(void)state;
	struct mcp_dump_item it;
	size_t used;
	const char *busy = "BUSY currently processing crawler request\r\n";
	assert_int_equal(dump_parse(busy, strlen(busy), &used, &it), MCP_OK);
	assert_int_equal(it.kind, MCP_DUMP_BUSY);
	/* a hash dump while the hash table expands (memcached's crawler.c): retried too */
	const char *locked = "ERROR locked try again later\r\n";
	assert_int_equal(dump_parse(locked, strlen(locked), &used, &it), MCP_OK);
	assert_int_equal(it.kind, MCP_DUMP_BUSY);
	const char *e1 = "ERROR metadump not allowed\r\n";
	assert_int_equal(dump_parse(e1, strlen(e1), &used, &it), MCP_OK);
	assert_int_equal(it.kind, MCP_DUMP_ERROR);
	const char *e2 = "CLIENT_ERROR lru crawler disabled\r\n";
	assert_int_equal(dump_parse(e2, strlen(e2), &used, &it), MCP_OK);
	assert_int_equal(it.kind, MCP_DUMP_ERROR);

	const char *bad[] = {
		"key=%zz exp=1\n",		       /* bad escape */
		"key=%4 exp=1\n",		       /* truncated escape */
		"key= exp=1\n",			       /* empty key */
		"key=a exp=notanumber\n",	       /* bad number */
		"key=a exp=-5\n",		       /* impossible expiry */
		"key=a cas=99999999999999999999999\n", /* overflow */
		"exp=1 la=2\n",			       /* no key */
		"garbage line\n",		       /* unknown reply */
		"key=a novalue\n",		       /* token without = */
		"mg k b\r\n",			       /* b with a key that is not base64 */
		"mg k x\r\n",			       /* unknown flag */
		/* memcached's own order (read in one pass), each field wrong */
		"key=%zz exp=1 la=1 cas=1\n",
		"key=a exp=-5 la=1 cas=1\n",
		"key=a exp=x la=1 cas=1\n",
		"key=a exp=1 la=1 cas=99999999999999999999999\n",
		"key=a exp=1 la=1 cas=-1\n",
		"key=a exp=1 la=1 cas=\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum mcp_status st = dump_parse(bad[i], strlen(bad[i]), &used, &it);
		assert_true(st == MCP_ERR_SYNTAX || st == MCP_ERR_RANGE || st == MCP_ERR_TOO_LONG);
	}
}

/* A line in memcached's order is read in one pass, any other order by the general loop:
 * both decide the same. */
static void test_metadump_field_orders_agree(void **state)
{
	(void)state;
	const char *lines[][2] = {
		{ "key=k%20x exp=1800000000 la=5 cas=77 fetch=no cls=1 size=3\n",
		  "key=k%20x la=5 cas=77 fetch=no exp=1800000000 cls=1 size=3\n" },
		{ "key=plain exp=-1 la=0 cas=0\n", "key=plain  exp=-1 cas=0 la=0\n" },
		{ "key=a exp=0 la=1 cas=18446744073709551615 flags=5\n",
		  "key=a cas=18446744073709551615 exp=0\n" },
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct mcp_dump_item a, b;
		size_t ua, ub;
		assert_int_equal(mcp_dump_line_parse(lines[i][0], strlen(lines[i][0]), &ua, &a),
				 MCP_OK);
		assert_int_equal(mcp_dump_line_parse(lines[i][1], strlen(lines[i][1]), &ub, &b),
				 MCP_OK);
		assert_int_equal(a.kind, MCP_DUMP_ITEM);
		assert_int_equal(b.kind, MCP_DUMP_ITEM);
		assert_int_equal(a.key_len, b.key_len);
		assert_memory_equal(a.key, b.key, a.key_len);
		assert_int_equal(a.key_needs_b64, b.key_needs_b64);
		assert_int_equal(a.exp, b.exp);
		assert_true(a.cas == b.cas);
		assert_int_equal(ua, strlen(lines[i][0]));
	}
}

static void test_dump_line_too_long(void **state)
{
	(void)state;
	size_t n = MCP_DUMP_LINE_MAX + 10;
	char *p = malloc(n);
	memset(p, 'a', n);
	struct mcp_dump_item it;
	size_t used;
	assert_int_equal(mcp_dump_line_parse(p, n, &used, &it), MCP_ERR_TOO_LONG);
	assert_int_equal(mcp_dump_line_parse(p, 100, &used, &it), MCP_NEED_MORE);
	/* a key that decodes to more than 250 bytes */
	char line[1024] = "key=";
	for (int i = 0; i < 251; i++)
		strcat(line, "%41");
	strcat(line, " exp=-1\n");
	assert_int_equal(mcp_dump_line_parse(line, strlen(line), &used, &it), MCP_ERR_TOO_LONG);
	free(p);
}

static enum mcp_status meta_parse(const char *s, size_t len, size_t vmax,
				  struct mcp_meta_reply *rep, char **keep)
{
	*keep = exact(s, len);
	return mcp_meta_reply_parse(*keep, len, vmax, rep);
}

static void test_meta_value_reply(void **state)
{
	(void)state;
	const char *r = "VA 5 kd1 f4294967295 t299 c997107 O12 b\r\nhello\r\n";
	size_t len = strlen(r);
	struct mcp_meta_reply rep;
	char *p;
	assert_int_equal(meta_parse(r, len, 1024, &rep, &p), MCP_OK);
	assert_int_equal(rep.code, MCP_RC_VA);
	assert_int_equal(rep.value_len, 5);
	assert_int_equal(rep.total_len, len);
	assert_memory_equal(rep.value, "hello", 5);
	assert_true(rep.has_client_flags);
	assert_int_equal(rep.client_flags, 4294967295u);
	assert_int_equal(rep.ttl, 299);
	assert_int_equal(rep.cas, 997107);
	assert_int_equal(rep.opaque, 12);
	assert_true(rep.key_b64);
	assert_int_equal(rep.key_len, 2);
	free(p);
	/* every prefix: NEED_MORE; once the status line is in, total_len is known */
	size_t line_len = strchr(r, '\n') - r + 1;
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(meta_parse(r, n, 1024, &rep, &p), MCP_NEED_MORE);
		if (n >= line_len) {
			assert_int_equal(rep.code, MCP_RC_VA);
			assert_int_equal(rep.total_len, len);
		}
		free(p);
	}
}

/* A VA in the order mcwarm's mg asks for is read in one pass, any other shape by the
 * general loop: both decide the same, prefixes included. */
static void test_meta_va_orders_agree(void **state)
{
	(void)state;
	const char *pairs[][2] = {
		{ "VA 5 kuser:1 f7 t299 O12\r\nhello\r\n",
		  "VA 5 O12 t299 f7 kuser:1\r\nhello\r\n" },
		{ "VA 0 ka b f4294967295 t-1 O0\r\n\r\n", "VA 0 b ka t-1 O0 f4294967295\r\n\r\n" },
		{ "VA 3 kx f0 t0 O18446744073709551615\r\nabc\r\n",
		  "VA 3 f0 kx O18446744073709551615 t0\r\nabc\r\n" },
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct mcp_meta_reply a, b;
		char *pa, *pb;
		size_t la = strlen(pairs[i][0]), lb = strlen(pairs[i][1]);
		assert_int_equal(meta_parse(pairs[i][0], la, 1024, &a, &pa), MCP_OK);
		assert_int_equal(meta_parse(pairs[i][1], lb, 1024, &b, &pb), MCP_OK);
		assert_int_equal(a.code, MCP_RC_VA);
		assert_int_equal(a.value_len, b.value_len);
		assert_memory_equal(a.value, b.value, a.value_len);
		assert_int_equal(a.total_len, la);
		assert_true(a.has_key && b.has_key && a.has_client_flags && a.has_ttl);
		assert_true(a.has_opaque && b.has_opaque && !a.has_cas);
		assert_int_equal(a.key_len, b.key_len);
		assert_memory_equal(a.key, b.key, a.key_len);
		assert_int_equal(a.key_b64, b.key_b64);
		assert_int_equal(a.client_flags, b.client_flags);
		assert_int_equal(a.ttl, b.ttl);
		assert_true(a.opaque == b.opaque);
		free(pa);
		free(pb);
		for (size_t n = 0; n < la; n++) {
			assert_int_equal(meta_parse(pairs[i][0], n, 1024, &a, &pa), MCP_NEED_MORE);
			free(pa);
		}
	}
	/* in mg's order and still wrong: the same errors as in any order */
	const char *bad[] = {
		"VA 2000 kx f1 t1 O1\r\n",	       /* above the caller's limit */
		"VA 1 kx f99999999999 t1 O1\r\nx\r\n", /* flags above 32 bits */
		"VA 1 kx f1 t-7 O1\r\nx\r\n",	       /* impossible ttl */
		"VA 1 kx f1 t1 O1\r\nxYZ",	       /* value not followed by CRLF */
		"VA 1 kx f1 t1 O1 \x01\r\nx\r\n",      /* garbage after the opaque */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mcp_meta_reply rep;
		char *p;
		enum mcp_status st = meta_parse(bad[i], strlen(bad[i]), 1024, &rep, &p);
		assert_true(st == MCP_ERR_SYNTAX || st == MCP_ERR_RANGE || st == MCP_ERR_TOO_LONG);
		free(p);
	}
}

static void test_meta_other_replies(void **state)
{
	(void)state;
	struct {
		const char *text;
		enum mcp_reply_code code;
	} cases[] = {
		{ "MN\r\n", MCP_RC_MN },
		{ "HD O3\r\n", MCP_RC_HD },
		{ "EN O77 kmissing\r\n", MCP_RC_EN },
		{ "NS O3\r\n", MCP_RC_NS },
		{ "EX\r\n", MCP_RC_EX },
		{ "NF\r\n", MCP_RC_NF },
		{ "CLIENT_ERROR bad command line format\r\n", MCP_RC_CLIENT_ERROR },
		{ "SERVER_ERROR object too large for cache\r\n", MCP_RC_SERVER_ERROR },
		{ "ERROR\r\n", MCP_RC_ERROR },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mcp_meta_reply rep;
		char *p;
		size_t len = strlen(cases[i].text);
		assert_int_equal(meta_parse(cases[i].text, len, 1024, &rep, &p), MCP_OK);
		assert_int_equal(rep.code, cases[i].code);
		assert_int_equal(rep.total_len, len);
		free(p);
	}
	struct mcp_meta_reply rep;
	char *p;
	const char *se = "SERVER_ERROR object too large for cache\r\n";
	assert_int_equal(meta_parse(se, strlen(se), 1024, &rep, &p), MCP_OK);
	assert_int_equal(rep.msg_len, strlen("object too large for cache"));
	assert_memory_equal(rep.msg, "object too large for cache", rep.msg_len);
	free(p);
}

static void test_meta_malformed(void **state)
{
	(void)state;
	struct {
		const char *text;
		size_t vmax;
	} bad[] = {
		{ "VA 5 f1\r\nhelloXX", 1024 },		/* value not followed by CRLF */
		{ "VA 99999999999 f1\r\n", 1024 },	/* huge length */
		{ "VA 2000 f1\r\n", 1024 },		/* above the caller's limit */
		{ "VA x f1\r\n", 1024 },		/* length not a number */
		{ "VA\r\n", 1024 },			/* no length */
		{ "ZZ\r\n", 1024 },			/* unknown code */
		{ "MN\n", 1024 },			/* missing CR */
		{ "VA 1 f99999999999\r\nx\r\n", 1024 }, /* flags above 32 bits */
		{ "VA 1 t-7\r\nx\r\n", 1024 },		/* impossible ttl */
		{ "VA 1 O12345678901234567890123456789012\r\nx\r\n", 1024 }, /* opaque > 31 */
		{ "HD \x01\r\n", 1024 },				     /* garbage flag */
		{ "VA 1 k\r\nx\r\n", 1024 },				     /* empty key */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mcp_meta_reply rep;
		char *p;
		enum mcp_status st =
		    meta_parse(bad[i].text, strlen(bad[i].text), bad[i].vmax, &rep, &p);
		assert_true(st == MCP_ERR_SYNTAX || st == MCP_ERR_RANGE || st == MCP_ERR_TOO_LONG);
		free(p);
	}
	/* a status line that never ends */
	size_t n = MCP_META_LINE_MAX + 1;
	char *p = malloc(n);
	memset(p, 'V', n);
	struct mcp_meta_reply rep;
	assert_int_equal(mcp_meta_reply_parse(p, n, 1024, &rep), MCP_ERR_TOO_LONG);
	free(p);
}

static void test_base64_and_pct(void **state)
{
	(void)state;
	uint8_t raw[256];
	char enc[400];
	uint8_t dec[256];
	for (size_t len = 0; len <= 40; len++) {
		for (size_t i = 0; i < len; i++)
			raw[i] = (uint8_t)(i * 37 + len);
		size_t e = mcp_b64_encode(enc, sizeof(enc), raw, len);
		assert_int_equal(e, (len + 2) / 3 * 4);
		long d = mcp_b64_decode(dec, sizeof(dec), enc, e);
		assert_int_equal(d, (long)len);
		assert_memory_equal(dec, raw, len);
		size_t pe = mcp_pct_encode(enc, sizeof(enc), raw, len);
		long pd = mcp_pct_decode(dec, sizeof(dec), enc, pe);
		assert_int_equal(pd, (long)len);
		assert_memory_equal(dec, raw, len);
	}
	assert_int_equal(mcp_b64_decode(dec, sizeof(dec), "AB=C", 4), -1);
	assert_int_equal(mcp_b64_decode(dec, sizeof(dec), "A$CD", 4), -1);
	assert_int_equal(mcp_b64_decode(dec, 2, "AAAA", 4), -1); /* small cap */
	assert_int_equal(mcp_pct_decode(dec, sizeof(dec), "%4", 2), -1);
	assert_int_equal(mcp_pct_decode(dec, sizeof(dec), "%", 1), -1);
	char pct[8];
	assert_int_equal(mcp_pct_encode(pct, sizeof(pct), (const uint8_t *)"a b", 3), 5);
	assert_memory_equal(pct, "a%20b", 5);
}

static void test_keys_and_encoders(void **state)
{
	(void)state;
	char out[MCP_REQ_MAX];
	uint8_t key[300];
	memset(key, 'k', sizeof(key));
	assert_true(mcp_key_is_sendable(key, 250));
	assert_false(mcp_key_is_sendable(key, 251));
	assert_false(mcp_key_is_sendable(key, 0));
	key[0] = ' ';
	assert_true(mcp_key_needs_b64(key, 1));
	assert_true(mcp_key_is_sendable(key, 186));
	assert_false(mcp_key_is_sendable(key, 187));
	assert_int_equal(mcp_mg_encode(out, sizeof(out), key, 187, true, "v", 1), 0);
	assert_int_equal(mcp_mg_encode(out, sizeof(out), key, 186, true, "v", 1), 260);

	size_t n =
	    mcp_mg_encode(out, sizeof(out), (const uint8_t *)"user:1", 6, false, "k f t v u q", 42);
	assert_int_equal(n, strlen("mg user:1 k f t v u q O42\r\n"));
	assert_memory_equal(out, "mg user:1 k f t v u q O42\r\n", n);
	n = mcp_mg_encode(out, sizeof(out), (const uint8_t *)"\x00\x01 sp\n", 6, true, "v", 7);
	assert_memory_equal(out, "mg AAEgc3AK b v O7\r\n", n);
	n = mcp_ms_encode(out, sizeof(out), (const uint8_t *)"d1", 2, false, 5, 295, 17, MCP_MS_ADD,
			  1);
	assert_memory_equal(out, "ms d1 5 T295 F17 ME q O1\r\n", n);
	n = mcp_ms_encode(out, sizeof(out), (const uint8_t *)"d1", 2, true, 0, 0, 4294967295u,
			  MCP_MS_SET, 2);
	assert_memory_equal(out, "ms ZDE= 0 b T0 F4294967295 MS q O2\r\n", n);
	/* too small an output buffer */
	assert_int_equal(
	    mcp_ms_encode(out, 10, (const uint8_t *)"d1", 2, false, 5, 1, 1, MCP_MS_ADD, 1), 0);
}

/* Every byte value at every position of keys of 1 to 40 bytes: the word-at-a-time check
 * agrees with the rule (a byte at or below 0x20, or 0x7f) everywhere. */
static void test_key_needs_b64_every_byte_everywhere(void **state)
{
	(void)state;
	uint8_t key[40];
	for (size_t len = 1; len <= sizeof(key); len++) {
		for (size_t pos = 0; pos < len; pos++) {
			for (unsigned b = 0; b < 256; b++) {
				memset(key, 'a', len);
				key[pos] = (uint8_t)b;
				bool want = b <= 0x20 || b == 0x7f;
				if (mcp_key_needs_b64(key, len) != want)
					fail_msg("len %zu pos %zu byte 0x%02x", len, pos, b);
			}
		}
		memset(key, 0xff, len); /* high bytes never borrow into a false positive */
		assert_false(mcp_key_needs_b64(key, len));
		memset(key, 0x21, len);
		assert_false(mcp_key_needs_b64(key, len));
		memset(key, 0x80, len);
		assert_false(mcp_key_needs_b64(key, len));
	}
}

/* Numbers in requests: every length of decimal, against snprintf. */
static void test_encoded_numbers(void **state)
{
	(void)state;
	const uint64_t vals[] = { 0,
				  1,
				  9,
				  10,
				  11,
				  99,
				  100,
				  101,
				  999,
				  1000,
				  12345,
				  99999,
				  100000,
				  4294967295ull,
				  18446744073709551615ull };
	char out[MCP_REQ_MAX], want[128];
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint64_t v = vals[i];
		uint32_t fl = (uint32_t)(v & 0xffffffffu);
		int64_t ttl = (int64_t)(v >> 2);
		size_t n = mcp_ms_encode(out, sizeof(out), (const uint8_t *)"k", 1, false,
					 (size_t)(v & 0xfffffff), ttl, fl, MCP_MS_ADD, v);
		int w = snprintf(want, sizeof(want), "ms k %llu T%lld F%u ME q O%llu\r\n",
				 (unsigned long long)(v & 0xfffffff), (long long)ttl, fl,
				 (unsigned long long)v);
		assert_int_equal(n, (size_t)w);
		assert_memory_equal(out, want, n);
	}
	for (uint64_t v = 0; v < 100000; v++) {
		size_t n = mcp_ms_encode(out, sizeof(out), (const uint8_t *)"k", 1, false, 1, 0, 0,
					 MCP_MS_ADD, v);
		int w = snprintf(want, sizeof(want), "ms k 1 T0 F0 ME q O%llu\r\n",
				 (unsigned long long)v);
		assert_int_equal(n, (size_t)w);
		assert_memory_equal(out, want, n);
	}
	assert_int_equal(mcp_ms_encode(out, sizeof(out), (const uint8_t *)"k", 1, false, 1, -5, 0,
				       MCP_MS_ADD, 1),
			 strlen("ms k 1 T-5 F0 ME q O1\r\n"));
	assert_memory_equal(out, "ms k 1 T-5 F0 ME q O1\r\n", strlen("ms k 1 T-5 F0 ME q O1\r\n"));
}

static void test_stats(void **state)
{
	(void)state;
	const char *s = "STAT pid 12\r\nSTAT time 1700000000\r\nSTAT item_size_max 1048576\r\n"
			"END\r\n";
	size_t reply;
	const char *v;
	size_t vl;
	for (size_t n = 0; n < strlen(s); n++)
		assert_false(mcp_stats_is_complete(s, n, &reply));
	assert_true(mcp_stats_is_complete(s, strlen(s), &reply));
	assert_int_equal(reply, strlen(s));
	assert_true(mcp_stats_find(s, strlen(s), "time", &v, &vl));
	assert_memory_equal(v, "1700000000", vl);
	assert_false(mcp_stats_find(s, strlen(s), "tim", &v, &vl));
	uint64_t u;
	int64_t i;
	assert_true(mcp_parse_u64("18446744073709551615", 20, &u));
	assert_false(mcp_parse_u64("18446744073709551616", 20, &u));
	assert_true(mcp_parse_i64("-1", 2, &i));
	assert_int_equal(i, -1);
	assert_false(mcp_parse_i64("-", 1, &i));
	assert_false(mcp_parse_u64("", 0, &u));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metadump_line),
		cmocka_unit_test(test_metadump_stream_boundaries),
		cmocka_unit_test(test_metadump_field_orders_agree),
		cmocka_unit_test(test_mgdump_lines),
		cmocka_unit_test(test_dump_errors_and_replies),
		cmocka_unit_test(test_dump_line_too_long),
		cmocka_unit_test(test_meta_value_reply),
		cmocka_unit_test(test_meta_va_orders_agree),
		cmocka_unit_test(test_meta_other_replies),
		cmocka_unit_test(test_meta_malformed),
		cmocka_unit_test(test_base64_and_pct),
		cmocka_unit_test(test_keys_and_encoders),
		cmocka_unit_test(test_key_needs_b64_every_byte_everywhere),
		cmocka_unit_test(test_encoded_numbers),
		cmocka_unit_test(test_stats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
