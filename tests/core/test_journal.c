/*
 * test_journal.c: the populator's journal through real files: entries survive a reopen,
 * a torn last line is dropped, a damaged middle line sets the journal aside, a partial
 * file's bitmap (also of a file with no block) round-trips, a new destination instance
 * forgets every entry, and another dump's journal is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "tmp_dir.h"

static const char *ID = "0123456789abcdef0123456789abcdef";

static char dir[64];
static void *mem;

static void fresh_dir(void)
{
	close(tmp_dir_make(dir, sizeof(dir), "journal"));
}

static void cleanup_dir(void)
{
	tmp_dir_remove(dir, -1);
}

static void open_bound(struct journal *j)
{
	char err[256];
	assert_int_equal(journal_open(j, dir, mem, err, sizeof(err)), 0);
	assert_int_equal(journal_bind(j, ID, "d:1", err, sizeof(err)), 0);
}

static void test_entries_survive_reopen(void **state)
{
	(void)state;
	fresh_dir();
	struct journal j;
	open_bound(&j);
	assert_int_equal(journal_instance(&j, 1000, 42), 0);
	uint8_t bm[JOURNAL_BLOCKS_MAX / 8] = { 0 };
	bm[0] = 0x05; /* blocks 0 and 2 */
	assert_int_equal(journal_done(&j, 3, 0, 0xabcd, 100), 0);
	assert_int_equal(journal_done(&j, 1, 2, 0x1234, 7), 0);
	assert_int_equal(journal_partial(&j, 2, 0, 0x55, 3, bm), 0);
	assert_int_equal(journal_partial(&j, 4, 0, 0x66, 0, bm), 0); /* no block at all */
	journal_close(&j);
	open_bound(&j);
	assert_true(journal_same_instance(&j, 1001, 42));
	assert_false(journal_same_instance(&j, 1010, 42));
	assert_false(journal_same_instance(&j, 1000, 43));
	const struct journal_entry *e = journal_find(&j, 3, 0);
	assert_non_null(e);
	assert_int_equal(e->state, JOURNAL_DONE);
	assert_int_equal(e->records, 100);
	e = journal_find(&j, 2, 0);
	assert_int_equal(e->state, JOURNAL_PARTIAL);
	const uint8_t *a = journal_applied(&j, e);
	assert_true(bitmap_get(a, 0) && !bitmap_get(a, 1) && bitmap_get(a, 2));
	assert_int_equal(journal_find(&j, 4, 0)->state, JOURNAL_PARTIAL);
	assert_null(journal_find(&j, 9, 9));
	/* a later line for the same file wins */
	assert_int_equal(journal_done(&j, 2, 0, 0x55, 3), 0);
	journal_close(&j);
	open_bound(&j);
	assert_int_equal(journal_find(&j, 2, 0)->state, JOURNAL_DONE);
	/* a new destination process forgets everything */
	assert_int_equal(journal_instance(&j, 5000, 7), 1);
	assert_null(journal_find(&j, 3, 0));
	journal_close(&j);
	open_bound(&j);
	assert_null(journal_find(&j, 3, 0));
	journal_close(&j);
	cleanup_dir();
}

static void append_raw(const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/journal", dir);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_torn_and_damaged_lines(void **state)
{
	(void)state;
	fresh_dir();
	struct journal j;
	open_bound(&j);
	assert_int_equal(journal_done(&j, 1, 0, 1, 1), 0);
	journal_close(&j);
	append_raw("done job=2 part=0 crc=00000002 rec"); /* a crash mid-append */
	open_bound(&j);
	assert_non_null(journal_find(&j, 1, 0)); /* kept */
	assert_null(journal_find(&j, 2, 0));	 /* the torn line is dropped */
	assert_int_equal(journal_done(&j, 5, 0, 5, 5), 0);
	journal_close(&j);
	open_bound(&j);
	assert_non_null(journal_find(&j, 5, 0)); /* appending after a torn line works */
	journal_close(&j);
	/* a damaged line that is not the last: the journal is set aside, not trusted */
	append_raw("done job=6 part=0 crc=00000006 records=1 c=00000000\n");
	char ok[128];
	snprintf(ok, sizeof(ok), "done job=7 part=0 crc=00000007 records=1 c=00000000\n");
	append_raw(ok);
	char err[256];
	assert_int_equal(journal_open(&j, dir, mem, err, sizeof(err)), 0);
	assert_null(journal_find(&j, 1, 0));
	assert_int_equal(j.dump_id_hex[0], '\0'); /* starts over */
	journal_close(&j);
	cleanup_dir();
}

static void test_other_dump_refused(void **state)
{
	(void)state;
	fresh_dir();
	struct journal j;
	open_bound(&j);
	journal_close(&j);
	char err[256];
	assert_int_equal(journal_open(&j, dir, mem, err, sizeof(err)), 0);
	assert_int_equal(
	    journal_bind(&j, "ffffffffffffffffffffffffffffffff", "d:1", err, sizeof(err)), -EXDEV);
	assert_non_null(strstr(err, "new --state"));
	journal_close(&j);
	cleanup_dir();
}

int main(void)
{
	mem = malloc(journal_memory_bytes());
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entries_survive_reopen),
		cmocka_unit_test(test_torn_and_damaged_lines),
		cmocka_unit_test(test_other_dump_refused),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);
	free(mem);
	return ret;
}
