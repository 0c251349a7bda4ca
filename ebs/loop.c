/*
 * loop.c: the loop backend. The volume is a preallocated image file; each attachment is
 * its own loop device with direct I/O, so the read-only side reads what reached the disk
 * and sees new files only after it remounts, as an EBS multi-attach reader does.
 * Attachments are found again through /sys/block/loopN/loop/backing_file, which makes
 * attach and detach idempotent across restarts. A read-only attachment also carries its
 * reader's name (a hash of its mountpoint) as the loop device's file name, so readers
 * of one image on one host (several populator halves) each find their own device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ebs_private.h"

#define LOOP_ATTACH_RETRIES  32 /* another process may take the free device first */
#define LOOP_RETRY_JITTER_MS 20 /* so racing attachers do not collide again in step */
#define LOOP_LABEL_MAX	     LO_NAME_SIZE

/* The name a reader's device carries: "mcwarm-ro:<fnv1a of its mountpoint>". */
static void reader_label(const char *mountpoint, char *out, size_t cap)
{
	uint32_t h = 2166136261u;
	for (const char *c = mountpoint; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	snprintf(out, cap, "mcwarm-ro:%08x", h);
}

/* Does the loop device carry this name? */
static bool has_label(const char *dev, const char *label)
{
	struct loop_info64 li;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	int ret = ioctl(fd, LOOP_GET_STATUS64, &li);
	close(fd);
	return ret == 0 && strncmp((const char *)li.lo_file_name, label, LOOP_LABEL_MAX) == 0;
}

static int loop_create(struct ebs_volume *v, char *err, size_t cap)
{
	struct stat sb;
	if (stat(v->path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == v->size_bytes)
		return 0;
	char dir[EBS_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", v->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		ebs_mkdirs(dir);
	}
	/* made under a temporary name and renamed whole: a reader on another host that sees
	 * the image sees its full size (a loop device keeps the size it saw at attach) */
	char tmp[EBS_PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.new", v->path);
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return ebs_error(err, cap, -errno, "cannot create the image %s: %s", tmp,
				 strerror(errno));
	/* preallocated, so the volume cannot run out of disk halfway through a dump */
	if ((fallocate(fd, 0, 0, (off_t)v->size_bytes) < 0 &&
	     ftruncate(fd, (off_t)v->size_bytes) < 0) ||
	    rename(tmp, v->path) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return ebs_error(err, cap, -e, "cannot allocate %llu bytes for %s: %s%s",
				 (unsigned long long)v->size_bytes, v->path, strerror(e),
				 e == ENOSPC ? " (free space there, or choose a smaller --size)"
					     : "");
	}
	close(fd);
	return 0;
}

/* Finds a loop device attached to path with the given access (and, given a label, that
 * name); "" if none. Returns how many devices are attached to path in all. */
static unsigned find_attachment(const char *path, enum ebs_access a, const char *label, char *dev,
				size_t cap)
{
	char real[EBS_PATH_MAX];
	unsigned all = 0;
	dev[0] = '\0';
	if (realpath(path, real) == NULL)
		return 0;
	DIR *d = opendir("/sys/block");
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		char p[600], backing[EBS_PATH_MAX] = "", ro[8] = "0";
		snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
		FILE *f = fopen(p, "r");
		if (f == NULL)
			continue;
		if (fgets(backing, sizeof(backing), f))
			backing[strcspn(backing, "\n")] = '\0';
		fclose(f);
		snprintf(p, sizeof(p), "/sys/block/%s/ro", de->d_name);
		if ((f = fopen(p, "r")) != NULL) {
			if (fgets(ro, sizeof(ro), f) == NULL)
				ro[0] = '0';
			fclose(f);
		}
		if (strcmp(backing, real) != 0)
			continue;
		all++;
		char cand[300];
		snprintf(cand, sizeof(cand), "/dev/%s", de->d_name);
		if (dev[0] == '\0' && (ro[0] == '1') == (a == EBS_RO) &&
		    (label == NULL || has_label(cand, label)))
			snprintf(dev, cap, "%s", cand);
	}
	if (d)
		closedir(d);
	return all;
}

/* The attachment's own device: the writer's, or this reader's. */
static void find_own(const struct ebs_volume *v, const struct ebs_attachment *at, char *dev,
		     size_t cap)
{
	char label[LOOP_LABEL_MAX];
	bool named = at->access == EBS_RO && at->mountpoint[0] != '\0';
	if (named)
		reader_label(at->mountpoint, label, sizeof(label));
	find_attachment(v->path, at->access, named ? label : NULL, dev, cap);
}

static int attach_once(const struct ebs_volume *v, enum ebs_access a, const char *label, char *dev,
		       size_t dev_cap, char *err, size_t cap)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return ebs_error(err, cap, -errno, "no loop devices: /dev/loop-control: %s%s",
				 strerror(errno),
				 errno == EACCES || errno == EPERM
				     ? " (loop devices need root)"
				     : " (load the loop module, or use --backend dir)");
	int n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		return ebs_error(err, cap, -errno, "no free loop device: %s", strerror(errno));
	snprintf(dev, dev_cap, "/dev/loop%d", n);
	int ro = a == EBS_RO;
	int lfd = open(dev, O_RDWR | O_CLOEXEC);
	int ffd = open(v->path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (lfd < 0 || ffd < 0) {
		int e = errno;
		if (lfd >= 0)
			close(lfd);
		if (ffd >= 0)
			close(ffd);
		return ebs_error(err, cap, -e, "cannot open %s or %s: %s", dev, v->path,
				 strerror(e));
	}
	struct loop_config lc;
	memset(&lc, 0, sizeof(lc));
	lc.fd = (unsigned)ffd;
	lc.info.lo_flags = LO_FLAGS_DIRECT_IO | (ro ? LO_FLAGS_READ_ONLY : 0);
	snprintf((char *)lc.info.lo_file_name, sizeof(lc.info.lo_file_name), "%.63s",
		 label ? label : v->path);
	int ret = ioctl(lfd, LOOP_CONFIGURE, &lc);
	int e = errno;
	if (ret < 0 && e == EINVAL) { /* no direct I/O here (tmpfs image): buffered */
		lc.info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
		ret = ioctl(lfd, LOOP_CONFIGURE, &lc);
		e = errno;
	}
	close(ffd);
	close(lfd);
	if (ret < 0)
		return e == EBUSY ? -EBUSY
				  : ebs_error(err, cap, -e, "cannot attach %s to %s: %s", v->path,
					      dev, strerror(e));
	return 0;
}

static int loop_attach(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at,
		       char *err, size_t cap)
{
	char label[LOOP_LABEL_MAX];
	bool named = a == EBS_RO && at->mountpoint[0] != '\0';
	if (named)
		reader_label(at->mountpoint, label, sizeof(label));
	find_own(v, at, at->device, sizeof(at->device));
	if (at->device[0] != '\0')
		return 0;
	for (int i = 0; i < LOOP_ATTACH_RETRIES; i++) {
		int ret = attach_once(v, a, named ? label : NULL, at->device, sizeof(at->device),
				      err, cap);
		if (ret != -EBUSY)
			return ret;
		struct timespec ts = { 0, (long)(rand() % LOOP_RETRY_JITTER_MS + 1) * 1000000L };
		nanosleep(&ts, NULL);
	}
	return ebs_error(err, cap, -EBUSY,
			 "every free loop device was taken by another process "
			 "%d times in a row: try again",
			 LOOP_ATTACH_RETRIES);
}

static int loop_detach(const struct ebs_volume *v, struct ebs_attachment *at, char *err, size_t cap)
{
	if (at->device[0] == '\0')
		find_own(v, at, at->device, sizeof(at->device));
	if (at->device[0] == '\0')
		return 0;
	int fd = open(at->device, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		at->device[0] = '\0';
		return 0;
	}
	if (fd < 0 || (ioctl(fd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ebs_error(err, cap, -e, "cannot detach %s: %s%s", at->device, strerror(e),
				 e == EBUSY ? " (still mounted or open: run mcwarm-ctl umount)"
					    : "");
	}
	close(fd);
	at->device[0] = '\0';
	return 0;
}

static int loop_destroy(struct ebs_volume *v, char *err, size_t cap)
{
	char dev[EBS_PATH_MAX];
	find_attachment(v->path, EBS_RW, NULL, dev, sizeof(dev));
	if (dev[0] == '\0')
		find_attachment(v->path, EBS_RO, NULL, dev, sizeof(dev));
	if (dev[0] != '\0')
		return ebs_error(err, cap, -EBUSY, "%s is still attached as %s: detach it first",
				 v->path, dev);
	if (unlink(v->path) < 0 && errno != ENOENT)
		return ebs_error(err, cap, -errno, "cannot remove %s: %s", v->path,
				 strerror(errno));
	return 0;
}

static int loop_describe(const struct ebs_volume *v, struct ebs_status *st, char *err, size_t cap)
{
	(void)err;
	(void)cap;
	struct stat sb;
	/* an image still being preallocated is not there yet for a reader */
	st->exists = stat(v->path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
	st->attachments =
	    find_attachment(v->path, EBS_RW, NULL, st->rw_device, sizeof(st->rw_device));
	find_attachment(v->path, EBS_RO, NULL, st->ro_device, sizeof(st->ro_device));
	st->rw_attached = st->rw_device[0] != '\0';
	st->ro_attached = st->ro_device[0] != '\0';
	st->others = st->attachments - st->rw_attached; /* one writer; the rest read */
	snprintf(st->other, sizeof(st->other), "%s", st->ro_device);
	snprintf(st->state, sizeof(st->state), "%s",
		 !st->exists	   ? "missing"
		 : st->attachments ? "in-use"
				   : "available");
	return 0;
}

const struct ebs_ops ebs_loop_ops = {
	.create = loop_create,
	.attach = loop_attach,
	.detach = loop_detach,
	.destroy = loop_destroy,
	.describe = loop_describe,
};
