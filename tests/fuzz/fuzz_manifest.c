/*
 * fuzz_manifest.c: libFuzzer target for the MANIFEST and DONE reader (manifest_load). The
 * input's first two bytes (little-endian) are DONE's length: DONE, then MANIFEST, each
 * written to a directory on /dev/shm, and loaded. Checked: no read outside the files (ASan); a
 * loaded manifest is consistent (as many entries as it says, each a chunk file name that parses to
 * the job, part and crc of the entry, a dump id of 32 characters).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk_format.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dir_fd = -1;

static void put(const char *name, const uint8_t *p, size_t n)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n))
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir_fd < 0) {
		char dir[64];
		snprintf(dir, sizeof(dir), "/dev/shm/mcw-fuzz-manifest-%d", (int)getpid());
		mkdir(dir, 0700);
		dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dir_fd < 0)
			abort();
	}
	if (size < 2)
		return 0;
	size_t done = (size_t)data[0] | (size_t)data[1] << 8;
	if (done > size - 2)
		done = size - 2;
	put("DONE", data + 2, done);
	put("MANIFEST", data + 2 + done, size - 2 - done);
	struct manifest_info info;
	struct manifest_entry *e = NULL;
	char err[512];
	long n = manifest_load(dir_fd, &info, &e, err, sizeof(err));
	if (n >= 0) {
		if ((uint64_t)n != info.files || strlen(info.dump_id_hex) != 32)
			abort();
		for (long i = 0; i < n; i++) {
			uint32_t job, part, crc;
			if (!chunk_name_parse(e[i].name, &job, &part, &crc) || job != e[i].job ||
			    part != e[i].part || crc != e[i].crc)
				abort();
		}
	}
	free(e);
	return 0;
}
