/*
 * ebs.h: volumes, where the dumper writes and the populator reads. One interface, three
 * backends:
 *
 *   dir   an existing directory: nothing to attach or mount (one machine, tests)
 *   loop  an image file; one loop device per attachment, so the read-only side sees the
 *         writer's blocks only as they reach the disk, and metadata only after a remount,
 *         as an EBS multi-attach reader does (the default on one machine)
 *   ec2   an EBS io2 volume with multi-attach, through the aws command line
 *
 * Every step is idempotent: it checks what exists and does only what is missing, so a
 * restarted controller repeats steps safely. Only this library calls mount(2), the loop
 * ioctls and the aws command. Functions return 0 or -errno; err explains a failure for an
 * operator (the cause and the fix).
 */
#ifndef EBS_H
#define EBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ebs_kind { EBS_DIR, EBS_LOOP, EBS_EC2 };
enum ebs_access { EBS_RW, EBS_RO };

#define EBS_PATH_MAX 512

struct ebs_volume {
	enum ebs_kind kind;
	char path[EBS_PATH_MAX]; /* dir: the directory; loop: the image file */
	char volume_id[64];	 /* ec2: vol-..., filled by create */
	uint64_t size_bytes;
	char fs[8]; /* ext4 (default) or xfs */
	/* ec2 */
	char region[32];
	char zone[32];
	char tag[64]; /* names the volume, so create finds it again */
	char instance_rw[32];
	char instance_ro[32];
	unsigned iops;
	unsigned wait_s; /* longest wait for a state change (0: EBS_WAIT_S_DEFAULT) */
};

#define EBS_WAIT_S_DEFAULT 300

struct ebs_attachment {
	enum ebs_access access;
	char device[EBS_PATH_MAX]; /* /dev/loop3, /dev/nvme1n1; dir: the directory */
	char mountpoint[EBS_PATH_MAX];
};

#define EBS_ATTACHMENTS_MAX 16 /* io2 multi-attach: instances one volume attaches to */

struct ebs_status {
	bool exists;
	char state[32];		  /* backend's word: available, in-use, ... */
	unsigned attachments;	  /* all of them, this plan's and any other reader's */
	unsigned others;	  /* attachments that are not the writer's (readers) */
	char other[EBS_PATH_MAX]; /* one of them: loop: its device; ec2: its instance */
	bool rw_attached, ro_attached;
	char rw_device[EBS_PATH_MAX], ro_device[EBS_PATH_MAX];
	bool rw_mounted, ro_mounted;
};

const char *ebs_kind_name(enum ebs_kind k);
int ebs_kind_parse(const char *s, enum ebs_kind *out);

/* ec2: looks the volume up by its tag when no volume_id is given (fills it in, or leaves
 * it empty when there is none). Other backends: nothing to do. */
int ebs_find(struct ebs_volume *v, char *err, size_t cap);

/* Creates the volume (loop: a preallocated image; ec2: create-volume and wait until
 * available; dir: mkdir). An existing one is found and kept. */
int ebs_create(struct ebs_volume *v, char *err, size_t cap);

/* Attaches for reading and writing or read-only; an existing attachment is reused.
 * Fills at->device. loop: each read-only attachment is its reader's own device, named
 * by at->mountpoint, so several readers of one image on one host never share one. */
int ebs_attach(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at, char *err,
	       size_t cap);

/* Checks, before anything is created or attached, that the plan can work: ec2: the
 * volume (when it exists) is io2 with multi-attach, in the availability zone of the
 * instances this host attaches (rw and/or ro), with room for one more attachment
 * (EBS_ATTACHMENTS_MAX); without --zone the zone becomes the instance's. Other backends:
 * nothing to check. -EINVAL with the reason and the fix in err. */
int ebs_check(struct ebs_volume *v, bool rw, bool ro, char *err, size_t cap);

/* Does the attached device carry a filesystem (read past the page cache, so a reader
 * sees the writer's mkfs)? */
bool ebs_has_filesystem(const struct ebs_attachment *at);

/* Makes the filesystem unless the device already holds one. */
int ebs_mkfs(const struct ebs_volume *v, const struct ebs_attachment *at, char *err, size_t cap);

/* Mounts at->device at mountpoint (created if missing): read-write, or read-only without
 * journal recovery (ext4 noload, xfs norecovery). Already mounted there: ok. */
int ebs_mount(const struct ebs_volume *v, struct ebs_attachment *at, const char *mountpoint,
	      char *err, size_t cap);

/* Unmounts (not mounted: ok). */
int ebs_umount(struct ebs_attachment *at, char *err, size_t cap);

/* syncfs on the mount: what a reader sees after its next remount. */
int ebs_syncfs(const struct ebs_attachment *at, char *err, size_t cap);

/* Unmounts at->mountpoint and detaches (not attached: ok). ec2: a read-only attachment
 * that another reader on this host still has mounted stays attached for it. */
int ebs_detach(const struct ebs_volume *v, struct ebs_attachment *at, char *err, size_t cap);

/* Deletes the volume (loop: the image; ec2: delete-volume; dir: nothing, it is the
 * operator's). Not there: ok. */
int ebs_destroy(struct ebs_volume *v, char *err, size_t cap);

/* What exists now. */
int ebs_describe(const struct ebs_volume *v, struct ebs_status *st, char *err, size_t cap);

/* Creates a directory and its parents; 0 or -errno. */
int ebs_mkdirs(const char *path);

/* Is the block device mounted anywhere on this host (by major:minor, this mount
 * namespace)? */
bool ebs_device_is_mounted(const char *dev);

/* Is path a mountpoint right now (from /proc/self/mountinfo)? */
bool ebs_is_mounted(const char *path);

#endif
