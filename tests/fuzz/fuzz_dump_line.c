/*
 * fuzz_dump_line.c: libFuzzer target for mcp_dump_line_parse, the parser of the source's
 * lru_crawler metadump / mgdump stream. The input is a stream of bytes as a hostile
 * server could send it; lines are parsed one after the other as the key reader does.
 * Checked: no read outside the input (ASan), consumed within the input and non-zero,
 * decoded keys within MCP_KEY_MAX, messages inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_input.h"
#include "mcproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_input_copy(data, size);
	if (buf == NULL)
		return 0;
	size_t off = 0;
	while (off < size) {
		struct mcp_dump_item it;
		size_t used = 0;
		enum mcp_status st = mcp_dump_line_parse(buf + off, size - off, &used, &it);
		if (st != MCP_OK)
			break;
		if (used == 0 || used > size - off)
			abort();
		if (it.kind == MCP_DUMP_ITEM && (it.key_len == 0 || it.key_len > MCP_KEY_MAX))
			abort();
		if ((it.kind == MCP_DUMP_ERROR || it.kind == MCP_DUMP_BUSY) &&
		    (it.msg < buf + off || it.msg + it.msg_len > buf + off + used))
			abort();
		if (it.kind == MCP_DUMP_END)
			break;
		off += used;
	}
	free(buf);
	return 0;
}
