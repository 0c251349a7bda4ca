/*
 * fuzz_keychunk.c: libFuzzer target for the dumper's key chunk reader (keychunk_load and
 * keychunk_next). The input is written as key chunk 0 on /dev/shm and loaded with the dump
 * id and sequence its own header claims (so mutations get past that check). Checked: no
 * read outside the buffer (ASan); a loaded chunk yields exactly its count of keys, each 1
 * to 250 bytes, inside the payload.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyspool.h"
#include "mcw_limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dir_fd = -1;
static uint8_t *buf;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir_fd < 0) {
		char dir[64];
		snprintf(dir, sizeof(dir), "/dev/shm/mcw-fuzz-keys-%d", (int)getpid());
		mkdir(dir, 0700);
		dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
		buf = aligned_alloc(MCW_ALIGN_BYTES, MCW_KEYCHUNK_BYTES);
		if (dir_fd < 0 || buf == NULL)
			abort();
	}
	struct keychunk_header h = { 0 };
	memcpy(&h, data, size < sizeof(h) ? size : sizeof(h));
	char name[32];
	keychunk_name(name, h.seq);
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	struct keychunk_view v;
	char err[256];
	if (keychunk_load(dir_fd, h.seq, h.dump_id, buf, MCW_KEYCHUNK_BYTES, &v, err,
			  sizeof(err)) == 0) {
		uint32_t pos = 0, n = 0;
		const uint8_t *key;
		uint16_t len;
		uint8_t flags;
		while (keychunk_next(&v, &pos, &key, &len, &flags)) {
			if (len == 0 || len > 250 || key < v.payload ||
			    key + len > v.payload + v.payload_bytes)
				abort();
			n++;
		}
		if (n != v.count)
			abort();
	}
	unlinkat(dir_fd, name, 0);
	return 0;
}
