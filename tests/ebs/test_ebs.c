/*
 * test_ebs.c: volumes through ebs.h only. The dir backend end to end in a temporary
 * directory (every step idempotent, both attachments are the directory, destroy leaves the
 * operator's files); the helpers (mkdirs, the mount table); then the loop backend for real:
 * an image, a read-write and a read-only loop device, ext4, both mounts, a file written on
 * one side read on the other, and everything undone. The loop test needs root,
 * /dev/loop-control and mkfs.ext4; without them it is skipped and says why.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ebs.h"

#define ERR_BYTES  512
#define LOOP_BYTES (64ull * 1024 * 1024)

static char tmp[64];

static void fresh_tmp(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/mcw-test-ebs-XXXXXX");
	assert_non_null(mkdtemp(tmp));
}

static void remove_tmp(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	assert_int_equal(system(cmd), 0);
}

static bool is_dir(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static bool file_says(const char *path, const char *text)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return strcmp(buf, text) == 0;
}

static void test_kind_names(void **state)
{
	(void)state;
	static const enum ebs_kind kinds[] = { EBS_DIR, EBS_LOOP, EBS_EC2 };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		enum ebs_kind k = (enum ebs_kind)99;
		assert_int_equal(ebs_kind_parse(ebs_kind_name(kinds[i]), &k), 0);
		assert_int_equal(k, kinds[i]);
	}
	enum ebs_kind k = EBS_LOOP;
	assert_int_equal(ebs_kind_parse("Loop", &k), -EINVAL);
	assert_int_equal(ebs_kind_parse("", &k), -EINVAL);
	assert_int_equal(ebs_kind_parse("ebs", &k), -EINVAL);
	assert_int_equal(k, EBS_LOOP); /* untouched by a refusal */
}

static void test_helpers(void **state)
{
	(void)state;
	fresh_tmp();
	char p[256];
	snprintf(p, sizeof(p), "%s/a/b/c", tmp);
	assert_int_equal(ebs_mkdirs(p), 0);
	assert_true(is_dir(p));
	assert_int_equal(ebs_mkdirs(p), 0); /* already there */
	snprintf(p, sizeof(p), "%s/a/b/d/", tmp);
	assert_int_equal(ebs_mkdirs(p), 0);
	assert_true(is_dir(p));
	snprintf(p, sizeof(p), "%s/file", tmp);
	write_file(p, "x");
	snprintf(p, sizeof(p), "%s/file/sub", tmp);
	assert_int_equal(ebs_mkdirs(p), -ENOTDIR);

	/* the mount table: / and /proc are mountpoints, a plain directory is not */
	assert_true(ebs_is_mounted("/"));
	assert_true(ebs_is_mounted("/proc"));
	assert_true(ebs_is_mounted("/proc/../proc")); /* compared after realpath */
	assert_false(ebs_is_mounted(tmp));
	snprintf(p, sizeof(p), "%s/missing", tmp);
	assert_false(ebs_is_mounted(p));
	remove_tmp();
}

static void test_dir_backend(void **state)
{
	(void)state;
	fresh_tmp();
	char err[ERR_BYTES];
	struct ebs_volume v = { .kind = EBS_DIR };
	snprintf(v.path, sizeof(v.path), "%s/vol/warm", tmp);
	struct ebs_status st;

	assert_int_equal(ebs_find(&v, err, sizeof(err)), 0);
	assert_int_equal(ebs_describe(&v, &st, err, sizeof(err)), 0);
	assert_false(st.exists);
	assert_string_equal(st.state, "missing");
	/* attaching what does not exist says what to do */
	struct ebs_attachment rw = { 0 }, ro = { 0 };
	err[0] = '\0';
	assert_int_equal(ebs_attach(&v, EBS_RW, &rw, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "mcwarm-ctl create"));

	assert_int_equal(ebs_create(&v, err, sizeof(err)), 0);
	assert_true(is_dir(v.path));
	assert_string_equal(v.fs, "ext4"); /* the default, though a directory has none */
	assert_int_equal(ebs_create(&v, err, sizeof(err)), 0); /* again: kept */
	assert_int_equal(ebs_describe(&v, &st, err, sizeof(err)), 0);
	assert_true(st.exists);
	assert_string_equal(st.state, "directory");

	/* both attachments are the directory itself, again and again */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ebs_attach(&v, EBS_RW, &rw, err, sizeof(err)), 0);
		assert_int_equal(ebs_attach(&v, EBS_RO, &ro, err, sizeof(err)), 0);
	}
	assert_string_equal(rw.device, v.path);
	assert_string_equal(ro.device, v.path);
	assert_int_equal(rw.access, EBS_RW);
	assert_int_equal(ro.access, EBS_RO);
	assert_int_equal(ebs_mkfs(&v, &rw, err, sizeof(err)), 0);
	assert_int_equal(ebs_mkfs(&v, &ro, err, sizeof(err)), 0); /* nothing to make */

	/* mounting records the mountpoint and mounts nothing */
	assert_int_equal(ebs_mount(&v, &rw, v.path, err, sizeof(err)), 0);
	assert_int_equal(ebs_mount(&v, &ro, v.path, err, sizeof(err)), 0);
	assert_string_equal(rw.mountpoint, v.path);
	assert_false(ebs_is_mounted(v.path));
	char f[EBS_PATH_MAX / 2];
	assert_true(strlen(rw.mountpoint) < sizeof(f) - 16);
	snprintf(f, sizeof(f), "%.200s/chunk", rw.mountpoint);
	write_file(f, "written on the rw side");
	assert_int_equal(ebs_syncfs(&rw, err, sizeof(err)), 0);
	snprintf(f, sizeof(f), "%.200s/chunk", ro.mountpoint);
	assert_true(file_says(f, "written on the rw side"));

	for (int i = 0; i < 2; i++) {
		assert_int_equal(ebs_umount(&rw, err, sizeof(err)), 0);
		assert_int_equal(ebs_detach(&v, &rw, err, sizeof(err)), 0);
		assert_int_equal(ebs_detach(&v, &ro, err, sizeof(err)), 0);
	}
	assert_string_equal(rw.device, "");
	assert_string_equal(ro.device, "");
	/* destroy leaves the operator's directory and what is in it */
	assert_int_equal(ebs_destroy(&v, err, sizeof(err)), 0);
	assert_true(file_says(f, "written on the rw side"));

	/* a syncfs of something that is not there fails and names it */
	struct ebs_attachment gone = { .mountpoint = "/nonexistent/mcw" };
	err[0] = '\0';
	assert_int_equal(ebs_syncfs(&gone, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/mcw"));

	/* a path that is a file is not a directory volume */
	struct ebs_volume file = { .kind = EBS_DIR };
	snprintf(file.path, sizeof(file.path), "%s", f);
	assert_int_equal(ebs_describe(&file, &st, err, sizeof(err)), 0);
	assert_false(st.exists);
	assert_int_equal(ebs_attach(&file, EBS_RO, &ro, err, sizeof(err)), -ENOENT);
	snprintf(file.path, sizeof(file.path), "%s/below", f);
	err[0] = '\0';
	assert_int_equal(ebs_create(&file, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, file.path));
	remove_tmp();
}

/* ---- loop ---- */

static struct ebs_volume lv;
static struct ebs_attachment lrw, lro;

static bool have_program(const char *name)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Undoes whatever a failed loop test left (best effort: the machine is shared). */
static int loop_teardown(void **state)
{
	(void)state;
	char err[ERR_BYTES];
	if (lv.path[0] == '\0')
		return 0;
	ebs_umount(&lro, err, sizeof(err));
	ebs_umount(&lrw, err, sizeof(err));
	ebs_detach(&lv, &lro, err, sizeof(err));
	ebs_detach(&lv, &lrw, err, sizeof(err));
	ebs_destroy(&lv, err, sizeof(err));
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_loop_backend(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/dev/loop-control", R_OK | W_OK) != 0 ||
	    !have_program("mkfs.ext4")) {
		fprintf(stderr, "skipped: the loop backend needs root, /dev/loop-control and "
				"mkfs.ext4\n");
		skip();
	}
	fresh_tmp();
	char err[ERR_BYTES] = "";
	lv = (struct ebs_volume){ .kind = EBS_LOOP, .size_bytes = LOOP_BYTES };
	snprintf(lv.path, sizeof(lv.path), "%s/images/vol.img", tmp);
	struct ebs_status st;
	assert_int_equal(ebs_describe(&lv, &st, err, sizeof(err)), 0);
	assert_false(st.exists);
	assert_string_equal(st.state, "missing");

	if (ebs_create(&lv, err, sizeof(err)) != 0)
		fail_msg("create: %s", err);
	struct stat sb;
	assert_int_equal(stat(lv.path, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, LOOP_BYTES);
	assert_int_equal(ebs_create(&lv, err, sizeof(err)), 0); /* found and kept */
	assert_int_equal(ebs_describe(&lv, &st, err, sizeof(err)), 0);
	assert_true(st.exists);
	assert_string_equal(st.state, "available");
	assert_int_equal(st.attachments, 0);

	if (ebs_attach(&lv, EBS_RW, &lrw, err, sizeof(err)) != 0)
		fail_msg("attach rw: %s", err);
	assert_non_null(strstr(lrw.device, "/dev/loop"));
	struct ebs_attachment again = { 0 };
	assert_int_equal(ebs_attach(&lv, EBS_RW, &again, err, sizeof(err)), 0);
	assert_string_equal(again.device, lrw.device); /* the existing attachment is found */
	if (ebs_mkfs(&lv, &lrw, err, sizeof(err)) != 0)
		fail_msg("mkfs: %s", err);
	assert_int_equal(ebs_mkfs(&lv, &lrw, err, sizeof(err)), 0); /* has one: kept */

	char rw_mnt[256], ro_mnt[256], f[300];
	snprintf(rw_mnt, sizeof(rw_mnt), "%s/mnt/rw", tmp);
	snprintf(ro_mnt, sizeof(ro_mnt), "%s/mnt/ro", tmp);
	if (ebs_mount(&lv, &lrw, rw_mnt, err, sizeof(err)) != 0)
		fail_msg("mount rw: %s", err);
	assert_true(ebs_is_mounted(rw_mnt));
	assert_int_equal(ebs_mount(&lv, &lrw, rw_mnt, err, sizeof(err)), 0); /* already */
	snprintf(f, sizeof(f), "%s/chunk", rw_mnt);
	write_file(f, "through the volume");
	assert_int_equal(ebs_syncfs(&lrw, err, sizeof(err)), 0);

	/* the read-only side: its own loop device, mounted without journal recovery */
	if (ebs_attach(&lv, EBS_RO, &lro, err, sizeof(err)) != 0)
		fail_msg("attach ro: %s", err);
	assert_string_not_equal(lro.device, lrw.device);
	assert_int_equal(ebs_mkfs(&lv, &lro, err, sizeof(err)), 0); /* has one already */
	if (ebs_mount(&lv, &lro, ro_mnt, err, sizeof(err)) != 0)
		fail_msg("mount ro: %s", err);
	snprintf(f, sizeof(f), "%s/chunk", ro_mnt);
	assert_true(file_says(f, "through the volume"));
	snprintf(f, sizeof(f), "%s/new", ro_mnt);
	assert_true(open(f, O_WRONLY | O_CREAT, 0644) < 0 && errno == EROFS);

	assert_int_equal(ebs_describe(&lv, &st, err, sizeof(err)), 0);
	assert_string_equal(st.state, "in-use");
	assert_int_equal(st.attachments, 2);
	assert_string_equal(st.rw_device, lrw.device);
	assert_string_equal(st.ro_device, lro.device);
	/* an attached image is not removed */
	err[0] = '\0';
	assert_int_equal(ebs_destroy(&lv, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "detach it first"));

	/* detach unmounts first; every step again is a no-op */
	assert_int_equal(ebs_umount(&lrw, err, sizeof(err)), 0);
	assert_false(ebs_is_mounted(rw_mnt));
	assert_int_equal(ebs_umount(&lrw, err, sizeof(err)), 0);
	if (ebs_detach(&lv, &lro, err, sizeof(err)) != 0)
		fail_msg("detach ro: %s", err);
	assert_false(ebs_is_mounted(ro_mnt));
	if (ebs_detach(&lv, &lrw, err, sizeof(err)) != 0)
		fail_msg("detach rw: %s", err);
	assert_int_equal(ebs_detach(&lv, &lrw, err, sizeof(err)), 0);
	assert_int_equal(ebs_describe(&lv, &st, err, sizeof(err)), 0);
	assert_string_equal(st.state, "available");
	assert_int_equal(ebs_destroy(&lv, err, sizeof(err)), 0);
	assert_int_equal(access(lv.path, F_OK), -1);
	assert_int_equal(ebs_destroy(&lv, err, sizeof(err)), 0); /* gone: ok */
	lv.path[0] = '\0';
	remove_tmp();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_dir_backend),
		cmocka_unit_test_teardown(test_loop_backend, loop_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
