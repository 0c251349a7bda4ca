/*
 * test_keyspool.c: key chunks round trip through real files, fill up by count and by
 * bytes, and every kind of damage is refused at load.
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
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyspool.h"
#include "mcw_limits.h"

static const uint8_t dump_id[16] = { 1, 2, 3 };

static int write_chunk(int dir_fd, uint8_t *buf, uint32_t seq, uint32_t nkeys, size_t key_len)
{
	struct keychunk_builder b;
	keychunk_builder_reset(&b, buf, MCW_KEYCHUNK_BYTES);
	uint8_t key[MCP_KEY_MAX];
	uint32_t added = 0;
	for (uint32_t i = 0; i < nkeys; i++) {
		memset(key, 'a' + i % 26, key_len);
		memcpy(key, &i, sizeof(i));
		if (!keychunk_add(&b, key, key_len, i % 2 ? KEYCHUNK_F_B64 : 0))
			break;
		added++;
	}
	size_t n = keychunk_finish(&b, dump_id, seq, (uint16_t)(seq % 7));
	assert_int_equal(n % 4096, 0);
	char name[32];
	keychunk_name(name, seq);
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	close(fd);
	return (int)added;
}

static void test_roundtrip_and_limits(void **state)
{
	(void)state;
	char dir[] = "/tmp/mcw-test-keys-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
	uint8_t *buf = aligned_alloc(4096, MCW_KEYCHUNK_BYTES);
	uint8_t *in = aligned_alloc(4096, MCW_KEYCHUNK_BYTES);

	/* short keys: the count limit ends the chunk */
	assert_int_equal(write_chunk(dir_fd, buf, 0, 100000, 8), MCW_KEYCHUNK_KEYS_MAX);
	/* long keys: the byte limit ends it */
	int long_keys = write_chunk(dir_fd, buf, 1, 100000, MCP_KEY_MAX);
	assert_true(long_keys < MCW_KEYCHUNK_KEYS_MAX);
	assert_true((size_t)long_keys * (MCP_KEY_MAX + 4) <= MCW_KEYCHUNK_BYTES);

	struct keychunk_view v;
	char err[256];
	assert_int_equal(
	    keychunk_load(dir_fd, 1, dump_id, in, MCW_KEYCHUNK_BYTES, &v, err, sizeof(err)), 0);
	assert_int_equal(v.count, (uint32_t)long_keys);
	assert_int_equal(v.group, 1 % 7); /* the output group travels in the header */
	uint32_t pos = 0, i = 0;
	const uint8_t *key;
	uint16_t len;
	uint8_t flags;
	while (keychunk_next(&v, &pos, &key, &len, &flags)) {
		uint32_t id;
		memcpy(&id, key, sizeof(id));
		assert_int_equal(id, i);
		assert_int_equal(len, MCP_KEY_MAX);
		assert_int_equal(flags, i % 2 ? KEYCHUNK_F_B64 : 0);
		i++;
	}
	assert_int_equal(i, (uint32_t)long_keys);

	/* wrong dump id, wrong sequence, damaged payload, truncation: all refused */
	uint8_t other[16] = { 9 };
	assert_int_equal(
	    keychunk_load(dir_fd, 1, other, in, MCW_KEYCHUNK_BYTES, &v, err, sizeof(err)), -EIO);
	int fd = openat(dir_fd, "keys-000001.mck", O_RDWR);
	uint8_t b = 0x55;
	assert_int_equal(pwrite(fd, &b, 1, 5000), 1);
	close(fd);
	assert_int_equal(
	    keychunk_load(dir_fd, 1, dump_id, in, MCW_KEYCHUNK_BYTES, &v, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "payload checksum"));
	fd = openat(dir_fd, "keys-000000.mck", O_RDWR);
	assert_int_equal(ftruncate(fd, 8192), 0);
	close(fd);
	assert_int_equal(
	    keychunk_load(dir_fd, 0, dump_id, in, MCW_KEYCHUNK_BYTES, &v, err, sizeof(err)), -EIO);
	assert_int_equal(
	    keychunk_load(dir_fd, 5, dump_id, in, MCW_KEYCHUNK_BYTES, &v, err, sizeof(err)),
	    -ENOENT);
	unlinkat(dir_fd, "keys-000000.mck", 0);
	unlinkat(dir_fd, "keys-000001.mck", 0);
	close(dir_fd);
	rmdir(dir);
	free(buf);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
