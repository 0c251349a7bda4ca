/*
 * ebs.c: dispatch to the backends, and what every block-device backend shares: mkfs,
 * mount (read-only without journal recovery), umount, syncfs, the mount table, and
 * running helper programs with a deadline.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ebs_private.h"

static const struct ebs_ops *ops_of(enum ebs_kind k)
{
	return k == EBS_LOOP ? &ebs_loop_ops : k == EBS_EC2 ? &ebs_ec2_ops : &ebs_dir_ops;
}

const char *ebs_kind_name(enum ebs_kind k)
{
	return k == EBS_LOOP ? "loop" : k == EBS_EC2 ? "ec2" : "dir";
}

int ebs_kind_parse(const char *s, enum ebs_kind *out)
{
	if (strcmp(s, "loop") == 0)
		*out = EBS_LOOP;
	else if (strcmp(s, "ec2") == 0)
		*out = EBS_EC2;
	else if (strcmp(s, "dir") == 0)
		*out = EBS_DIR;
	else
		return -EINVAL;
	return 0;
}

int ebs_error(char *err, size_t cap, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return ret;
}

int ebs_mkdirs(const char *path)
{
	char p[EBS_PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what is available from fd into buf (keeping room for a NUL). */
static void drain_fd(int fd, char *buf, size_t cap, size_t *len)
{
	while (*len + 1 < cap) {
		ssize_t n = read(fd, buf + *len, cap - 1 - *len);
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	buf[*len] = '\0';
}

int ebs_run(char *const argv[], char *out, size_t out_cap, char *errout, size_t err_cap,
	    int timeout_ms)
{
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(pe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	size_t olen = 0, elen = 0;
	char sink[256];
	int64_t deadline = now_ms() + timeout_ms;
	int status = 0;
	for (;;) {
		struct pollfd p[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		poll(p, 2, 100);
		drain_fd(po[0], out ? out : sink, out ? out_cap : sizeof(sink), &olen);
		drain_fd(pe[0], errout ? errout : sink, errout ? err_cap : sizeof(sink), &elen);
		if (!out)
			olen = 0;
		if (!errout)
			elen = 0;
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(po[0]);
			close(pe[0]);
			return -ETIME;
		}
	}
	drain_fd(po[0], out ? out : sink, out ? out_cap : sizeof(sink), &olen);
	drain_fd(pe[0], errout ? errout : sink, errout ? err_cap : sizeof(sink), &elen);
	close(po[0]);
	close(pe[0]);
	while (out && olen > 0 && (out[olen - 1] == '\n' || out[olen - 1] == ' '))
		out[--olen] = '\0';
	while (errout && elen > 0 && errout[elen - 1] == '\n')
		errout[--elen] = '\0';
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- dispatch --------------------------------------------------------------------- */

int ebs_find(struct ebs_volume *v, char *err, size_t cap)
{
	const struct ebs_ops *o = ops_of(v->kind);
	return o->find ? o->find(v, err, cap) : 0;
}

int ebs_create(struct ebs_volume *v, char *err, size_t cap)
{
	if (v->fs[0] == '\0')
		snprintf(v->fs, sizeof(v->fs), "ext4");
	return ops_of(v->kind)->create(v, err, cap);
}

int ebs_attach(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at, char *err,
	       size_t cap)
{
	at->access = a;
	return ops_of(v->kind)->attach(v, a, at, err, cap);
}

bool ebs_device_is_mounted(const char *dev)
{
	struct stat sb;
	char want[32], line[4096], majmin[32];
	if (dev[0] == '\0' || stat(dev, &sb) < 0 || !S_ISBLK(sb.st_mode))
		return false;
	snprintf(want, sizeof(want), "%u:%u", major(sb.st_rdev), minor(sb.st_rdev));
	FILE *f = fopen("/proc/self/mountinfo", "r");
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %31s", majmin) == 1 && strcmp(majmin, want) == 0;
	if (f)
		fclose(f);
	return found;
}

int ebs_detach(const struct ebs_volume *v, struct ebs_attachment *at, char *err, size_t cap)
{
	if (at->mountpoint[0] && ebs_is_mounted(at->mountpoint)) {
		int ret = ebs_umount(at, err, cap);
		if (ret < 0)
			return ret;
	}
	/* ec2: one attachment per instance, which several readers on it may share (a host
	 * populating two nodes from one volume): the last one to leave detaches it */
	if (v->kind == EBS_EC2 && at->access == EBS_RO && ebs_device_is_mounted(at->device)) {
		at->device[0] = '\0';
		return 0;
	}
	return ops_of(v->kind)->detach(v, at, err, cap);
}

int ebs_destroy(struct ebs_volume *v, char *err, size_t cap)
{
	return ops_of(v->kind)->destroy(v, err, cap);
}

int ebs_check(struct ebs_volume *v, bool rw, bool ro, char *err, size_t cap)
{
	const struct ebs_ops *o = ops_of(v->kind);
	return o->check ? o->check(v, rw, ro, err, cap) : 0;
}

int ebs_describe(const struct ebs_volume *v, struct ebs_status *st, char *err, size_t cap)
{
	memset(st, 0, sizeof(*st));
	return ops_of(v->kind)->describe(v, st, err, cap);
}

/* ---- block devices: mkfs, mount, umount, syncfs ---------------------------------------- */

#define SUPERBLOCK_READ_BYTES 4096 /* one aligned block holds both magics */

/* Does the device already carry a filesystem? (ext4: magic 0xEF53 at 1080; xfs: "XFSB")
 * O_DIRECT: a reader's device may cache the blocks it read before the writer's mkfs. */
static bool has_filesystem(const char *dev)
{
	static_assert(SUPERBLOCK_READ_BYTES >= 1082, "the ext4 magic is inside the read");
	_Alignas(4096) unsigned char sb[SUPERBLOCK_READ_BYTES];
	int fd = open(dev, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (fd < 0)
		fd = open(dev, O_RDONLY | O_CLOEXEC); /* no direct I/O there: the cache is all */
	if (fd < 0)
		return false;
	ssize_t n = pread(fd, sb, sizeof(sb), 0);
	close(fd);
	if (n < (ssize_t)sizeof(sb))
		return false;
	return (sb[1080] == 0x53 && sb[1081] == 0xEF) || memcmp(sb, "XFSB", 4) == 0;
}

bool ebs_has_filesystem(const struct ebs_attachment *at)
{
	return has_filesystem(at->device);
}

int ebs_mkfs(const struct ebs_volume *v, const struct ebs_attachment *at, char *err, size_t cap)
{
	if (v->kind == EBS_DIR || has_filesystem(at->device))
		return 0;
	if (at->access != EBS_RW)
		return ebs_error(err, cap, -EROFS, "mkfs needs the read-write attachment, not %s",
				 at->device);
	char out[256], errout[1024];
	char *ext4[] = { "mkfs.ext4",	     "-q", "-F", "-E", "nodiscard,lazy_itable_init=0",
			 (char *)at->device, NULL };
	char *xfs[] = { "mkfs.xfs", "-q", "-f", (char *)at->device, NULL };
	int ret = ebs_run(strcmp(v->fs, "xfs") == 0 ? xfs : ext4, out, sizeof(out), errout,
			  sizeof(errout), 300000);
	if (ret == 127)
		return ebs_error(err, cap, -ENOENT, "mkfs.%s is not installed (apt-get install %s)",
				 v->fs, strcmp(v->fs, "xfs") == 0 ? "xfsprogs" : "e2fsprogs");
	if (ret != 0)
		return ebs_error(err, cap, -EIO, "mkfs.%s %s failed: %s", v->fs, at->device,
				 errout);
	return 0;
}

bool ebs_is_mounted(const char *path)
{
	char real[EBS_PATH_MAX], line[4096];
	if (realpath(path, real) == NULL)
		return false;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f)) {
		char mnt[EBS_PATH_MAX];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1 && strcmp(mnt, real) == 0)
			found = true;
	}
	if (f)
		fclose(f);
	return found;
}

static int mount_error(char *err, size_t cap, int e, const struct ebs_attachment *at,
		       const char *mountpoint, bool ro)
{
	const char *why =
	    e == EPERM || e == EACCES ? "mounting needs root"
	    : e == EBUSY	      ? "busy: is it mounted elsewhere, or still open? "
					"run mcwarm-ctl umount"
	    : e == ENOENT || e == ENXIO || e == ENODEV
		? "the device vanished: the volume was detached"
	    : e == EINVAL || e == EUCLEAN || e == EIO
		? (ro ? "the filesystem is damaged or needs recovery the read-only "
			"side cannot do: unmount the writer cleanly, or run fsck on it"
		      : "no valid filesystem: run mcwarm-ctl mkfs")
		: strerror(e);
	return ebs_error(err, cap, -e, "cannot mount %s %s at %s: %s (%s)", at->device,
			 ro ? "read-only" : "read-write", mountpoint, strerror(e), why);
}

/* Is the block device there and backed (a detached loop device stays as a node with
 * size 0; a detached EBS volume's node disappears)? */
static bool device_present(const char *dev)
{
	struct stat sb;
	if (stat(dev, &sb) < 0 || !S_ISBLK(sb.st_mode))
		return false;
	char path[96], size[32] = "";
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/size", major(sb.st_rdev),
		 minor(sb.st_rdev));
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return true; /* no sysfs: let mount say */
	bool ok = fgets(size, sizeof(size), f) != NULL && strtoull(size, NULL, 10) > 0;
	fclose(f);
	return ok;
}

/* A reader must see what the writer wrote since its last mount. The last close of the
 * device drops its cached blocks, but another opener (udev probing it, a second reader
 * of the same attachment) keeps them: drop them here, whoever holds it. A loop device
 * also reads its backing file's size again (it keeps the size it saw at attach; other
 * devices refuse the ioctl). Best effort: a device that refuses keeps the last close as
 * its only flush. */
static void drop_cached_blocks(const char *dev)
{
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)ioctl(fd, LOOP_SET_CAPACITY, 0);
	(void)ioctl(fd, BLKFLSBUF, 0);
	close(fd);
}

int ebs_mount(const struct ebs_volume *v, struct ebs_attachment *at, const char *mountpoint,
	      char *err, size_t cap)
{
	if (mountpoint != at->mountpoint)
		snprintf(at->mountpoint, sizeof(at->mountpoint), "%s", mountpoint);
	if (v->kind == EBS_DIR)
		return 0; /* the directory is its own mount */
	if (ebs_is_mounted(mountpoint))
		return 0;
	int ret = ebs_mkdirs(mountpoint);
	if (ret < 0)
		return ebs_error(err, cap, ret, "cannot create the mountpoint %s: %s", mountpoint,
				 strerror(-ret));
	bool ro = at->access == EBS_RO;
	bool xfs = strcmp(v->fs, "xfs") == 0;
	if (!device_present(at->device))
		return ebs_error(err, cap, -ENXIO,
				 "cannot mount %s at %s: the device vanished (the volume was "
				 "detached behind mcwarm-ctl's back): run mcwarm-ctl attach",
				 at->device, mountpoint);
	if (ro)
		drop_cached_blocks(at->device);
	unsigned long flags = MS_NOATIME | (ro ? MS_RDONLY : 0);
	const char *data = ro ? (xfs ? "norecovery" : "noload") : "";
	if (mount(at->device, mountpoint, xfs ? "xfs" : "ext4", flags, data) < 0)
		return mount_error(err, cap, errno, at, mountpoint, ro);
	return 0;
}

int ebs_umount(struct ebs_attachment *at, char *err, size_t cap)
{
	if (at->mountpoint[0] == '\0' || !ebs_is_mounted(at->mountpoint))
		return 0;
	for (int attempt = 0;; attempt++) {
		if (umount2(at->mountpoint, 0) == 0)
			return 0;
		if (errno != EBUSY || attempt == 20)
			break;
		struct timespec ts = { 0, 100 * 1000000L }; /* a reader closing its files */
		nanosleep(&ts, NULL);
	}
	int e = errno;
	return ebs_error(err, cap, -e, "cannot unmount %s: %s%s", at->mountpoint, strerror(e),
			 e == EBUSY ? " (a process still uses it: stop the dumper or populator "
				      "working there, or check with fuser -m)"
				    : "");
}

int ebs_syncfs(const struct ebs_attachment *at, char *err, size_t cap)
{
	int fd = open(at->mountpoint[0] ? at->mountpoint : at->device, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ebs_error(err, cap, -e, "syncfs %s: %s", at->mountpoint, strerror(e));
	}
	close(fd);
	return 0;
}
