/*
 * ec2.c: the ec2 backend: an EBS io2 volume with multi-attach, through the aws command
 * line (`aws ec2 ... --query ... --output text`, so no JSON parsing). The writer's
 * attachment goes to instance_rw, the reader's to instance_ro; each instance finds its
 * device by volume id under /dev/disk/by-id (MCW_EBS_BYID_DIR overrides it, with %i
 * replaced by the instance id, for tests).
 *
 * Limits: throttled calls are retried EC2_RETRIES times with backoff; every wait for a
 * state (available, attached, detached, the device node) gives up after v->wait_s.
 * Before anything is created, ec2_check refuses a plan EBS cannot carry out: a volume
 * that is not io2 with multi-attach, an instance in another availability zone, or a
 * volume already attached to EBS_ATTACHMENTS_MAX instances. A populator instance may
 * read several volumes: that is not limited here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ebs_private.h"

#define EC2_RETRIES	   8
#define EC2_BACKOFF_MIN_MS 200
#define EC2_BACKOFF_MAX_MS 5000
#define EC2_POLL_MS	   500
#define EC2_CALL_MS	   60000
#define EC2_REATTACH_MAX   4 /* attachments that went away (another reader left) before use */

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wait_ms(const struct ebs_volume *v)
{
	return (int64_t)(v->wait_s ? v->wait_s : EBS_WAIT_S_DEFAULT) * 1000;
}

static bool throttled(const char *errout)
{
	return strstr(errout, "RequestLimitExceeded") || strstr(errout, "Throttling") ||
	       strstr(errout, "ThrottlingException");
}

/* Runs `aws --region R ec2 <args> --output text`; retries throttling. 0 or -errno. */
static int aws(const struct ebs_volume *v, const char *const args[], char *out, size_t out_cap,
	       char *err, size_t cap)
{
	char *argv[32];
	int n = 0;
	argv[n++] = "aws";
	if (v->region[0]) {
		argv[n++] = "--region";
		argv[n++] = (char *)v->region;
	}
	argv[n++] = "ec2";
	for (int i = 0; args[i] != NULL && n < 28; i++)
		argv[n++] = (char *)args[i];
	argv[n++] = "--output";
	argv[n++] = "text";
	argv[n] = NULL;
	unsigned delay = EC2_BACKOFF_MIN_MS;
	char errout[2048];
	for (int attempt = 0;; attempt++) {
		errout[0] = '\0';
		int ret = ebs_run(argv, out, out_cap, errout, sizeof(errout), EC2_CALL_MS);
		if (ret == 0)
			return 0;
		if (ret == 127)
			return ebs_error(err, cap, -ENOENT,
					 "the aws command line is not installed (apt-get install "
					 "awscli) or not on PATH");
		if (ret == -ETIME)
			return ebs_error(err, cap, -ETIME, "aws ec2 %s did not answer within %d s",
					 args[0], EC2_CALL_MS / 1000);
		if (!throttled(errout) || attempt == EC2_RETRIES)
			return ebs_error(
			    err, cap, -EIO, "aws ec2 %s failed%s: %s", args[0],
			    throttled(errout) ? " (still throttled after retries)" : "", errout);
		unsigned jitter = (unsigned)rand() % (delay / 2 + 1);
		sleep_ms(delay / 2 + jitter);
		delay = delay * 2 > EC2_BACKOFF_MAX_MS ? EC2_BACKOFF_MAX_MS : delay * 2;
	}
}

static int volume_state(const struct ebs_volume *v, char *state, size_t state_cap, char *err,
			size_t cap)
{
	const char *args[] = { "describe-volumes", "--volume-ids",     v->volume_id,
			       "--query",	   "Volumes[0].State", NULL };
	return aws(v, args, state, state_cap, err, cap);
}

/* "attached", "attaching", "detaching", or "None" when not attached to that instance. */
static int attachment_state(const struct ebs_volume *v, const char *instance, char *state,
			    size_t state_cap, char *err, size_t cap)
{
	char query[160];
	snprintf(query, sizeof(query), "Volumes[0].Attachments[?InstanceId=='%s'].State | [0]",
		 instance);
	const char *args[] = { "describe-volumes", "--volume-ids", v->volume_id,
			       "--query",	   query,	   NULL };
	return aws(v, args, state, state_cap, err, cap);
}

/* Polls until the attachment (or the volume with instance NULL) reaches want. */
static int wait_state(const struct ebs_volume *v, const char *instance, const char *want, char *err,
		      size_t cap)
{
	char state[64] = "";
	int64_t deadline = now_ms() + wait_ms(v);
	for (;;) {
		int ret = instance ? attachment_state(v, instance, state, sizeof(state), err, cap)
				   : volume_state(v, state, sizeof(state), err, cap);
		if (ret < 0)
			return ret;
		if (strcmp(state, want) == 0)
			return 0;
		if (now_ms() > deadline)
			return ebs_error(err, cap, -ETIME,
					 "%s %s: still '%s' after %d s, not '%s'%s", v->volume_id,
					 instance ? instance : "", state, (int)(wait_ms(v) / 1000),
					 want,
					 strcmp(state, "attaching") == 0
					     ? " (stuck attaching: detach it with aws ec2 "
					       "detach-volume --force, then run again)"
					     : "");
		sleep_ms(EC2_POLL_MS);
	}
}

static int ec2_find(struct ebs_volume *v, char *err, size_t cap)
{
	char out[256] = "", tagq[160];
	if (v->volume_id[0] != '\0')
		return 0;
	snprintf(tagq, sizeof(tagq), "Name=tag:mcwarm,Values=%s", v->tag);
	const char *find[] = { "describe-volumes", "--filters",		  tagq,
			       "--query",	   "Volumes[0].VolumeId", NULL };
	int ret = aws(v, find, out, sizeof(out), err, cap);
	if (ret == 0 && strncmp(out, "vol-", 4) == 0)
		snprintf(v->volume_id, sizeof(v->volume_id), "%.63s", out);
	return ret;
}

static int ec2_create(struct ebs_volume *v, char *err, size_t cap)
{
	char out[256] = "", tagspec[200], size[24], iops[16];
	int ret = ec2_find(v, err, cap); /* by tag first: create is idempotent */
	if (ret < 0)
		return ret;
	if (v->volume_id[0] == '\0') {
		snprintf(size, sizeof(size), "%llu",
			 (unsigned long long)((v->size_bytes + (1ull << 30) - 1) >> 30));
		snprintf(iops, sizeof(iops), "%u", v->iops ? v->iops : 3000);
		snprintf(tagspec, sizeof(tagspec),
			 "ResourceType=volume,Tags=[{Key=mcwarm,Value=%s}]", v->tag);
		const char *create[] = { "create-volume",
					 "--availability-zone",
					 v->zone,
					 "--size",
					 size,
					 "--volume-type",
					 "io2",
					 "--iops",
					 iops,
					 "--multi-attach-enabled",
					 "--tag-specifications",
					 tagspec,
					 "--query",
					 "VolumeId",
					 NULL };
		ret = aws(v, create, out, sizeof(out), err, cap);
		if (ret < 0)
			return ret;
		if (strncmp(out, "vol-", 4) != 0)
			return ebs_error(err, cap, -EPROTO, "create-volume answered '%s'", out);
		snprintf(v->volume_id, sizeof(v->volume_id), "%.63s", out);
	}
	char state[64];
	ret = volume_state(v, state, sizeof(state), err, cap);
	if (ret < 0 || strcmp(state, "available") == 0 || strcmp(state, "in-use") == 0)
		return ret;
	return wait_state(v, NULL, "available", err, cap);
}

/* The device node of this volume on this host, once it appears. */
static int find_device(const struct ebs_volume *v, const char *instance, char *dev, size_t cap_dev,
		       char *err, size_t cap)
{
	const char *tmpl = getenv("MCW_EBS_BYID_DIR");
	char dir[EBS_PATH_MAX], path[EBS_PATH_MAX + 128], id[64];
	size_t o = 0;
	for (const char *t = tmpl ? tmpl : "/dev/disk/by-id"; *t && o + 40 < sizeof(dir); t++) {
		if (t[0] == '%' && t[1] == 'i') {
			o += (size_t)snprintf(dir + o, sizeof(dir) - o, "%s", instance);
			t++;
		} else {
			dir[o++] = *t;
		}
	}
	dir[o] = '\0';
	o = 0;
	for (const char *s = v->volume_id; *s && o + 1 < sizeof(id); s++)
		if (*s != '-')
			id[o++] = *s;
	id[o] = '\0';
	snprintf(path, sizeof(path), "%s/nvme-Amazon_Elastic_Block_Store_%s", dir, id);
	int64_t deadline = now_ms() + wait_ms(v);
	char state[64];
	while (realpath(path, dev) == NULL) {
		if (now_ms() > deadline)
			return ebs_error(err, cap, -ENOENT,
					 "%s is attached but %s did not appear (is this the "
					 "instance it is attached to?)",
					 v->volume_id, path);
		sleep_ms(EC2_POLL_MS);
		/* another reader on this instance whose attachment we found may detach it */
		if (attachment_state(v, instance, state, sizeof(state), err, cap) == 0 &&
		    (strcmp(state, "None") == 0 || strcmp(state, "detaching") == 0))
			return -EAGAIN;
	}
	(void)cap_dev;
	return 0;
}

/* attach-volume refused as in use: did another reader on this instance attach it a
 * moment ago (two ro halves of one volume on one host)? Then wait for that one. */
static bool attached_meanwhile(const struct ebs_volume *v, const char *instance, const char *err)
{
	char state[64], again[512];
	if (strstr(err, "VolumeInUse") == NULL)
		return false;
	if (attachment_state(v, instance, state, sizeof(state), again, sizeof(again)) < 0)
		return false;
	return strcmp(state, "attaching") == 0 || strcmp(state, "attached") == 0;
}

static int attach_once(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at,
		       char *err, size_t cap)
{
	const char *instance = a == EBS_RW ? v->instance_rw : v->instance_ro;
	char state[64];
	if (instance[0] == '\0')
		return ebs_error(err, cap, -EINVAL, "no %s instance id in the plan",
				 a == EBS_RW ? "writer (source)" : "reader (populator)");
	int ret = attachment_state(v, instance, state, sizeof(state), err, cap);
	if (ret == 0 && strcmp(state, "detaching") == 0) /* another reader here left it */
		ret = wait_state(v, instance, "None", err, cap);
	if (ret < 0)
		return ret;
	if (strcmp(state, "attached") != 0) {
		if (strcmp(state, "attaching") != 0) {
			const char *args[] = { "attach-volume",
					       "--volume-id",
					       v->volume_id,
					       "--instance-id",
					       instance,
					       "--device",
					       a == EBS_RW ? "/dev/sdf" : "/dev/sdg",
					       NULL };
			ret = aws(v, args, NULL, 0, err, cap);
			if (ret < 0 && !attached_meanwhile(v, instance, err))
				return ret;
		}
		ret = wait_state(v, instance, "attached", err, cap);
		if (ret < 0)
			return ret;
	}
	return find_device(v, instance, at->device, sizeof(at->device), err, cap);
}

static int ec2_attach(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at,
		      char *err, size_t cap)
{
	int ret = -EAGAIN;
	for (unsigned i = 0; i < EC2_REATTACH_MAX && ret == -EAGAIN; i++)
		ret = attach_once(v, a, at, err, cap);
	if (ret == -EAGAIN)
		return ebs_error(err, cap, -EAGAIN,
				 "%s was detached from this instance %d times while we waited for "
				 "its device (other readers here leaving it): try again",
				 v->volume_id, EC2_REATTACH_MAX);
	return ret;
}

static int ec2_detach(const struct ebs_volume *v, struct ebs_attachment *at, char *err, size_t cap)
{
	const char *instance = at->access == EBS_RW ? v->instance_rw : v->instance_ro;
	char state[64];
	if (v->volume_id[0] == '\0' || instance[0] == '\0') { /* no volume, or not this side */
		at->device[0] = '\0';
		return 0;
	}
	int ret = attachment_state(v, instance, state, sizeof(state), err, cap);
	if (ret < 0)
		return ret;
	if (strcmp(state, "None") != 0 && strcmp(state, "detaching") != 0) {
		const char *args[] = { "detach-volume", "--volume-id", v->volume_id,
				       "--instance-id", instance,      NULL };
		ret = aws(v, args, NULL, 0, err, cap);
		if (ret < 0)
			return ret;
	}
	ret = wait_state(v, instance, "None", err, cap);
	if (ret == 0)
		at->device[0] = '\0';
	return ret;
}

static int ec2_destroy(struct ebs_volume *v, char *err, size_t cap)
{
	if (v->volume_id[0] == '\0')
		return 0;
	const char *args[] = { "delete-volume", "--volume-id", v->volume_id, NULL };
	int ret = aws(v, args, NULL, 0, err, cap);
	if (ret < 0 && strstr(err, "InvalidVolume.NotFound") != NULL)
		ret = 0; /* already gone */
	if (ret == 0)
		v->volume_id[0] = '\0';
	return ret;
}

/* The availability zone of an instance. */
static int instance_zone(const struct ebs_volume *v, const char *instance, char *zone,
			 size_t zone_cap, char *err, size_t cap)
{
	const char *args[] = { "describe-instances",
			       "--instance-ids",
			       instance,
			       "--query",
			       "Reservations[0].Instances[0].Placement.AvailabilityZone",
			       NULL };
	int ret = aws(v, args, zone, zone_cap, err, cap);
	if (ret == 0 && (zone[0] == '\0' || strcmp(zone, "None") == 0))
		return ebs_error(err, cap, -EINVAL,
				 "instance %s does not exist (describe-instances "
				 "found no placement): check --instance-rw/--instance-ro",
				 instance);
	return ret;
}

/* An existing volume's type, multi-attach flag, zone and attachment count. */
static int check_volume(const struct ebs_volume *v, const char *instance, char *err, size_t cap)
{
	char out[256] = "", type[32] = "", multi[16] = "", zone[32] = "", state[64] = "";
	unsigned n = 0;
	const char *args[] = { "describe-volumes",
			       "--volume-ids",
			       v->volume_id,
			       "--query",
			       "Volumes[0].[VolumeType,MultiAttachEnabled,AvailabilityZone,"
			       "length(Attachments)]",
			       NULL };
	int ret = aws(v, args, out, sizeof(out), err, cap);
	if (ret < 0)
		return ret;
	sscanf(out, "%31s %15s %31s %u", type, multi, zone, &n);
	if (strcmp(type, "io2") != 0 || strcmp(multi, "True") != 0)
		return ebs_error(
		    err, cap, -EINVAL,
		    "%s is %s%s, not io2 with multi-attach: a "
		    "reader on another host cannot attach it; use an io2 volume "
		    "created with --multi-attach-enabled (or let mcwarm-ctl create one)",
		    v->volume_id, type, strcmp(multi, "True") == 0 ? "" : " without multi-attach");
	if (v->zone[0] != '\0' && strcmp(zone, v->zone) != 0)
		return ebs_error(err, cap, -EINVAL,
				 "%s is in %s, but the plan (--zone, or the instances) is in %s: "
				 "EBS attaches a volume only within its own availability zone",
				 v->volume_id, zone, v->zone);
	if (attachment_state(v, instance, state, sizeof(state), err, cap) < 0)
		return -EIO;
	if (n >= EBS_ATTACHMENTS_MAX && strcmp(state, "None") == 0)
		return ebs_error(err, cap, -EINVAL,
				 "%s is already attached to %u instances, the "
				 "io2 multi-attach limit (%d): %s cannot attach it; let a reader "
				 "finish and detach first, or split the readers over more volumes",
				 v->volume_id, n, EBS_ATTACHMENTS_MAX, instance);
	return 0;
}

/* One instance of the plan: in the volume's zone (the zone becomes the instance's when
 * the plan names none), and the volume, if it exists, fit for it. */
static int check_instance(struct ebs_volume *v, const char *instance, const char *role, char *err,
			  size_t cap)
{
	char zone[32] = "";
	if (instance[0] == '\0')
		return 0; /* not attached by this plan (attach says so if it should be) */
	int ret = instance_zone(v, instance, zone, sizeof(zone), err, cap);
	if (ret < 0)
		return ret;
	if (v->zone[0] == '\0')
		snprintf(v->zone, sizeof(v->zone), "%s", zone);
	if (strcmp(zone, v->zone) != 0)
		return ebs_error(err, cap, -EINVAL,
				 "the %s instance %s is in %s but the volume is "
				 "in %s: EBS attaches a volume only to instances of its own "
				 "availability zone; run this half on an instance in %s",
				 role, instance, zone, v->zone, v->zone);
	return v->volume_id[0] ? check_volume(v, instance, err, cap) : 0;
}

static int ec2_check(struct ebs_volume *v, bool rw, bool ro, char *err, size_t cap)
{
	int ret = ec2_find(v, err, cap);
	if (ret == 0 && rw)
		ret = check_instance(v, v->instance_rw, "source", err, cap);
	if (ret == 0 && ro)
		ret = check_instance(v, v->instance_ro, "populator", err, cap);
	return ret;
}

static int ec2_describe(const struct ebs_volume *v, struct ebs_status *st, char *err, size_t cap)
{
	if (v->volume_id[0] == '\0')
		return 0;
	int ret = volume_state(v, st->state, sizeof(st->state), err, cap);
	if (ret < 0)
		return strstr(err, "InvalidVolume.NotFound") ? 0 : ret;
	st->exists = strcmp(st->state, "None") != 0;
	char a[64];
	if (v->instance_rw[0] && attachment_state(v, v->instance_rw, a, sizeof(a), err, cap) == 0)
		st->rw_attached = strcmp(a, "attached") == 0;
	if (v->instance_ro[0] && attachment_state(v, v->instance_ro, a, sizeof(a), err, cap) == 0)
		st->ro_attached = strcmp(a, "attached") == 0;
	/* every attached instance, for a writer releasing the volume */
	char list[1024] = "";
	const char *args[] = { "describe-volumes",
			       "--volume-ids",
			       v->volume_id,
			       "--query",
			       "Volumes[0].Attachments[].InstanceId",
			       NULL };
	ret = aws(v, args, list, sizeof(list), err, cap);
	if (ret < 0)
		return ret;
	st->attachments = 0;
	for (char *save = NULL, *w = strtok_r(list, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save)) {
		if (strcmp(w, "None") == 0)
			continue;
		st->attachments++;
		if (strcmp(w, v->instance_rw) == 0)
			continue;
		if (st->others++ == 0)
			snprintf(st->other, sizeof(st->other), "instance %s", w);
	}
	return 0;
}

const struct ebs_ops ebs_ec2_ops = {
	.find = ec2_find,
	.create = ec2_create,
	.attach = ec2_attach,
	.detach = ec2_detach,
	.destroy = ec2_destroy,
	.describe = ec2_describe,
	.check = ec2_check,
};
