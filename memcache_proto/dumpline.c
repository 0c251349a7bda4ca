/*
 * dumpline.c: one line of a key dump (lru_crawler metadump or mgdump) at a time.
 *
 * metadump: "key=<pct key> exp=<abs|-1> la=.. cas=.. fetch=.. cls=.. size=..\n", then
 * "END\r\n". mgdump: "mg <key>[ b]\r\n", then "EN\r\n". Lines end in "\n" or "\r\n"; a
 * leading "OK" is skipped; unknown name=value tokens are ignored so newer servers (which
 * append flags=) parse too. Single-line replies (BUSY, ERROR, CLIENT_ERROR, BADCLASS,
 * NOTSTARTED) are reported as such, never as keys.
 */
#include "proto_private.h"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a metadump key. A decoded byte needs base64 only if it came from an escape,
 * because metadump escapes everything outside [A-Za-z0-9._~-]: so the check is free.
 * Most keys hold no escape at all: runs between escapes are copied whole. */
static enum mcp_status decode_key(const char *val, size_t val_len, struct mcp_dump_item *out)
{
	size_t o = 0, i = 0;
	bool needs_b64 = false;
	if (val_len == 0)
		return MCP_ERR_SYNTAX;
	if (val_len > 3 * MCP_KEY_MAX)
		return MCP_ERR_TOO_LONG;
	for (;;) {
		const char *pct = memchr(val + i, '%', val_len - i);
		size_t run = (pct != NULL ? (size_t)(pct - val) : val_len) - i;
		if (o + run > MCP_KEY_MAX)
			return MCP_ERR_TOO_LONG;
		memcpy(out->key + o, val + i, run);
		o += run;
		i += run;
		if (pct == NULL)
			break;
		if (o == MCP_KEY_MAX)
			return MCP_ERR_TOO_LONG;
		int hi = i + 2 < val_len ? hex_digit(val[i + 1]) : -1;
		int lo = i + 2 < val_len ? hex_digit(val[i + 2]) : -1;
		if (hi < 0 || lo < 0)
			return MCP_ERR_SYNTAX;
		uint8_t b = (uint8_t)(hi << 4 | lo);
		needs_b64 |= b <= 0x20 || b == 0x7f;
		out->key[o++] = b;
		i += 3;
		if (i == val_len)
			break;
	}
	out->key_len = o;
	out->key_needs_b64 = needs_b64;
	return MCP_OK;
}

static const char *token_end(const char *p, const char *end)
{
	while (p < end && *p != ' ')
		p++;
	return p;
}

/* memcached writes "key=K exp=E la=L cas=C ..." in this order: read so, in one pass (the
 * general loop below tokenizes every field and looks for '=' in each, at about twice the
 * cost per line). False, with nothing decided, for any other shape: the loop takes it. */
static bool metadump_in_order(const char *s, size_t n, struct mcp_dump_item *out,
			      enum mcp_status *st)
{
	const char *end = s + n, *p = s + 4, *e = token_end(p, end); /* after "key=" */
	if (e == end)
		return false;
	*st = decode_key(p, (size_t)(e - p), out);
	if (*st != MCP_OK)
		return true; /* the loop would fail on the same first token */
	p = e + 1;
	if (end - p < 4 || memcmp(p, "exp=", 4) != 0)
		return false;
	p += 4;
	e = token_end(p, end);
	if (e == end || !mcp_parse_i64(p, (size_t)(e - p), &out->exp) || out->exp < -1)
		return false;
	p = e + 1;
	if (end - p < 3 || memcmp(p, "la=", 3) != 0)
		return false;
	e = token_end(p, end);
	if (e == end)
		return false;
	p = e + 1;
	if (end - p < 4 || memcmp(p, "cas=", 4) != 0)
		return false;
	p += 4;
	e = token_end(p, end);
	if (!mcp_parse_u64(p, (size_t)(e - p), &out->cas))
		return false;
	*st = MCP_OK;
	return true;
}

static enum mcp_status parse_metadump_item(const char *s, size_t n, struct mcp_dump_item *out)
{
	enum mcp_status st;
	out->kind = MCP_DUMP_ITEM;
	out->key_b64 = false;
	if (metadump_in_order(s, n, out, &st))
		return st;
	size_t pos = 0;
	const char *tok;
	size_t tok_len;
	bool have_key = false, have_exp = false, have_cas = false;

	out->exp = 0;
	out->cas = 0;
	/* Stop once key, exp and cas are known: the rest (la, fetch, cls, size, and whatever
	 * newer servers add) is not needed, and skipping it halves the work per line. */
	while (!(have_key && have_exp && have_cas) && mcp_next_token(s, n, &pos, &tok, &tok_len)) {
		const char *eq = memchr(tok, '=', tok_len);
		if (eq == NULL)
			return MCP_ERR_SYNTAX;
		size_t name_len = (size_t)(eq - tok);
		const char *val = eq + 1;
		size_t val_len = tok_len - name_len - 1;
		if (name_len != 3)
			continue;
		if (memcmp(tok, "key", 3) == 0) {
			st = decode_key(val, val_len, out);
			if (st != MCP_OK)
				return st;
			have_key = true;
		} else if (memcmp(tok, "exp", 3) == 0) {
			if (!mcp_parse_i64(val, val_len, &out->exp) || out->exp < -1)
				return MCP_ERR_RANGE;
			have_exp = true;
		} else if (memcmp(tok, "cas", 3) == 0) {
			if (!mcp_parse_u64(val, val_len, &out->cas))
				return MCP_ERR_RANGE;
			have_cas = true;
		}
	}
	return have_key ? MCP_OK : MCP_ERR_SYNTAX;
}

static enum mcp_status parse_mgdump_item(const char *s, size_t n, struct mcp_dump_item *out)
{
	size_t pos = 2; /* after "mg" */
	const char *key, *flag;
	size_t key_len, flag_len;

	out->kind = MCP_DUMP_ITEM;
	out->exp = 0;
	out->cas = 0;
	out->key_b64 = false;
	if (!mcp_next_token(s, n, &pos, &key, &key_len))
		return MCP_ERR_SYNTAX;
	if (key_len > MCP_KEY_MAX)
		return MCP_ERR_TOO_LONG;
	while (mcp_next_token(s, n, &pos, &flag, &flag_len)) {
		if (flag_len == 1 && flag[0] == 'b')
			out->key_b64 = true;
		else
			return MCP_ERR_SYNTAX;
	}
	if (out->key_b64) {
		long k = mcp_b64_decode(out->key, sizeof(out->key), key, key_len);
		if (k <= 0)
			return MCP_ERR_SYNTAX;
		out->key_len = (size_t)k;
	} else {
		memcpy(out->key, key, key_len);
		out->key_len = key_len;
	}
	out->key_needs_b64 = out->key_b64 || mcp_key_needs_b64(out->key, out->key_len);
	return MCP_OK;
}

static bool line_is(const char *s, size_t n, const char *word)
{
	size_t w = strlen(word);
	return n == w && memcmp(s, word, w) == 0;
}

enum mcp_status mcp_dump_line_parse(const char *buf, size_t len, size_t *consumed,
				    struct mcp_dump_item *out)
{
	size_t text_len, line_len;
	size_t scan = len < MCP_DUMP_LINE_MAX ? len : MCP_DUMP_LINE_MAX;

	MCP_ASSERT(buf != NULL || len == 0);
	if (!mcp_line_find(buf, scan, &text_len, &line_len))
		return len >= MCP_DUMP_LINE_MAX ? MCP_ERR_TOO_LONG : MCP_NEED_MORE;
	*consumed = line_len;
	out->msg = buf;
	out->msg_len = text_len;
	out->key_len = 0;

	if (mcp_starts_with(buf, text_len, "key="))
		return parse_metadump_item(buf, text_len, out);
	if (mcp_starts_with(buf, text_len, "mg "))
		return parse_mgdump_item(buf, text_len, out);
	if (line_is(buf, text_len, "END") || line_is(buf, text_len, "EN")) {
		out->kind = MCP_DUMP_END;
		return MCP_OK;
	}
	if (line_is(buf, text_len, "OK")) {
		out->kind = MCP_DUMP_SKIP;
		return MCP_OK;
	}
	/* BUSY: another crawler job runs; "ERROR locked try again later": a hash dump found
	 * the hash table locked (it is expanding, as after a large load) */
	if (mcp_starts_with(buf, text_len, "BUSY") ||
	    mcp_starts_with(buf, text_len, "ERROR locked")) {
		out->kind = MCP_DUMP_BUSY;
		return MCP_OK;
	}
	if (mcp_starts_with(buf, text_len, "ERROR") ||
	    mcp_starts_with(buf, text_len, "CLIENT_ERROR") ||
	    mcp_starts_with(buf, text_len, "SERVER_ERROR") ||
	    mcp_starts_with(buf, text_len, "BADCLASS") ||
	    mcp_starts_with(buf, text_len, "NOTSTARTED")) {
		out->kind = MCP_DUMP_ERROR;
		return MCP_OK;
	}
	return MCP_ERR_SYNTAX;
}
