/*
 * meta.c: meta protocol replies (VA/HD/EN/NS/EX/NF/MN and the error lines).
 *
 * A reply is a status line "<code>[ <len>] <flag>*\r\n", followed for VA by <len> value
 * bytes and "\r\n". Returned flags are letters with glued arguments (k<key>, f<flags>,
 * t<ttl>, c<cas>, O<opaque>) or bare (b). Flags mcwarm did not ask for are ignored.
 * Every length is checked before use: a VA longer than the caller's limit is an error,
 * never a read past the buffer.
 */
#include "proto_private.h"

static enum mcp_status parse_flag(const char *tok, size_t n, struct mcp_meta_reply *out)
{
	const char *arg = tok + 1;
	size_t arg_len = n - 1;
	int64_t ttl;
	uint64_t v;

	switch (tok[0]) {
	case 'b':
		if (arg_len != 0)
			return MCP_ERR_SYNTAX;
		out->key_b64 = true;
		return MCP_OK;
	case 'k':
		if (arg_len == 0 || arg_len > MCP_KEY_MAX)
			return arg_len == 0 ? MCP_ERR_SYNTAX : MCP_ERR_TOO_LONG;
		out->has_key = true;
		out->key = arg;
		out->key_len = arg_len;
		return MCP_OK;
	case 'f':
		if (!mcp_parse_u64(arg, arg_len, &v) || v > UINT32_MAX)
			return MCP_ERR_RANGE;
		out->has_client_flags = true;
		out->client_flags = (uint32_t)v;
		return MCP_OK;
	case 't':
		if (!mcp_parse_i64(arg, arg_len, &ttl) || ttl < -1)
			return MCP_ERR_RANGE;
		out->has_ttl = true;
		out->ttl = ttl;
		return MCP_OK;
	case 'c':
		if (!mcp_parse_u64(arg, arg_len, &out->cas))
			return MCP_ERR_RANGE;
		out->has_cas = true;
		return MCP_OK;
	case 'O':
		if (arg_len > MCP_OPAQUE_MAX || !mcp_parse_u64(arg, arg_len, &out->opaque))
			return MCP_ERR_RANGE;
		out->has_opaque = true;
		return MCP_OK;
	default:
		if ((tok[0] >= 'a' && tok[0] <= 'z') || (tok[0] >= 'A' && tok[0] <= 'Z'))
			return MCP_OK; /* a flag we did not request */
		return MCP_ERR_SYNTAX;
	}
}

static bool code_is(const char *s, size_t n, const char *code)
{
	size_t c = strlen(code);
	return n >= c && memcmp(s, code, c) == 0 && (n == c || s[c] == ' ');
}

static enum mcp_status parse_error_line(const char *s, size_t n, size_t skip,
					enum mcp_reply_code code, struct mcp_meta_reply *out)
{
	out->code = code;
	out->msg = s + (skip < n ? skip : n);
	out->msg_len = skip < n ? n - skip : 0;
	return MCP_OK;
}

static enum mcp_status classify(const char *s, size_t n, struct mcp_meta_reply *out, bool *has_len)
{
	static const struct {
		const char *code;
		enum mcp_reply_code rc;
	} codes[] = {
		{ "VA", MCP_RC_VA }, { "HD", MCP_RC_HD }, { "EN", MCP_RC_EN }, { "NS", MCP_RC_NS },
		{ "EX", MCP_RC_EX }, { "NF", MCP_RC_NF }, { "MN", MCP_RC_MN },
	};
	*has_len = false;
	if (n >= 2 && s[0] == 'V' && s[1] == 'A' && (n == 2 || s[2] == ' ')) { /* nearly all */
		out->code = MCP_RC_VA;
		*has_len = true;
		return MCP_OK;
	}
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (code_is(s, n, codes[i].code)) {
			out->code = codes[i].rc;
			*has_len = codes[i].rc == MCP_RC_VA;
			return MCP_OK;
		}
	}
	if (code_is(s, n, "CLIENT_ERROR"))
		return parse_error_line(s, n, 13, MCP_RC_CLIENT_ERROR, out);
	if (code_is(s, n, "SERVER_ERROR"))
		return parse_error_line(s, n, 13, MCP_RC_SERVER_ERROR, out);
	if (code_is(s, n, "ERROR"))
		return parse_error_line(s, n, 6, MCP_RC_ERROR, out);
	return MCP_ERR_SYNTAX;
}

/* Digits from *p up to the next space or the end; false on anything else, on none, or
 * on more than max_digits (the general parser then decides, with its own limits). */
static bool digits_to(const char **p, const char *end, size_t max_digits, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	size_t n = 0;
	for (; s < end && *s != ' '; s++, n++) {
		unsigned d = (unsigned)(unsigned char)*s - '0';
		if (d > 9 || n == max_digits)
			return false;
		v = v * 10 + d;
	}
	if (n == 0)
		return false;
	*p = s;
	*out = v;
	return true;
}

static bool flag_at(const char **p, const char *end, char flag)
{
	if (end - *p < 3 || (*p)[0] != ' ' || (*p)[1] != flag)
		return false;
	*p += 2;
	return true;
}

/* The status line of a VA to mcwarm's own mg, as memcached writes it (flags in the order
 * asked): "VA <len> k<key>[ b] f<flags> t<ttl> O<opaque>", n bytes without the "\r\n".
 * Read in one pass; false, with nothing set, for any other shape (the general loop reads
 * it, at about twice the cost). Limits are the general loop's, or tighter. */
static bool va_in_order(const char *s, size_t n, struct mcp_meta_reply *out)
{
	const char *p = s + 3, *end = s + n; /* after "VA " */
	uint64_t vlen, flags, ttl, opaque;
	bool neg = false, b64 = false;
	if (!digits_to(&p, end, 19, &vlen) || !flag_at(&p, end, 'k'))
		return false;
	const char *key = p;
	p = memchr(key, ' ', (size_t)(end - key));
	if (p == NULL)
		return false;
	size_t key_len = (size_t)(p - key);
	if (key_len == 0 || key_len > MCP_KEY_MAX)
		return false;
	if (end - p >= 2 && p[1] == 'b' && (end - p == 2 || p[2] == ' ')) {
		b64 = true;
		p += 2;
	}
	if (!flag_at(&p, end, 'f') || !digits_to(&p, end, 10, &flags) || flags > UINT32_MAX ||
	    !flag_at(&p, end, 't'))
		return false;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (!digits_to(&p, end, 18, &ttl) || (neg && ttl != 1) || !flag_at(&p, end, 'O') ||
	    !digits_to(&p, end, 19, &opaque) || p != end)
		return false;
	out->value_len = (size_t)vlen;
	out->has_key = true;
	out->key = key;
	out->key_len = key_len;
	out->key_b64 = b64;
	out->has_client_flags = true;
	out->client_flags = (uint32_t)flags;
	out->has_ttl = true;
	out->ttl = neg ? -1 : (int64_t)ttl;
	out->has_opaque = true;
	out->opaque = opaque;
	return true;
}

enum mcp_status mcp_meta_reply_parse(const char *buf, size_t len, size_t value_len_max,
				     struct mcp_meta_reply *out)
{
	size_t scan = len < MCP_META_LINE_MAX ? len : MCP_META_LINE_MAX;
	const char *nl;
	bool has_len;

	MCP_ASSERT(out != NULL && (buf != NULL || len == 0));
	out->has_client_flags = out->has_ttl = out->has_cas = out->has_opaque = false;
	out->has_key = out->key_b64 = false;
	out->value_len = out->total_len = 0;
	out->value = NULL;
	nl = memchr(buf, '\n', scan);
	if (nl == NULL)
		return len >= MCP_META_LINE_MAX ? MCP_ERR_TOO_LONG : MCP_NEED_MORE;
	size_t line_len = (size_t)(nl - buf) + 1;
	if (line_len < 2 || buf[line_len - 2] != '\r')
		return MCP_ERR_SYNTAX;
	size_t n = line_len - 2;
	out->line_len = line_len;
	out->total_len = line_len;

	enum mcp_status st = classify(buf, n, out, &has_len);
	if (st != MCP_OK || out->code >= MCP_RC_CLIENT_ERROR)
		return st;

	size_t pos = 2;
	const char *tok;
	size_t tok_len;
	bool fast = has_len && va_in_order(buf, n, out);
	if (fast) {
		if (out->value_len > value_len_max)
			return MCP_ERR_TOO_LONG;
	} else if (has_len) {
		uint64_t vlen;
		if (!mcp_next_token(buf, n, &pos, &tok, &tok_len))
			return MCP_ERR_SYNTAX;
		if (!mcp_parse_u64(tok, tok_len, &vlen))
			return MCP_ERR_SYNTAX;
		if (vlen > value_len_max)
			return MCP_ERR_TOO_LONG;
		out->value_len = (size_t)vlen;
	}
	while (!fast && mcp_next_token(buf, n, &pos, &tok, &tok_len)) {
		st = parse_flag(tok, tok_len, out);
		if (st != MCP_OK)
			return st;
	}
	if (!has_len)
		return MCP_OK;

	out->total_len = line_len + out->value_len + 2;
	if (len < out->total_len)
		return MCP_NEED_MORE;
	out->value = buf + line_len;
	if (buf[out->total_len - 2] != '\r' || buf[out->total_len - 1] != '\n')
		return MCP_ERR_SYNTAX;
	return MCP_OK;
}
