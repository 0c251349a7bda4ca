/*
 * crcline.c: see crcline.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "crc.h"
#include "crcline.h"

int crcline_append(int fd, const char *fmt, ...)
{
	char line[CRCLINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 16, fmt, ap);
	va_end(ap);
	ASSERT(n > 0 && (size_t)n < sizeof(line) - 16);
	n += snprintf(line + n, 16, " c=%08x\n", mcw_crc32c(0, line, (size_t)n));
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < 0 || pwrite(fd, line, (size_t)n, end) != n)
		return errno ? -errno : -EIO;
	return 0;
}

/* Splits "text c=XXXXXXXX" and checks the crc. */
static bool line_ok(char *line)
{
	char *c = strstr(line, " c=");
	unsigned crc;
	if (c == NULL || strlen(c) != 11 || sscanf(c + 3, "%8x", &crc) != 1)
		return false;
	if (!mcw_crc_matches(crc, mcw_crc32c(0, line, (size_t)(c - line))))
		return false;
	*c = '\0';
	return true;
}

long crcline_load(int fd, bool (*parse)(void *arg, char *line), void *arg)
{
	static _Thread_local char buf[CRCLINE_MAX * 4];
	size_t have = 0;
	off_t off = 0, line_start = 0;
	for (;;) {
		ssize_t r = pread(fd, buf + have, sizeof(buf) - have, off);
		if (r < 0)
			return -errno;
		off += r;
		have += (size_t)r;
		size_t pos = 0;
		for (;;) {
			char *nl = memchr(buf + pos, '\n', have - pos);
			if (nl == NULL)
				break;
			*nl = '\0';
			if (!line_ok(buf + pos) || !parse(arg, buf + pos))
				return (long)line_start + 1;
			line_start += (off_t)((size_t)(nl - (buf + pos)) + 1);
			pos = (size_t)(nl - buf) + 1;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		if (r == 0)
			break;
		if (have == sizeof(buf))
			return (long)line_start + 1;
	}
	if (have > 0) /* a torn last line: drop it */
		return ftruncate(fd, line_start) < 0 ? -errno : 0;
	return 0;
}
