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
	if (has_len) {
		uint64_t vlen;
		if (!mcp_next_token(buf, n, &pos, &tok, &tok_len))
			return MCP_ERR_SYNTAX;
		if (!mcp_parse_u64(tok, tok_len, &vlen))
			return MCP_ERR_SYNTAX;
		if (vlen > value_len_max)
			return MCP_ERR_TOO_LONG;
		out->value_len = (size_t)vlen;
	}
	while (mcp_next_token(buf, n, &pos, &tok, &tok_len)) {
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
