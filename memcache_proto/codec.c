/*
 * codec.c: the byte-level codecs of the protocol: key classification, base64 (the meta
 * b flag), percent-encoding (metadump keys) and strict decimal parsing. Pure functions
 * over caller buffers; no state.
 */
#include "proto_private.h"

const char *mcp_status_name(enum mcp_status s)
{
	switch (s) {
	case MCP_OK:
		return "ok";
	case MCP_NEED_MORE:
		return "need more input";
	case MCP_ERR_SYNTAX:
		return "syntax error";
	case MCP_ERR_TOO_LONG:
		return "too long";
	case MCP_ERR_RANGE:
		return "number out of range";
	}
	return "unknown status";
}

/* Does any byte of x lie at or below 0x20 or equal 0x7f? Eight bytes at once: (v - 1s*n)
 * & ~v & 0x80s is non-zero exactly when some byte of v is below n (n <= 0x80). */
static inline bool word_needs_b64(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t del = x ^ (ones * 0x7f);
	return (((x - ones * 0x21) & ~x) | ((del - ones) & ~del)) & highs;
}

bool mcp_key_needs_b64(const uint8_t *key, size_t key_len)
{
	size_t i = 0;
	for (; i + 8 <= key_len; i += 8) {
		uint64_t w;
		memcpy(&w, key + i, 8);
		if (word_needs_b64(w))
			return true;
	}
	for (; i < key_len; i++) {
		if (key[i] <= 0x20 || key[i] == 0x7f)
			return true;
	}
	return false;
}

bool mcp_key_is_sendable(const uint8_t *key, size_t key_len)
{
	if (key_len == 0)
		return false;
	if (mcp_key_needs_b64(key, key_len))
		return key_len <= MCP_KEY_B64_RAW_MAX;
	return key_len <= MCP_KEY_MAX;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mcp_b64_encode(char *out, size_t cap, const uint8_t *in, size_t in_len)
{
	size_t need = (in_len + 2) / 3 * 4;
	if (need > cap)
		return 0;
	size_t o = 0, i = 0;
	for (; i + 3 <= in_len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (i < in_len) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < in_len)
			v |= (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < in_len ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long mcp_b64_decode(uint8_t *out, size_t cap, const char *in, size_t in_len)
{
	if (in_len % 4 != 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < in_len; i += 4) {
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			char c = in[i + j];
			if (c == '=' && i + 4 == in_len && j >= 2) {
				v[j] = 0;
				pad++;
			} else if (pad > 0) {
				return -1; /* data after padding */
			} else {
				v[j] = b64_value(c);
				if (v[j] < 0)
					return -1;
			}
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		size_t n = 3 - (size_t)pad;
		if (o + n > cap)
			return -1;
		out[o++] = (uint8_t)(w >> 16);
		if (n > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (n > 2)
			out[o++] = (uint8_t)w;
	}
	return (long)o;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long mcp_pct_decode(uint8_t *out, size_t cap, const char *in, size_t in_len)
{
	size_t o = 0;
	for (size_t i = 0; i < in_len; i++) {
		if (o >= cap)
			return -1;
		if (in[i] != '%') {
			out[o++] = (uint8_t)in[i];
			continue;
		}
		if (i + 2 >= in_len)
			return -1; /* truncated escape */
		int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
		if (hi < 0 || lo < 0)
			return -1;
		out[o++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return (long)o;
}

static bool pct_is_plain(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '~' || c == '-';
}

size_t mcp_pct_encode(char *out, size_t cap, const uint8_t *in, size_t in_len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < in_len; i++) {
		if (pct_is_plain(in[i])) {
			if (o + 1 > cap)
				return 0;
			out[o++] = (char)in[i];
		} else {
			if (o + 3 > cap)
				return 0;
			out[o++] = '%';
			out[o++] = hex[in[i] >> 4];
			out[o++] = hex[in[i] & 15];
		}
	}
	return o;
}

bool mcp_parse_u64(const char *s, size_t n, uint64_t *out)
{
	/* Up to 19 digits cannot overflow; only a 20-digit number needs the comparison
	 * (no division per digit: this runs several times per item). */
	if (n == 0 || n > 20)
		return false;
	if (n == 20 && memcmp(s, "18446744073709551615", 20) > 0)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';
		if (d > 9)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool mcp_parse_i64(const char *s, size_t n, int64_t *out)
{
	bool neg = n > 0 && s[0] == '-';
	uint64_t v;
	if (!mcp_parse_u64(s + neg, n - neg, &v))
		return false;
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return false;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return false;
		*out = (int64_t)v;
	}
	return true;
}
