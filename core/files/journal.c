/*
 * journal.c: see journal.h. Appends are one write of one whole line, so a crash leaves
 * at most a torn last line, which load drops.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "crcline.h"
#include "journal.h"

static_assert(JOURNAL_LINE_MAX + 64 <= CRCLINE_MAX, "a journal line fits a crc line");

#define BITMAP_BYTES (JOURNAL_BLOCKS_MAX / 8)

size_t journal_memory_bytes(void)
{
	return JOURNAL_FILES_MAX * sizeof(struct journal_entry) +
	       (size_t)JOURNAL_PARTIALS_MAX * BITMAP_BYTES;
}

static int cmp_key(uint32_t job, uint32_t part, const struct journal_entry *e)
{
	if (job != e->job)
		return job < e->job ? -1 : 1;
	return part < e->part ? -1 : part > e->part;
}

/* Index of (job, part), or where it would go. */
static uint32_t lower_bound(const struct journal *j, uint32_t job, uint32_t part)
{
	uint32_t lo = 0, hi = j->n;
	if (hi > 0 && cmp_key(job, part, &j->e[hi - 1]) > 0)
		return hi; /* the common case: files are applied in order */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cmp_key(job, part, &j->e[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct journal_entry *journal_find(const struct journal *j, uint32_t job, uint32_t part)
{
	uint32_t i = lower_bound(j, job, part);
	return i < j->n && cmp_key(job, part, &j->e[i]) == 0 ? &j->e[i] : NULL;
}

const uint8_t *journal_applied(const struct journal *j, const struct journal_entry *e)
{
	return e->bitmap >= 0 ? j->bitmaps + (size_t)e->bitmap * BITMAP_BYTES : NULL;
}

/* Inserts or updates an entry in memory. */
static int upsert(struct journal *j, const struct journal_entry *ne, const uint8_t *bitmap)
{
	uint32_t i = lower_bound(j, ne->job, ne->part);
	struct journal_entry *e;
	if (i < j->n && cmp_key(ne->job, ne->part, &j->e[i]) == 0) {
		e = &j->e[i];
	} else {
		if (j->n == JOURNAL_FILES_MAX)
			return -ENOSPC;
		memmove(&j->e[i + 1], &j->e[i], (j->n - i) * sizeof(*e));
		j->n++;
		e = &j->e[i];
		e->bitmap = -1;
	}
	int32_t bm = e->bitmap;
	*e = *ne;
	e->bitmap = bm;
	if (bitmap != NULL) {
		if (e->bitmap < 0) {
			if (j->nbitmaps == JOURNAL_PARTIALS_MAX)
				return -ENOSPC;
			e->bitmap = (int32_t)j->nbitmaps++;
		}
		memcpy(j->bitmaps + (size_t)e->bitmap * BITMAP_BYTES, bitmap, BITMAP_BYTES);
	}
	return 0;
}

/* Parses one line (crc already checked). false if it is not a journal line. */
static bool parse_line(struct journal *j, char *line)
{
	struct journal_entry e = { .bitmap = -1 };
	char hex[JOURNAL_BLOCKS_MAX / 4 + 1];
	int n = 0;
	long long started;
	if (sscanf(line, "mcwarm-journal 1 dump=%32s %n", j->dump_id_hex, &n) == 1 && n > 0)
		return true;
	if (sscanf(line, "instance started=%lld pid=%" SCNu32, &started, &j->dest_pid) == 2) {
		j->dest_started_s = started;
		j->n = j->nbitmaps = 0; /* a new destination process: nothing is applied there */
		return true;
	}
	if (sscanf(line, "done job=%" SCNu32 " part=%" SCNu32 " crc=%8" SCNx32 " records=%" SCNu32,
		   &e.job, &e.part, &e.crc, &e.records) == 4) {
		e.state = JOURNAL_DONE;
		return upsert(j, &e, NULL) == 0;
	}
	const char *applied = strstr(line, " applied=");
	hex[0] = '\0';
	if (applied != NULL)
		sscanf(applied + 9, "%1024[0-9a-f]", hex); /* empty for a file with no block */
	if (sscanf(line,
		   "partial job=%" SCNu32 " part=%" SCNu32 " crc=%8" SCNx32 " blocks=%" SCNu32,
		   &e.job, &e.part, &e.crc, &e.blocks) == 4 &&
	    applied != NULL && e.blocks <= JOURNAL_BLOCKS_MAX &&
	    strlen(hex) == (e.blocks + 7) / 8 * 2) {
		uint8_t bm[BITMAP_BYTES] = { 0 };
		for (size_t i = 0; i < strlen(hex) / 2; i++) {
			unsigned v;
			sscanf(hex + 2 * i, "%2x", &v);
			bm[i] = (uint8_t)v;
		}
		e.state = JOURNAL_PARTIAL;
		return upsert(j, &e, bm) == 0;
	}
	return false;
}

static bool parse_cb(void *arg, char *line)
{
	return parse_line(arg, line);
}

int journal_open(struct journal *j, const char *state_dir, void *mem, char *err, size_t cap)
{
	memset(j, 0, sizeof(*j));
	j->e = mem;
	j->bitmaps = (uint8_t *)mem + JOURNAL_FILES_MAX * sizeof(struct journal_entry);
	if (mkdir(state_dir, 0755) < 0 && errno != EEXIST) {
		int e = errno; /* before snprintf */
		snprintf(err, cap, "cannot create the state directory %s: %s", state_dir,
			 strerror(e));
		return -e;
	}
	snprintf(j->path, sizeof(j->path), "%s/journal", state_dir);
	j->fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (j->fd < 0) {
		int e = errno; /* before snprintf */
		snprintf(err, cap, "cannot open %s: %s", j->path, strerror(e));
		return -e;
	}
	long bad = crcline_load(j->fd, parse_cb, j);
	if (bad < 0) {
		snprintf(err, cap, "cannot read %s: %s", j->path, strerror((int)-bad));
		return (int)bad;
	}
	if (bad > 0) {
		char aside[4200];
		snprintf(aside, sizeof(aside), "%s.damaged-%lld", j->path, (long long)time(NULL));
		log_warn("the journal %s is damaged near byte %ld: set aside as %s; starting over "
			 "(items already written will show as already present)",
			 j->path, bad - 1, aside);
		close(j->fd);
		if (rename(j->path, aside) < 0)
			return -errno;
		memset(j->dump_id_hex, 0, sizeof(j->dump_id_hex));
		j->n = j->nbitmaps = 0;
		j->fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (j->fd < 0)
			return -errno;
	}
	return 0;
}

/* No fdatasync per line: a line lost in a crash only means that file is applied again,
 * which add mode answers with NS. journal_sync makes a pass durable. */
#define append(j, ...) crcline_append((j)->fd, __VA_ARGS__)

int journal_sync(struct journal *j)
{
	return fdatasync(j->fd) < 0 ? -errno : 0;
}

int journal_bind(struct journal *j, const char *dump_id_hex, const char *dest, char *err,
		 size_t cap)
{
	if (j->dump_id_hex[0] != '\0') {
		if (strcmp(j->dump_id_hex, dump_id_hex) == 0)
			return 0;
		snprintf(err, cap,
			 "the state directory's journal belongs to dump %s but %s holds dump %s: "
			 "use a new --state directory for a new dump",
			 j->dump_id_hex, "the dump directory", dump_id_hex);
		return -EXDEV;
	}
	snprintf(j->dump_id_hex, sizeof(j->dump_id_hex), "%s", dump_id_hex);
	return append(j, "mcwarm-journal 1 dump=%s dest=%s", dump_id_hex, dest);
}

bool journal_same_instance(const struct journal *j, int64_t started_s, uint32_t pid)
{
	int64_t d = started_s - j->dest_started_s;
	return pid == j->dest_pid && d >= -2 && d <= 2;
}

int journal_instance(struct journal *j, int64_t started_s, uint32_t pid)
{
	bool had = j->dest_started_s != 0;
	if (had && journal_same_instance(j, started_s, pid))
		return 0;
	int ret = append(j, "instance started=%lld pid=%u", (long long)started_s, pid);
	if (ret < 0)
		return ret;
	bool forgot = had && j->n > 0;
	j->dest_started_s = started_s;
	j->dest_pid = pid;
	j->n = j->nbitmaps = 0;
	return forgot ? 1 : 0;
}

int journal_done(struct journal *j, uint32_t job, uint32_t part, uint32_t crc, uint32_t records)
{
	struct journal_entry e = {
		.job = job, .part = part, .crc = crc, .records = records, .state = JOURNAL_DONE
	};
	int ret = upsert(j, &e, NULL);
	if (ret == 0)
		ret = append(j, "done job=%u part=%u crc=%08x records=%u t=%lld", job, part, crc,
			     records, (long long)(wall_ns() / 1000000));
	return ret;
}

int journal_partial(struct journal *j, uint32_t job, uint32_t part, uint32_t crc, uint32_t blocks,
		    const uint8_t *applied)
{
	char hex[JOURNAL_BLOCKS_MAX / 4 + 1];
	ASSERT(blocks <= JOURNAL_BLOCKS_MAX);
	uint8_t bm[BITMAP_BYTES] = { 0 };
	memcpy(bm, applied, (blocks + 7) / 8);
	hex_encode(hex, bm, (blocks + 7) / 8);
	struct journal_entry e = {
		.job = job, .part = part, .crc = crc, .blocks = blocks, .state = JOURNAL_PARTIAL
	};
	int ret = upsert(j, &e, bm);
	if (ret == 0)
		ret = append(j, "partial job=%u part=%u crc=%08x blocks=%u applied=%s", job, part,
			     crc, blocks, hex);
	return ret;
}

void journal_close(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}
