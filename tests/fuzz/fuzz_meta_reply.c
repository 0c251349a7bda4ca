/*
 * fuzz_meta_reply.c: libFuzzer target for mcp_meta_reply_parse, the parser of every meta
 * reply (mg, ms, mn) from the source and the destination. Replies are parsed one after
 * the other as a pipe does. Checked: no read outside the input (ASan), a reply's length
 * within the input, a value inside the reply and no longer than the limit given, key and
 * message inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_input.h"
#include "mcproto.h"

#define VALUE_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_within(const char *p, size_t n, const char *lo, const char *hi)
{
	if (n > 0 && (p < lo || p + n > hi))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_input_copy(data, size);
	if (buf == NULL)
		return 0;
	size_t off = 0;
	while (off < size) {
		struct mcp_meta_reply r;
		enum mcp_status st = mcp_meta_reply_parse(buf + off, size - off, VALUE_MAX, &r);
		if (st != MCP_OK)
			break;
		const char *lo = buf + off, *hi = buf + off + r.total_len;
		if (r.total_len == 0 || r.total_len > size - off || r.line_len > r.total_len)
			abort();
		if (r.code == MCP_RC_VA) {
			if (r.value_len > VALUE_MAX)
				abort();
			check_within(r.value, r.value_len, lo, hi);
		}
		if (r.has_key)
			check_within(r.key, r.key_len, lo, hi);
		if (r.code == MCP_RC_CLIENT_ERROR || r.code == MCP_RC_SERVER_ERROR)
			check_within(r.msg, r.msg_len, lo, hi);
		off += r.total_len;
	}
	free(buf);
	return 0;
}
