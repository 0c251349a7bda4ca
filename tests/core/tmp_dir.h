/*
 * tmp_dir.h: a fresh directory under /tmp for a unit test's files, and its removal.
 */
#ifndef MCW_TEST_TMP_DIR_H
#define MCW_TEST_TMP_DIR_H

#include <stddef.h>

/* Makes /tmp/mcw-test-<what>-XXXXXX into dir (cap >= 64) and opens it: the directory's fd.
 * Fails the test if it cannot. */
int tmp_dir_make(char *dir, size_t cap, const char *what);
/* Closes fd (if >= 0) and removes dir with everything in it. */
void tmp_dir_remove(const char *dir, int fd);

#endif
