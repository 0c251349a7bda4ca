/*
 * checkpoint.c: see checkpoint.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "checkpoint.h"
#include "crcline.h"

static void reset(struct checkpoint *cp)
{
	int fd = cp->fd;
	memset(cp, 0, sizeof(*cp));
	cp->fd = fd;
	pthread_mutex_init(&cp->mu, NULL);
}

static void mark(struct checkpoint *cp, uint32_t job)
{
	if (!checkpoint_job_is_done(cp, job)) {
		cp->done[job / 8] |= (uint8_t)(1u << (job % 8));
		cp->jobs_done++;
	}
	cp->job_end = MAX(cp->job_end, job + 1);
}

static bool parse(void *arg, char *line)
{
	struct checkpoint *cp = arg;
	uint32_t v;
	char dump[33], source[300];
	long long started;
	uint32_t pid, opts;
	if (cp->dump_id_hex[0] == '\0') { /* the first line */
		if (sscanf(line,
			   "mcwarm-checkpoint 1 dump=%32[0-9a-f] source=%299s started=%lld "
			   "pid=%" SCNu32 " options=%8" SCNx32,
			   dump, source, &started, &pid, &opts) != 5 ||
		    strlen(dump) != 32)
			return false;
		memcpy(cp->dump_id_hex, dump, sizeof(dump));
		memcpy(cp->source, source, sizeof(source));
		cp->source_started_s = started;
		cp->source_pid = pid;
		cp->options_crc = opts;
		return true;
	}
	if (sscanf(line, "keys-done chunks=%" SCNu32, &v) == 1 && v <= CHECKPOINT_JOBS_MAX) {
		cp->keys_done = true;
		cp->chunks = v;
		return true;
	}
	if (sscanf(line, "job %" SCNu32, &v) == 1 && v < CHECKPOINT_JOBS_MAX) {
		mark(cp, v);
		return true;
	}
	return false;
}

int checkpoint_load(struct checkpoint *cp, int spool_fd, char *err, size_t cap)
{
	cp->fd = openat(spool_fd, CHECKPOINT_NAME, O_RDWR | O_CLOEXEC);
	if (cp->fd < 0) {
		int e = errno;
		snprintf(err, cap, "cannot open the checkpoint: %s", strerror(e));
		return -e;
	}
	reset(cp);
	long bad = crcline_load(cp->fd, parse, cp);
	if (bad == 0 && cp->dump_id_hex[0] == '\0')
		bad = 1; /* empty: the first line never made it */
	if (bad < 0) {
		snprintf(err, cap, "cannot read the checkpoint: %s", strerror((int)-bad));
	} else if (bad > 0) {
		snprintf(err, cap, "the checkpoint is damaged at byte %ld", bad - 1);
		bad = -EBADMSG;
	} else if (cp->keys_done && cp->job_end > cp->chunks) {
		snprintf(err, cap, "the checkpoint names job %u of a listing of %u key chunks",
			 cp->job_end - 1, cp->chunks);
		bad = -EBADMSG;
	}
	if (bad != 0) {
		close(cp->fd);
		cp->fd = -1;
		return (int)bad;
	}
	return 0;
}

int checkpoint_create(struct checkpoint *cp, int spool_fd, const char *dump_id_hex,
		      const char *source, int64_t source_started_s, uint32_t source_pid,
		      uint32_t options_crc)
{
	cp->fd = openat(spool_fd, CHECKPOINT_NAME, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (cp->fd < 0)
		return -errno;
	reset(cp);
	snprintf(cp->dump_id_hex, sizeof(cp->dump_id_hex), "%s", dump_id_hex);
	snprintf(cp->source, sizeof(cp->source), "%s", source);
	cp->source_started_s = source_started_s;
	cp->source_pid = source_pid;
	cp->options_crc = options_crc;
	int ret = crcline_append(cp->fd,
				 "mcwarm-checkpoint 1 dump=%s source=%s started=%lld pid=%u "
				 "options=%08x",
				 cp->dump_id_hex, cp->source, (long long)source_started_s,
				 source_pid, options_crc);
	if (ret == 0 && (fsync(cp->fd) < 0 || fsync(spool_fd) < 0))
		ret = -errno;
	return ret;
}

int checkpoint_keys_done(struct checkpoint *cp, uint32_t chunks)
{
	pthread_mutex_lock(&cp->mu);
	cp->keys_done = true;
	cp->chunks = chunks;
	int ret = cp->fd >= 0 ? crcline_append(cp->fd, "keys-done chunks=%u", chunks) : 0;
	pthread_mutex_unlock(&cp->mu);
	return ret;
}

int checkpoint_job_done(struct checkpoint *cp, uint32_t job)
{
	if (job >= CHECKPOINT_JOBS_MAX)
		return -ERANGE;
	pthread_mutex_lock(&cp->mu); /* the loaded bitmap stays as it was: workers read it */
	int ret = cp->fd >= 0 ? crcline_append(cp->fd, "job %u", job) : 0;
	pthread_mutex_unlock(&cp->mu);
	return ret;
}

bool checkpoint_job_is_done(const struct checkpoint *cp, uint32_t job)
{
	return job < CHECKPOINT_JOBS_MAX && (cp->done[job / 8] >> (job % 8)) & 1u;
}

void checkpoint_close(struct checkpoint *cp)
{
	if (cp->fd >= 0)
		close(cp->fd);
	cp->fd = -1;
}
