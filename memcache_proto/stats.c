/*
 * stats.c: "stats" and "stats settings" replies: a run of "STAT <name> <value>\r\n"
 * lines closed by "END\r\n". Only lookups by name; the caller owns the buffer.
 */
#include "proto_private.h"

bool mcp_stats_is_complete(const char *buf, size_t len, size_t *reply_len)
{
	size_t pos = 0;
	while (pos < len) {
		size_t text_len, line_len;
		if (!mcp_line_find(buf + pos, len - pos, &text_len, &line_len))
			return false;
		const char *s = buf + pos;
		pos += line_len;
		if ((text_len == 3 && memcmp(s, "END", 3) == 0) ||
		    mcp_starts_with(s, text_len, "ERROR") ||
		    mcp_starts_with(s, text_len, "CLIENT_ERROR") ||
		    mcp_starts_with(s, text_len, "SERVER_ERROR")) {
			*reply_len = pos;
			return true;
		}
	}
	return false;
}

bool mcp_stats_find(const char *buf, size_t len, const char *name, const char **val,
		    size_t *val_len)
{
	size_t name_len = strlen(name);
	size_t pos = 0;
	while (pos < len) {
		size_t text_len, line_len;
		if (!mcp_line_find(buf + pos, len - pos, &text_len, &line_len))
			return false;
		const char *s = buf + pos;
		pos += line_len;
		if (text_len > 5 + name_len && memcmp(s, "STAT ", 5) == 0 &&
		    memcmp(s + 5, name, name_len) == 0 && s[5 + name_len] == ' ') {
			*val = s + 6 + name_len;
			*val_len = text_len - 6 - name_len;
			return true;
		}
	}
	return false;
}
