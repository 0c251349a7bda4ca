/*
 * request.c: encoders for the requests mcwarm sends (mg, ms). Keys that cannot travel
 * as plain tokens are base64-encoded with the b flag; keys that cannot be sent at all
 * (empty, too long) are refused here, because a server faced with an over-long ms key
 * answers CLIENT_ERROR without swallowing the value and the connection desyncs.
 */
#include "proto_private.h"

/* Appends s to out at *o; false if it does not fit. */
static bool put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	if (*o + n > cap)
		return false;
	memcpy(out + *o, s, n);
	*o += n;
	return true;
}

static bool put_key(char *out, size_t cap, size_t *o, const uint8_t *key, size_t key_len, bool b64)
{
	if (!b64)
		return put(out, cap, o, (const char *)key, key_len);
	size_t n = mcp_b64_encode(out + *o, cap - *o, key, key_len);
	if (n == 0)
		return false;
	*o += n;
	return true;
}

/* "<cmd> <key>" with the key validated and, where it must be, base64-encoded. */
static bool put_command_key(char *out, size_t cap, size_t *o, const char *cmd, const uint8_t *key,
			    size_t key_len, bool force_b64, bool *b64)
{
	*b64 = force_b64 || mcp_key_needs_b64(key, key_len);
	if (key_len == 0 || key_len > (*b64 ? (size_t)MCP_KEY_B64_RAW_MAX : (size_t)MCP_KEY_MAX))
		return false;
	return put(out, cap, o, cmd, strlen(cmd)) && put_key(out, cap, o, key, key_len, *b64);
}

size_t mcp_mg_encode(char *out, size_t cap, const uint8_t *key, size_t key_len, bool force_b64,
		     const char *flags, uint64_t opaque)
{
	bool b64;
	size_t o = 0;
	char tail[48];

	if (!put_command_key(out, cap, &o, "mg ", key, key_len, force_b64, &b64))
		return 0;
	if (b64 && !put(out, cap, &o, " b", 2))
		return 0;
	if (!put(out, cap, &o, " ", 1) || !put(out, cap, &o, flags, strlen(flags)))
		return 0;
	int t = snprintf(tail, sizeof(tail), " O%llu\r\n", (unsigned long long)opaque);
	if (!put(out, cap, &o, tail, (size_t)t))
		return 0;
	return o;
}

size_t mcp_ms_encode(char *out, size_t cap, const uint8_t *key, size_t key_len, bool force_b64,
		     size_t value_len, int64_t ttl, uint32_t client_flags, enum mcp_ms_mode mode,
		     uint64_t opaque)
{
	bool b64;
	size_t o = 0;
	char tail[128];

	if (!put_command_key(out, cap, &o, "ms ", key, key_len, force_b64, &b64))
		return 0;
	int t = snprintf(tail, sizeof(tail), " %zu%s T%lld F%u %s q O%llu\r\n", value_len,
			 b64 ? " b" : "", (long long)ttl, client_flags,
			 mode == MCP_MS_ADD ? "ME" : "MS", (unsigned long long)opaque);
	if (!put(out, cap, &o, tail, (size_t)t))
		return 0;
	return o;
}
