/*
 * fuzz_checkpoint.c: libFuzzer target for the dump's checkpoint reader (checkpoint_load,
 * and under it crcline_load, which also reads the populator's journal). The input is
 * written as <dir>/checkpoint on /dev/shm and loaded. Checked: no read outside the file
 * (ASan), a loaded checkpoint is consistent (a dump id of 32 hex digits, no job past a
 * finished listing, the job count matching the bitmap's bits up to job_end).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct checkpoint cp;
static int dir_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir_fd < 0) {
		char dir[64];
		snprintf(dir, sizeof(dir), "/dev/shm/mcw-fuzz-ckpt-%d", (int)getpid());
		mkdir(dir, 0700);
		dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dir_fd < 0)
			abort();
	}
	int fd = openat(dir_fd, CHECKPOINT_NAME, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	char err[256];
	if (checkpoint_load(&cp, dir_fd, err, sizeof(err)) == 0) {
		if (strlen(cp.dump_id_hex) != 32 || (cp.keys_done && cp.job_end > cp.chunks))
			abort();
		uint32_t bits = 0;
		for (uint32_t j = 0; j < cp.job_end; j++)
			bits += checkpoint_job_is_done(&cp, j);
		if (bits != cp.jobs_done)
			abort();
		checkpoint_close(&cp);
	}
	return 0;
}
