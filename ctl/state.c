/*
 * state.c: the controller's state file, <work>/ctl.state: "key=value" lines and a last
 * line "crc32c=<8 hex>" over the rest; written to a temporary name, synced, renamed, and
 * the directory synced. A damaged file is reported, never half trusted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"

static const char *const phase_names[] = { "new",	"volume",   "dumping", "dumped",
					   "populated", "verified", "done",    "failed" };
static const char *const side_names[] = { "both", "rw", "ro" };

const char *ctl_phase_name(enum ctl_phase p)
{
	return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "?";
}

const char *ctl_side_name(enum ctl_side side)
{
	return (unsigned)side < sizeof(side_names) / sizeof(side_names[0]) ? side_names[side] : "?";
}

int ctl_side_parse(const char *name, enum ctl_side *out)
{
	for (unsigned i = 0; i < sizeof(side_names) / sizeof(side_names[0]); i++)
		if (strcmp(name, side_names[i]) == 0) {
			*out = (enum ctl_side)i;
			return 0;
		}
	return -EINVAL;
}

void ctl_path(char *out, size_t cap, const struct ctl_plan *p, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(out, cap, "%s/", p->work);
	va_start(ap, fmt);
	vsnprintf(out + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
}

const char *ctl_backend_name(const struct ctl_plan *p)
{
	return p->s3 ? "s3" : ebs_kind_name(p->vol.kind);
}

void ctl_dump_dir(char *out, size_t cap, const struct ctl_plan *p, enum ebs_access side, unsigned n)
{
	if (p->s3) /* the dumper's local checkpoint (the dump itself is in the store) */
		ctl_path(out, cap, p, "dump-%u", n);
	else if (p->vol.kind == EBS_DIR)
		snprintf(out, cap, "%s/dump-%u", p->vol.path, n);
	else
		ctl_path(out, cap, p, "%s/dump-%u", side == EBS_RW ? "rw" : "ro", n);
	size_t len = strlen(out);
	if (side == EBS_RO && p->group[0] != '\0')
		snprintf(out + len, cap - len, "/%s", p->group);
}

void ctl_dump_out(char *out, size_t cap, const struct ctl_plan *p, unsigned n)
{
	if (p->s3)
		ctl_s3_dump_url(out, cap, p, n);
	else
		ctl_dump_dir(out, cap, p, EBS_RW, n);
}

int ctl_secure_args(const struct ctl_plan *p, enum ctl_servers which, char **args, int n, int cap)
{
	for (unsigned i = 0; i + 1 < p->nsec && n + 2 <= cap; i += 2) { /* name, value or "" */
		bool dest = strncmp(p->sec[i], "--dest-", 7) == 0;
		if (!(which & (dest ? CTL_DEST : CTL_SOURCE)))
			continue;
		args[n++] = (char *)p->sec[i];
		if (p->sec[i + 1][0] != '\0')
			args[n++] = (char *)p->sec[i + 1];
	}
	return n;
}

int ctl_filter_args(const struct ctl_plan *p, char **args, int n, int cap)
{
	for (unsigned i = 0; i < p->nfilters && n < cap; i++)
		args[n++] = (char *)p->filter[i];
	return n;
}

/* One "option = value" line per option that says where the volume is and what is done
 * with it (read back with --plan, as an operator's plan file). */
int ctl_plan_save(const struct ctl_plan *p)
{
	char path[CTL_PATH_MAX + 16], tmp[CTL_PATH_MAX + 16];
	const struct ebs_volume *v = &p->vol;
	const char *const kv[][2] = {
		{ "side", ctl_side_name(p->side) },
		{ "source", p->source },
		{ "dest", p->dest },
		{ "backend", ctl_backend_name(p) },
		{ "volume", v->path },
		{ "fs", v->fs },
		{ "region", v->region },
		{ "zone", v->zone },
		{ "tag", v->tag },
		{ "instance-rw", v->instance_rw },
		{ "instance-ro", v->instance_ro },
		{ "volume-id", v->volume_id },
		{ "group", p->group },
		{ "mcwarm", p->mcwarm },
	};
	snprintf(path, sizeof(path), "%s/ctl.plan", p->work);
	snprintf(tmp, sizeof(tmp), "%s/.ctl.plan.tmp", p->work);
	FILE *f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	fprintf(f, "# written by mcwarm-ctl warm: the plan of this work directory\n");
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		if (kv[i][1][0] != '\0')
			fprintf(f, "%s = %s\n", kv[i][0], kv[i][1]);
	for (unsigned i = 0; i + 1 < p->nfilters; i += 2)
		fprintf(f, "%s = %s\n", p->filter[i] + 2, p->filter[i + 1]);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		int e = errno;
		fclose(f);
		return -e;
	}
	fclose(f);
	return rename(tmp, path) < 0 ? -errno : 0;
}

uint32_t ctl_plan_crc(const struct ctl_plan *p)
{
	char key[1400];
	/* what identifies the warm-up; not the size, which may come from the source's stats */
	int n = snprintf(key, sizeof(key), "%s|%s|%s|%s|%s|%s", p->source, p->dest,
			 ctl_backend_name(p), p->vol.path, p->vol.fs, p->vol.tag);
	if (p->side != SIDE_BOTH) /* one host's half, and which keys it moves */
		n += snprintf(key + n, sizeof(key) - (size_t)n, "|%s|%s", ctl_side_name(p->side),
			      p->group);
	uint32_t crc = mcw_crc32c(0, key, (size_t)n);
	for (unsigned i = 0; i < p->nfilters; i++)
		crc = mcw_crc32c(crc, p->filter[i], strlen(p->filter[i]) + 1);
	return crc;
}

void ctl_crash_point(const char *name)
{
	const char *at = getenv("MCW_CTL_CRASH_AT");
	if (at != NULL && strcmp(at, name) == 0) {
		fprintf(stderr, "mcwarm-ctl: MCW_CTL_CRASH_AT=%s: killing myself\n", name);
		kill(getpid(), SIGKILL);
	}
}

int ctl_state_save(const char *work, const struct ctl_state *s)
{
	char text[4096], tmp[CTL_PATH_MAX + 16], path[CTL_PATH_MAX + 16];
	int n = snprintf(
	    text, sizeof(text),
	    "mcwarm-ctl-state "
	    "1\nplan_crc=%08x\nside=%s\nphase=%s\ncreated_volume=%d\nvolume_id=%s\n"
	    "volume_bytes=%" PRIu64 "\n"
	    "rw_device=%s\nro_device=%s\ndump_n=%u\ndump_pid=%d\ndump_started_ns=%" PRId64
	    "\ndump_done_ns=%" PRId64 "\ndump_exit=%d\npopulate_pid=%d\ncycles=%u\n"
	    "first_apply_ns=%" PRId64 "\nlast_cycle_ns=%" PRId64 "\npopulated_ns=%" PRId64
	    "\nfiles_applied=%" PRIu64 "\nitems_sent=%" PRIu64 "\nalready_present=%" PRIu64
	    "\nbytes_sent=%" PRIu64 "\nevictions=%" PRIu64
	    "\nverify_ratio=%.6f\nverify_exit=%d\nstarted_ns=%" PRId64 "\nvolume_ns=%" PRId64
	    "\nverified_ns=%" PRId64 "\nfinished_ns=%" PRId64 "\nerror=%s\n",
	    s->plan_crc, ctl_side_name(s->side), ctl_phase_name(s->phase), s->created_volume,
	    s->volume_id, s->volume_bytes, s->rw_device, s->ro_device, s->dump_n, (int)s->dump_pid,
	    s->dump_started_ns, s->dump_done_ns, s->dump_exit, (int)s->populate_pid, s->cycles,
	    s->first_apply_ns, s->last_cycle_ns, s->populated_ns, s->files_applied, s->items_sent,
	    s->already_present, s->bytes_sent, s->evictions, s->verify_ratio, s->verify_exit,
	    s->started_ns, s->volume_ns, s->verified_ns, s->finished_ns, s->error);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "crc32c=%08x\n",
		      mcw_crc32c(0, text, (size_t)n));
	snprintf(path, sizeof(path), "%s/ctl.state", work);
	snprintf(tmp, sizeof(tmp), "%s/.ctl.state.tmp", work);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, (size_t)n) != n || fsync(fd) < 0) {
		int e = errno ? errno : EIO;
		close(fd);
		return -e;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		return -errno;
	int dfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	ctl_crash_point(ctl_phase_name(s->phase));
	return 0;
}

static void field(const char *line, const char *key, const char *fmt, void *out)
{
	size_t k = strlen(key);
	if (strncmp(line, key, k) == 0 && line[k] == '=')
		sscanf(line + k + 1, fmt, out);
}

int ctl_state_load(const char *work, struct ctl_state *s, char *err, size_t cap)
{
	char path[CTL_PATH_MAX + 16], text[4096];
	snprintf(path, sizeof(path), "%s/ctl.state", work);
	memset(s, 0, sizeof(*s));
	s->dump_exit = s->verify_exit = -1;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	char *last = n > 1 ? memrchr(text, '\n', n - 1) : NULL;
	unsigned crc;
	if (last == NULL || sscanf(last + 1, "crc32c=%8x", &crc) != 1 ||
	    !mcw_crc_matches(crc, mcw_crc32c(0, text, (size_t)(last - text) + 1)) ||
	    strncmp(text, "mcwarm-ctl-state 1\n", 19) != 0) {
		snprintf(err, cap,
			 "%s is damaged (checksum mismatch): it cannot be trusted; check what "
			 "exists with mcwarm-ctl status, clean up with mcwarm-ctl destroy, then "
			 "remove it",
			 path);
		return -EBADMSG;
	}
	last[1] = '\0';
	char phase[32] = "", side[16] = "both";
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		field(line, "plan_crc", "%8x", &s->plan_crc);
		field(line, "phase", "%31s", phase);
		field(line, "side", "%15s", side);
		int created = -1;
		field(line, "created_volume", "%d", &created);
		if (created >= 0)
			s->created_volume = created != 0;
		field(line, "volume_bytes", "%" SCNu64, &s->volume_bytes);
		field(line, "volume_id", "%63s", s->volume_id);
		field(line, "rw_device", "%511s", s->rw_device);
		field(line, "ro_device", "%511s", s->ro_device);
		field(line, "dump_n", "%u", &s->dump_n);
		field(line, "dump_pid", "%d", &s->dump_pid);
		field(line, "dump_started_ns", "%" SCNd64, &s->dump_started_ns);
		field(line, "dump_done_ns", "%" SCNd64, &s->dump_done_ns);
		field(line, "dump_exit", "%d", &s->dump_exit);
		field(line, "populate_pid", "%d", &s->populate_pid);
		field(line, "cycles", "%u", &s->cycles);
		field(line, "first_apply_ns", "%" SCNd64, &s->first_apply_ns);
		field(line, "last_cycle_ns", "%" SCNd64, &s->last_cycle_ns);
		field(line, "populated_ns", "%" SCNd64, &s->populated_ns);
		field(line, "files_applied", "%" SCNu64, &s->files_applied);
		field(line, "items_sent", "%" SCNu64, &s->items_sent);
		field(line, "already_present", "%" SCNu64, &s->already_present);
		field(line, "bytes_sent", "%" SCNu64, &s->bytes_sent);
		field(line, "evictions", "%" SCNu64, &s->evictions);
		field(line, "verify_ratio", "%lf", &s->verify_ratio);
		field(line, "verify_exit", "%d", &s->verify_exit);
		field(line, "started_ns", "%" SCNd64, &s->started_ns);
		field(line, "volume_ns", "%" SCNd64, &s->volume_ns);
		field(line, "verified_ns", "%" SCNd64, &s->verified_ns);
		field(line, "finished_ns", "%" SCNd64, &s->finished_ns);
		if (strncmp(line, "error=", 6) == 0)
			snprintf(s->error, sizeof(s->error), "%s", line + 6);
	}
	for (unsigned i = 0; i < sizeof(phase_names) / sizeof(phase_names[0]); i++)
		if (strcmp(phase, phase_names[i]) == 0)
			s->phase = (enum ctl_phase)i;
	ctl_side_parse(side, &s->side);
	return 0;
}
