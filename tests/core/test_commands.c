/*
 * test_commands.c: the one mapping from a failure's cause to a command's exit code
 * (mcw_exit_code in commands.c): every class that docs/operations.md's exit code table
 * promises, each cause the stack records for it, and that an errno nobody mapped is
 * reported as our bug (70) rather than as something the operator must fix.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base.h"
#include "core.h"
#include "objstore.h"

static void test_classes(void **state)
{
	(void)state;
	const struct {
		int err, exit;
	} cases[] = {
		{ 0, MCW_EXIT_OK },
		/* a server went away or could not be reached (mgpipe, mspipe, net) */
		{ -ECONNRESET, MCW_EXIT_UNAVAILABLE },
		{ -ECONNREFUSED, MCW_EXIT_UNAVAILABLE },
		{ -ETIMEDOUT, MCW_EXIT_UNAVAILABLE },
		{ -EHOSTUNREACH, MCW_EXIT_UNAVAILABLE },
		{ -EPIPE, MCW_EXIT_UNAVAILABLE },
		{ -EOPNOTSUPP, MCW_EXIT_UNAVAILABLE }, /* unsuitable: -X, no crawler, item size */
		{ -EPROTO, MCW_EXIT_PROTOCOL },
		{ -EBADMSG, MCW_EXIT_DATA },
		{ -EINVAL, MCW_EXIT_USAGE },
		{ -EKEYREJECTED, MCW_EXIT_REFUSED },
		{ -EBUSY, MCW_EXIT_TEMPFAIL },
		{ -MCW_ETOOSMALL, MCW_EXIT_TOO_SMALL },
		{ -EIO, MCW_EXIT_IO },
		{ -ENOSPC, MCW_EXIT_IO },
		{ -EDQUOT, MCW_EXIT_IO },
		{ -EACCES, MCW_EXIT_IO },
		{ -EROFS, MCW_EXIT_IO },
		{ -ENOENT, MCW_EXIT_IO },
		{ -MCW_EBUG, MCW_EXIT_SOFTWARE },
		{ -ENOMEM, MCW_EXIT_SOFTWARE },
		{ -ECANCELED, MCW_EXIT_SOFTWARE },
		/* the object store's classes (dump --out, populate --from s3://) */
		{ mcw_store_cause(OBJS_ERR_CREDENTIALS), 77 },
		{ mcw_store_cause(OBJS_ERR_NO_BUCKET), 69 },
		{ mcw_store_cause(OBJS_ERR_UNSUPPORTED), 69 },
		{ mcw_store_cause(OBJS_ERR_TEMPFAIL), 75 },
		{ mcw_store_cause(OBJS_ERR_CHECKSUM), 65 },
		{ mcw_store_cause(OBJS_ERR_PROTOCOL), 76 },
		{ mcw_store_cause(OBJS_ERR_CONFIG), 78 },
		{ mcw_store_cause(OBJS_ERR_NO_KEY), 66 },
		{ mcw_store_cause(OBJS_OK),
		  MCW_EXIT_SOFTWARE }, /* a store "failure" with no class */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char token[8];
		snprintf(token, sizeof(token), " %d ", cases[i].exit);
		if (!strstr(mcw_exit_codes_help, token))
			fail_msg("exit %d (cause %d) is not explained by --help", cases[i].exit,
				 cases[i].err);
		if (mcw_exit_code(cases[i].err) != cases[i].exit)
			fail_msg("cause %d (%s): exit %d, want %d", cases[i].err,
				 mcw_strerror(-cases[i].err), mcw_exit_code(cases[i].err),
				 cases[i].exit);
	}
}

static void test_fault_first_wins(void **state)
{
	(void)state;
	struct mcw_fault f = { 0 };
	assert_int_equal(mcw_fault_set(&f, -ECONNRESET, "lost %s", "the source"), -ECONNRESET);
	assert_int_equal(mcw_fault_set(&f, -EPROTO, "later"), -EPROTO);
	assert_int_equal(f.err, -ECONNRESET);
	assert_string_equal(f.msg, "lost the source");
	assert_string_equal(mcw_strerror(MCW_ETOOSMALL), "destination too small");
	assert_string_equal(mcw_strerror(-mcw_store_cause(OBJS_ERR_TEMPFAIL)),
			    "object store failure");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_fault_first_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
