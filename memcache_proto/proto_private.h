/*
 * proto_private.h: helpers shared by the memcache_proto sources; not part of the API.
 */
#ifndef PROTO_PRIVATE_H
#define PROTO_PRIVATE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcproto.h"

/* Stays on in release builds: argument checks at this module's boundary. */
#define MCP_ASSERT(c)                                                                              \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "mcproto: assertion failed: %s (%s:%d)\n", #c, __FILE__,   \
				__LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Length of the line at buf (terminator excluded) and of its terminator: "\n" or "\r\n".
 * Returns false if no '\n' is in buf[0..len). */
static inline bool mcp_line_find(const char *buf, size_t len, size_t *text_len, size_t *line_len)
{
	const char *nl = memchr(buf, '\n', len);
	if (nl == NULL)
		return false;
	size_t t = (size_t)(nl - buf);
	*line_len = t + 1;
	if (t > 0 && buf[t - 1] == '\r')
		t--;
	*text_len = t;
	return true;
}

static inline bool mcp_starts_with(const char *s, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);
	return n >= p && memcmp(s, prefix, p) == 0;
}

/* Next space-separated token in s[*pos..n); false at the end. */
static inline bool mcp_next_token(const char *s, size_t n, size_t *pos, const char **tok,
				  size_t *tok_len)
{
	size_t i = *pos;
	while (i < n && s[i] == ' ')
		i++;
	if (i >= n)
		return false;
	size_t start = i;
	while (i < n && s[i] != ' ')
		i++;
	*tok = s + start;
	*tok_len = i - start;
	*pos = i;
	return true;
}

#endif
