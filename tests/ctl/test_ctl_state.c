/*
 * test_ctl_state.c: mcwarm-ctl's state file through real files: every field survives a
 * save and a load, a flipped byte or a cut-off file is reported as damaged (never half
 * trusted), a missing file is -ENOENT, and the plan checksum tells plans apart (but not
 * by size, which may come from the source's stats).
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

#include "ctl_private.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mcw-test-ctl-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static struct ctl_state sample(void)
{
	struct ctl_state s;
	memset(&s, 0, sizeof(s));
	s.plan_crc = 0xdeadbeef;
	s.phase = PHASE_DUMPING;
	s.created_volume = true;
	snprintf(s.volume_id, sizeof(s.volume_id), "vol-0abc");
	s.volume_bytes = 3ull << 30;
	snprintf(s.rw_device, sizeof(s.rw_device), "/dev/loop7");
	snprintf(s.ro_device, sizeof(s.ro_device), "/dev/loop8");
	s.dump_n = 2;
	s.dump_pid = 4242;
	s.dump_started_ns = 1795000000123456789LL;
	s.dump_done_ns = 0;
	s.dump_exit = -1;
	s.cycles = 17;
	s.first_apply_ns = 1795000001000000000LL;
	s.files_applied = 33;
	s.items_sent = 1234567;
	s.already_present = 89;
	s.verify_ratio = 0.999875;
	s.verify_exit = -1;
	s.started_ns = 1795000000000000000LL;
	s.volume_ns = 1795000000200000000LL;
	snprintf(s.error, sizeof(s.error), "populate failed (exit 69): see x");
	return s;
}

static void test_round_trip(void **state)
{
	(void)state;
	struct ctl_state s = sample(), t;
	char err[512];
	assert_int_equal(ctl_state_save(dir, &s), 0);
	assert_int_equal(ctl_state_load(dir, &t, err, sizeof(err)), 0);
	assert_int_equal(t.plan_crc, s.plan_crc);
	assert_int_equal(t.phase, PHASE_DUMPING);
	assert_true(t.created_volume);
	assert_string_equal(t.volume_id, "vol-0abc");
	assert_int_equal(t.volume_bytes, s.volume_bytes);
	assert_string_equal(t.rw_device, "/dev/loop7");
	assert_string_equal(t.ro_device, "/dev/loop8");
	assert_int_equal(t.dump_n, 2);
	assert_int_equal(t.dump_pid, 4242);
	assert_int_equal(t.dump_started_ns, s.dump_started_ns);
	assert_int_equal(t.dump_exit, -1);
	assert_int_equal(t.cycles, 17);
	assert_int_equal(t.first_apply_ns, s.first_apply_ns);
	assert_int_equal(t.files_applied, 33);
	assert_int_equal(t.items_sent, 1234567);
	assert_int_equal(t.already_present, 89);
	assert_true(t.verify_ratio > 0.999874 && t.verify_ratio < 0.999876);
	assert_int_equal(t.volume_ns, s.volume_ns);
	assert_string_equal(t.error, s.error);
	/* false is false again */
	s.created_volume = false;
	s.phase = PHASE_FAILED;
	assert_int_equal(ctl_state_save(dir, &s), 0);
	assert_int_equal(ctl_state_load(dir, &t, err, sizeof(err)), 0);
	assert_false(t.created_volume);
	assert_int_equal(t.phase, PHASE_FAILED);
}

static void damage(off_t at, int cut)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/ctl.state", dir);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	if (cut) {
		assert_int_equal(ftruncate(fd, at), 0);
	} else {
		char c;
		assert_int_equal(pread(fd, &c, 1, at), 1);
		c ^= 0x01;
		assert_int_equal(pwrite(fd, &c, 1, at), 1);
	}
	close(fd);
}

static void test_damage_is_reported(void **state)
{
	(void)state;
	struct ctl_state s = sample(), t;
	char err[512];
	for (off_t at = 0; at < 300; at += 37) {
		assert_int_equal(ctl_state_save(dir, &s), 0);
		damage(at, 0);
		assert_int_equal(ctl_state_load(dir, &t, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "damaged"));
	}
	assert_int_equal(ctl_state_save(dir, &s), 0);
	damage(120, 1);
	assert_int_equal(ctl_state_load(dir, &t, err, sizeof(err)), -EBADMSG);
}

static void test_missing_is_enoent(void **state)
{
	(void)state;
	struct ctl_state t;
	char err[512], path[128];
	snprintf(path, sizeof(path), "%s/ctl.state", dir);
	unlink(path);
	assert_int_equal(ctl_state_load(dir, &t, err, sizeof(err)), -ENOENT);
}

static void test_plan_crc(void **state)
{
	(void)state;
	struct ctl_plan a, b;
	memset(&a, 0, sizeof(a));
	snprintf(a.source, sizeof(a.source), "10.0.0.1:11211");
	snprintf(a.dest, sizeof(a.dest), "10.0.0.2:11211");
	snprintf(a.vol.path, sizeof(a.vol.path), "/w/volume.img");
	a.vol.kind = EBS_LOOP;
	b = a;
	b.vol.size_bytes = 1ull << 30; /* the size does not make another plan */
	b.memory_bytes = 1 << 26;
	assert_int_equal(ctl_plan_crc(&a), ctl_plan_crc(&b));
	snprintf(b.dest, sizeof(b.dest), "10.0.0.3:11211");
	assert_int_not_equal(ctl_plan_crc(&a), ctl_plan_crc(&b));
	b = a;
	b.vol.kind = EBS_DIR;
	assert_int_not_equal(ctl_plan_crc(&a), ctl_plan_crc(&b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_damage_is_reported),
		cmocka_unit_test(test_missing_is_enoent),
		cmocka_unit_test(test_plan_crc),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
