/*
 * steps.c: the idempotent steps of a warm-up, and running mcwarm. Each step looks at what
 * exists (the backend, the mount table, the state file) and does only what is missing,
 * then records it, so repeating a step, or a whole warm-up after a kill, is safe.
 *
 *   create -> attach rw -> mkfs -> mount rw at <work>/rw -> attach ro -> mount ro at <work>/ro
 *   (a host running one side does its half of this line; a reader on another host waits
 *   for the volume and its filesystem: ctl_step_volume returns MCW_EXIT_TEMPFAIL until then)
 *   cycle:    syncfs rw -> umount ro -> mount ro (ro, noload) again
 *   teardown: umount ro, rw -> detach ro, rw -> destroy (only a volume we created)
 *   --backend s3: no volume; teardown deletes the pair's prefix in the store (s3.c)
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"

static int save(const struct ctl_plan *p, const struct ctl_state *s, char *err, size_t cap)
{
	int ret = ctl_state_save(p->work, s);
	if (ret < 0)
		return snprintf(err, cap, "cannot write %s/ctl.state: %s", p->work, strerror(-ret)),
		       MCW_EXIT_IO;
	return 0;
}

/* Does a step asked for side act on attachment a? */
static bool on_side(enum ctl_side side, int a)
{
	return side == SIDE_BOTH || (side == SIDE_RW) == (a == EBS_RW);
}

static void attachment(const struct ctl_plan *p, const struct ctl_state *s, enum ebs_access a,
		       struct ebs_attachment *at)
{
	memset(at, 0, sizeof(*at));
	at->access = a;
	snprintf(at->device, sizeof(at->device), "%s", a == EBS_RW ? s->rw_device : s->ro_device);
	ctl_path(at->mountpoint, sizeof(at->mountpoint), p, a == EBS_RW ? "rw" : "ro");
}

/* The plan's volume, with the id an earlier step recorded; an ec2 volume created on
 * another host is found by its tag. must_exist: not finding it is an error. */
static int volume_of(const struct ctl_plan *p, struct ctl_state *s, bool must_exist,
		     struct ebs_volume *v, char *err, size_t cap)
{
	*v = p->vol;
	if (v->volume_id[0] == '\0')
		snprintf(v->volume_id, sizeof(v->volume_id), "%s", s->volume_id);
	if (v->kind != EBS_EC2 || v->volume_id[0] != '\0')
		return 0;
	if (ebs_find(v, err, cap) < 0)
		return MCW_EXIT_UNAVAILABLE;
	if (v->volume_id[0] == '\0')
		return must_exist ? (snprintf(err, cap,
					      "no volume tagged mcwarm=%s: run "
					      "mcwarm-ctl create first, or give --volume-id",
					      v->tag),
				     MCW_EXIT_USAGE)
				  : 0;
	snprintf(s->volume_id, sizeof(s->volume_id), "%s", v->volume_id);
	return 0;
}

int ctl_step_create(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	struct ebs_volume v;
	struct ebs_status st;
	int code = volume_of(p, s, false, &v, err, cap);
	if (code != 0)
		return code;
	if (ebs_describe(&v, &st, err, cap) < 0)
		return MCW_EXIT_UNAVAILABLE;
	if (!st.exists) {
		if (v.size_bytes == 0 && v.kind != EBS_DIR)
			return snprintf(err, cap,
					"no volume size: give --size (or --source, to size "
					"it from what the source holds)"),
			       MCW_EXIT_USAGE;
		s->created_volume = true;    /* so teardown knows it may destroy it: recorded */
		code = save(p, s, err, cap); /* before it exists, so a kill cannot lose it */
		if (code != 0)
			return code;
	}
	if (ebs_create(&v, err, cap) < 0)
		return MCW_EXIT_UNAVAILABLE;
	snprintf(s->volume_id, sizeof(s->volume_id), "%s", v.volume_id);
	if (s->volume_bytes == 0)
		s->volume_bytes = v.size_bytes;
	return save(p, s, err, cap);
}

/* One side's part of a step: 0 or an exit code. */
typedef int (*side_fn)(const struct ctl_plan *p, struct ctl_state *s, const struct ebs_volume *v,
		       struct ebs_attachment *at, char *err, size_t cap);

/* Runs fn for the sides asked for: the writer first, or the reader first when taking
 * things down. must_exist: see volume_of. */
static int each_side(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side,
		     bool reader_first, bool must_exist, side_fn fn, char *err, size_t cap)
{
	struct ebs_volume v;
	int code = volume_of(p, s, must_exist, &v, err, cap);
	for (int i = 0; code == 0 && i < 2; i++) {
		int a = reader_first ? EBS_RO - i : EBS_RW + i;
		struct ebs_attachment at;
		if (!on_side(side, a))
			continue;
		attachment(p, s, (enum ebs_access)a, &at);
		code = fn(p, s, &v, &at, err, cap);
	}
	return code;
}

static char *device_of(struct ctl_state *s, enum ebs_access a)
{
	return a == EBS_RW ? s->rw_device : s->ro_device;
}

static int attach_one(const struct ctl_plan *p, struct ctl_state *s, const struct ebs_volume *v,
		      struct ebs_attachment *at, char *err, size_t cap)
{
	if (ebs_attach(v, at->access, at, err, cap) < 0)
		return MCW_EXIT_UNAVAILABLE;
	snprintf(device_of(s, at->access), EBS_PATH_MAX, "%s", at->device);
	return save(p, s, err, cap);
}

static int mount_one(const struct ctl_plan *p, struct ctl_state *s, const struct ebs_volume *v,
		     struct ebs_attachment *at, char *err, size_t cap)
{
	(void)p;
	(void)s;
	bool rw = at->access == EBS_RW;
	if (v->kind != EBS_DIR && at->device[0] == '\0')
		return snprintf(err, cap,
				"the volume is not attached %s: run mcwarm-ctl attach "
				"--side %s first",
				rw ? "read-write" : "read-only", rw ? "rw" : "ro"),
		       MCW_EXIT_USAGE;
	return ebs_mount(v, at, at->mountpoint, err, cap) < 0 ? MCW_EXIT_IO : 0;
}

static int umount_one(const struct ctl_plan *p, struct ctl_state *s, const struct ebs_volume *v,
		      struct ebs_attachment *at, char *err, size_t cap)
{
	(void)p;
	(void)s;
	(void)v;
	return ebs_umount(at, err, cap) < 0 ? MCW_EXIT_IO : 0;
}

static int detach_one(const struct ctl_plan *p, struct ctl_state *s, const struct ebs_volume *v,
		      struct ebs_attachment *at, char *err, size_t cap)
{
	if (ebs_detach(v, at, err, cap) < 0) /* unmounts first */
		return MCW_EXIT_IO;
	device_of(s, at->access)[0] = '\0';
	rmdir(at->mountpoint);
	int code = save(p, s, err, cap);
	if (code == 0 && at->access == EBS_RO)
		ctl_crash_point("teardown");
	return code;
}

int ctl_step_attach(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap)
{
	return each_side(p, s, side, false, true, attach_one, err, cap);
}

int ctl_step_mkfs(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	struct ebs_volume v;
	int code = volume_of(p, s, true, &v, err, cap);
	if (code != 0)
		return code;
	struct ebs_attachment rw;
	if (v.kind != EBS_DIR && s->rw_device[0] == '\0')
		return snprintf(err, cap,
				"the volume is not attached read-write: run mcwarm-ctl "
				"attach --side rw first"),
		       MCW_EXIT_USAGE;
	attachment(p, s, EBS_RW, &rw);
	return ebs_mkfs(&v, &rw, err, cap) < 0 ? MCW_EXIT_IO : 0;
}

int ctl_step_mount(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		   size_t cap)
{
	return each_side(p, s, side, false, true, mount_one, err, cap);
}

int ctl_step_umount(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap)
{
	return each_side(p, s, side, true, false, umount_one, err, cap);
}

int ctl_step_detach(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap)
{
	if (p->s3)
		return 0; /* nothing attached */
	/* a volume that is gone already: nothing to do */
	return each_side(p, s, side, true, false, detach_one, err, cap);
}

int ctl_step_destroy(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	struct ebs_volume v;
	int code = volume_of(p, s, false, &v, err, cap); /* gone already: nothing to do */
	if (code == 0)
		code = ctl_step_detach(p, s, SIDE_BOTH, err, cap);
	if (code != 0)
		return code;
	if (ebs_destroy(&v, err, cap) < 0)
		return MCW_EXIT_IO;
	s->volume_id[0] = '\0';
	s->created_volume = false;
	return save(p, s, err, cap);
}

/* The reader's half on its own host: the volume may not exist yet, or not carry the
 * writer's filesystem yet (MCW_EXIT_TEMPFAIL: wait and call again). */
static int reader_volume(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	struct ebs_volume v;
	struct ebs_status st;
	struct ebs_attachment ro;
	int code = volume_of(p, s, false, &v, err, cap);
	if (code != 0 || s->ro_device[0] != '\0')
		goto attach; /* attached already: only the filesystem may be missing */
	if (ebs_describe(&v, &st, err, cap) < 0)
		return MCW_EXIT_UNAVAILABLE;
	if (!st.exists || strcmp(st.state, "creating") == 0)
		return snprintf(err, cap,
				"the volume %s does not exist yet (is mcwarm-ctl warm "
				"--side rw running on the source host?)",
				v.kind == EBS_EC2 ? v.tag : v.path),
		       MCW_EXIT_TEMPFAIL;
	if (ebs_check(&v, false, true, err, cap) < 0) /* the volume's own constraints */
		return MCW_EXIT_USAGE;
attach:
	if (code == 0)
		code = ctl_step_attach(p, s, SIDE_RO, err, cap);
	if (code != 0)
		return code;
	attachment(p, s, EBS_RO, &ro);
	/* ec2: one attachment per instance; a second reader on this host would share its
	 * superblock, and neither could remount to see new files: wait for the first */
	if (v.kind == EBS_EC2 && ebs_device_is_mounted(ro.device) && !ebs_is_mounted(ro.mountpoint))
		return snprintf(err, cap,
				"another reader on this host has %s (%s) mounted: one reader "
				"per volume per host at a time",
				v.volume_id, ro.device),
		       MCW_EXIT_TEMPFAIL;
	if (v.kind != EBS_DIR && !ebs_has_filesystem(&ro))
		return snprintf(err, cap,
				"the volume %s carries no filesystem yet (the source "
				"host has not made it)",
				ro.device),
		       MCW_EXIT_TEMPFAIL;
	/* a filesystem the writer is still making shows its signature before it mounts:
	 * wait (bounded by --wait-volume) rather than fail */
	code = ctl_step_mount(p, s, SIDE_RO, err, cap);
	if (code == MCW_EXIT_IO && v.kind != EBS_DIR) {
		size_t n = strlen(err);
		snprintf(err + n, cap - n, " (the source host may still be making its filesystem)");
		return MCW_EXIT_TEMPFAIL;
	}
	return code;
}

int ctl_step_volume(const struct ctl_plan *p, struct ctl_state *s, enum ctl_side side, char *err,
		    size_t cap)
{
	int code = 0;
	if (p->s3) { /* no volume: the store was checked before the warm-up started */
		if (s->phase >= PHASE_VOLUME)
			return 0;
		s->phase = PHASE_VOLUME;
		return save(p, s, err, cap);
	}
	if (side != SIDE_RO) {
		code = ctl_step_create(p, s, err, cap);
		if (code == 0)
			code = ctl_step_attach(p, s, SIDE_RW, err, cap);
		if (code == 0)
			code = ctl_step_mkfs(p, s, err, cap);
		if (code == 0)
			code = ctl_step_mount(p, s, SIDE_RW, err, cap);
	}
	if (code == 0 && side == SIDE_BOTH) /* mounted by the first cycle */
		code = ctl_step_attach(p, s, SIDE_RO, err, cap);
	if (code == 0 && side == SIDE_RO)
		code = reader_volume(p, s, err, cap);
	if (code == 0 && s->phase < PHASE_VOLUME) {
		s->phase = PHASE_VOLUME;
		code = save(p, s, err, cap);
	}
	return code;
}

int ctl_step_cycle(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	struct ebs_volume v;
	int code = volume_of(p, s, true, &v, err, cap);
	if (code != 0)
		return code;
	struct ebs_attachment rw, ro;
	attachment(p, s, EBS_RW, &rw);
	attachment(p, s, EBS_RO, &ro);
	if (v.kind == EBS_DIR)
		return 0; /* one directory: the reader always sees everything */
	if (ro.device[0] == '\0')
		return snprintf(err, cap,
				"the volume is not attached read-only: run mcwarm-ctl "
				"attach --side ro first"),
		       MCW_EXIT_USAGE;
	/* what the writer synced is what the reader sees after a full remount; on another
	 * host the dumper syncs itself (mcwarm dump --syncfs-interval) */
	if (ebs_is_mounted(rw.mountpoint) && ebs_syncfs(&rw, err, cap) < 0)
		return MCW_EXIT_IO;
	if (ebs_umount(&ro, err, cap) < 0 || ebs_mount(&v, &ro, ro.mountpoint, err, cap) < 0)
		return MCW_EXIT_IO;
	return 0;
}

int ctl_step_teardown(const struct ctl_plan *p, struct ctl_state *s, bool destroy, char *err,
		      size_t cap)
{
	if (p->s3) /* the pair's prefix: every attempt, the readers' marks */
		return destroy ? ctl_s3_delete(p, err, cap) : 0;
	int code = ctl_step_detach(p, s, SIDE_BOTH, err, cap);
	if (code == 0 && destroy && s->created_volume)
		code = ctl_step_destroy(p, s, err, cap);
	return code;
}

/* ---- running mcwarm ------------------------------------------------------------------ */

pid_t ctl_spawn_mcwarm(const struct ctl_plan *p, char *const args[], const char *out_path,
		       const char *log_path)
{
	char *argv[CTL_MCWARM_ARGS_MAX];
	int n = 0;
	argv[n++] = (char *)p->mcwarm;
	for (int i = 0; args[i] != NULL && n < CTL_MCWARM_ARGS_MAX - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid != 0)
		return pid;
	int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out >= 0)
		dup2(out, 1);
	if (log >= 0)
		dup2(log, 2);
	execv(argv[0], argv);
	fprintf(stderr, "mcwarm-ctl: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int ctl_run_mcwarm(const struct ctl_plan *p, char *const args[], const char *out_path,
		   const char *log_path, pid_t *pid_out, struct ctl_state *s)
{
	pid_t pid = ctl_spawn_mcwarm(p, args, out_path, log_path);
	if (pid < 0)
		return MCW_EXIT_SOFTWARE;
	*pid_out = pid;
	ctl_state_save(p->work, s);
	if (strcmp(args[0], "populate") == 0)
		ctl_crash_point("pass");
	int code = ctl_wait_child(p, s, pid);
	*pid_out = 0;
	return code;
}

/* The command line of pid as NUL-separated words; its length, 0 if gone (or a zombie). */
static size_t cmdline(pid_t pid, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	return n;
}

/* Is this command line "…/mcwarm <cmd> … <opt> <value> …"? */
static bool matches(const char *buf, size_t n, const char *cmd, const char *opt, const char *value)
{
	const char *argv0 = buf, *base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	if (strcmp(base, "mcwarm") != 0)
		return false;
	const char *w = buf + strlen(buf) + 1;
	if (w >= buf + n || strcmp(w, cmd) != 0)
		return false;
	for (; w < buf + n; w += strlen(w) + 1) {
		const char *next = w + strlen(w) + 1;
		if (strcmp(w, opt) == 0 && next < buf + n && strcmp(next, value) == 0)
			return true;
	}
	return false;
}

pid_t ctl_find_mcwarm(const char *cmd, const char *opt, const char *value)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;
	char buf[4096];
	while (d && found == 0 && (de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		size_t n = cmdline(pid, buf, sizeof(buf));
		if (n > 0 && matches(buf, n, cmd, opt, value))
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

void ctl_stop_pid(pid_t pid)
{
	if (pid <= 0 || kill(pid, SIGTERM) < 0)
		return;
	for (int waited = 0; waited < CTL_STOP_WAIT_MS; waited += 50) {
		waitpid(pid, NULL, WNOHANG); /* reaps it if it is our child */
		if (kill(pid, 0) < 0)
			return;
		char buf[64];
		if (cmdline(pid, buf, sizeof(buf)) == 0)
			return; /* a zombie that is not ours: gone for our purposes */
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
