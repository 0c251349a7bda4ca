/*
 * request.c: encoders for the requests mcwarm sends (mg, ms). Keys that cannot travel
 * as plain tokens go base64-encoded with the b flag; keys that cannot be sent at all
 * (empty, too long) are refused here, because a server faced with an over-long ms key
 * answers CLIENT_ERROR without swallowing the value and the connection desyncs.
 * No snprintf: these run once per item.
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

/* Decimal digits of v, appended; false if they do not fit. The length first, then the
 * digits written in place from the end, two per division: every ms and mg carries three
 * or four numbers, and a copy through a scratch buffer cost as much as the digits. */
static bool put_u64(char *out, size_t cap, size_t *o, uint64_t v)
{
	static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
				       "25262728293031323334353637383940414243444546474849"
				       "50515253545556575859606162636465666768697071727374"
				       "75767778798081828384858687888990919293949596979899";
	size_t len = 1;
	for (uint64_t ten = 10; len < 20 && v >= ten; ten *= 10) /* 10^19 is the last */
		len++;
	if (*o + len > cap)
		return false;
	char *p = out + *o + len;
	*o += len;
	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		*--p = pairs[d + 1];
		*--p = pairs[d];
	}
	if (v >= 10) {
		*--p = pairs[v * 2 + 1];
		*--p = pairs[v * 2];
	} else {
		*--p = (char)('0' + v);
	}
	return true;
}

static bool put_i64(char *out, size_t cap, size_t *o, int64_t v)
{
	if (v < 0 && !put(out, cap, o, "-", 1))
		return false;
	return put_u64(out, cap, o, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

/* "<cmd> <key>" with the key's length validated and, if b64, base64-encoded. The caller
 * decided b64 (at least mcp_key_needs_b64): scanning every key twice costs measurably. */
static bool put_command_key(char *out, size_t cap, size_t *o, const char *cmd, const uint8_t *key,
			    size_t key_len, bool b64)
{
#ifdef MCW_DEBUG
	MCP_ASSERT(b64 || !mcp_key_needs_b64(key, key_len));
#endif
	if (key_len == 0 || key_len > (b64 ? (size_t)MCP_KEY_B64_RAW_MAX : (size_t)MCP_KEY_MAX))
		return false;
	if (!put(out, cap, o, cmd, strlen(cmd)))
		return false;
	if (!b64)
		return put(out, cap, o, (const char *)key, key_len);
	size_t n = mcp_b64_encode(out + *o, cap - *o, key, key_len);
	*o += n;
	return n > 0;
}

size_t mcp_mg_encode(char *out, size_t cap, const uint8_t *key, size_t key_len, bool b64,
		     const char *flags, uint64_t opaque)
{
	size_t o = 0;
	if (put_command_key(out, cap, &o, "mg ", key, key_len, b64) &&
	    (!b64 || put(out, cap, &o, " b", 2)) && put(out, cap, &o, " ", 1) &&
	    put(out, cap, &o, flags, strlen(flags)) && put(out, cap, &o, " O", 2) &&
	    put_u64(out, cap, &o, opaque) && put(out, cap, &o, "\r\n", 2))
		return o;
	return 0;
}

size_t mcp_ms_encode(char *out, size_t cap, const uint8_t *key, size_t key_len, bool b64,
		     size_t value_len, int64_t ttl, uint32_t client_flags, enum mcp_ms_mode mode,
		     uint64_t opaque)
{
	size_t o = 0;
	if (put_command_key(out, cap, &o, "ms ", key, key_len, b64) && put(out, cap, &o, " ", 1) &&
	    put_u64(out, cap, &o, value_len) && (!b64 || put(out, cap, &o, " b", 2)) &&
	    put(out, cap, &o, " T", 2) && put_i64(out, cap, &o, ttl) &&
	    put(out, cap, &o, " F", 2) && put_u64(out, cap, &o, client_flags) &&
	    put(out, cap, &o, mode == MCP_MS_ADD ? " ME q O" : " MS q O", 7) &&
	    put_u64(out, cap, &o, opaque) && put(out, cap, &o, "\r\n", 2))
		return o;
	return 0;
}
