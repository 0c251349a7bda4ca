/*
 * crcline.h: append-only text files whose every line carries its own crc32c, the form of
 * the populator's journal and the dumper's checkpoint:
 *
 *   <text> c=<8 hex>\n        (the crc32c of <text>)
 *
 * A torn last line (a crash during an append) is dropped when the file is read; a damaged
 * line anywhere else means the file cannot be trusted and the caller starts over.
 */
#ifndef MCW_CRCLINE_H
#define MCW_CRCLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "mcw_limits.h"

/* Appends one line (printf format, without the seal or the newline). 0 or -errno. */
int crcline_append(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads every line of fd in order, checks its seal and hands the text (seal removed,
 * NUL-terminated) to parse, which returns false for a line it cannot use. Returns 0 when
 * every line is good (a torn last line is cut off the file), the byte offset + 1 of the
 * first bad line, or -errno. */
long crcline_load(int fd, bool (*parse)(void *arg, char *line), void *arg);

#endif
