/*
 * fuzz_ctl_state.c: libFuzzer target for mcwarm-ctl's state file reader (ctl_state_load).
 * The input is written as <work>/ctl.state on /dev/shm and loaded. Checked: no read
 * outside the file (ASan); a loaded state is usable as the controller uses it (a known
 * phase, NUL-terminated strings within their fields).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char work[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (work[0] == '\0') {
		snprintf(work, sizeof(work), "/dev/shm/mcw-fuzz-ctl-%d", (int)getpid());
		mkdir(work, 0700);
	}
	char path[96];
	snprintf(path, sizeof(path), "%s/ctl.state", work);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	struct ctl_state s;
	char err[600];
	if (ctl_state_load(work, &s, err, sizeof(err)) == 0) {
		if (s.phase < PHASE_NEW || s.phase > PHASE_FAILED ||
		    memchr(s.volume_id, '\0', sizeof(s.volume_id)) == NULL ||
		    memchr(s.rw_device, '\0', sizeof(s.rw_device)) == NULL ||
		    memchr(s.ro_device, '\0', sizeof(s.ro_device)) == NULL ||
		    memchr(s.error, '\0', sizeof(s.error)) == NULL)
			abort();
		(void)ctl_phase_name(s.phase);
	}
	return 0;
}
