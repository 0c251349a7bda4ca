/*
 * tmp_dir.c: see tmp_dir.h.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmp_dir.h"

int tmp_dir_make(char *dir, size_t cap, const char *what)
{
	assert_true(cap >= 64);
	snprintf(dir, cap, "/tmp/mcw-test-%.32s-XXXXXX", what);
	assert_non_null(mkdtemp(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

void tmp_dir_remove(const char *dir, int fd)
{
	char cmd[128];
	if (fd >= 0)
		close(fd);
	assert_true((size_t)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) < sizeof(cmd));
	assert_int_equal(system(cmd), 0);
}
