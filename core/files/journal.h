/*
 * journal.h: the populator's record of what it has applied, in <state>/journal, outside
 * the (read-only) dump directory. Append-only text; every line ends with its own crc32c:
 *
 *   mcwarm-journal 1 dump=<32 hex> dest=<host:port> c=<8 hex>
 *   instance started=<unix s> pid=<n> c=<8 hex>
 *   done job=<j> part=<p> crc=<8 hex> records=<n> t=<unix ms> c=<8 hex>
 *   partial job=<j> part=<p> crc=<8 hex> blocks=<n> applied=<hex bitmap> c=<8 hex>
 *
 * An instance line names the destination process the entries after it were written to;
 * a restarted memcached is empty, so a new instance line forgets every entry before it.
 * The last line for a file wins. A torn last line (a crash during an append) is dropped;
 * a damaged line elsewhere means the journal cannot be trusted: it is set aside as
 * journal.damaged-<time> and the populator starts over (safe: add mode does not clobber,
 * and items already written are reported as already present).
 */
#ifndef MCW_JOURNAL_H
#define MCW_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcw_limits.h"

enum journal_state { JOURNAL_DONE = 1, JOURNAL_PARTIAL = 2 };

struct journal_entry {
	uint32_t job;
	uint32_t part;
	uint32_t crc;
	uint8_t state;
	uint32_t records;
	uint32_t blocks;
	int32_t bitmap; /* index into the bitmap pool (partial), else -1 */
};

struct journal {
	int fd;
	char path[4096];
	char dump_id_hex[33];
	int64_t dest_started_s; /* the destination instance the entries belong to */
	uint32_t dest_pid;
	struct journal_entry *e; /* sorted by (job, part) */
	uint32_t n;
	uint8_t *bitmaps; /* JOURNAL_PARTIALS_MAX x JOURNAL_BLOCKS_MAX / 8 */
	uint32_t nbitmaps;
};

/* Memory the journal needs (carve it from the budget). */
size_t journal_memory_bytes(void);

/* Opens (creating if needed) and loads <state_dir>/journal into mem. 0 or -errno with err
 * set; a damaged journal is set aside with a warning and an empty one is started. */
int journal_open(struct journal *j, const char *state_dir, void *mem, char *err, size_t cap);

/* Binds the journal to a dump: records it in a new journal, or checks that an existing
 * one is for the same dump (-EXDEV otherwise, err says which). */
int journal_bind(struct journal *j, const char *dump_id_hex, const char *dest, char *err,
		 size_t cap);

/* Is this the destination instance the entries were written to? (start time within 2 s
 * and the same pid; memcached's start time is only known to the second) */
bool journal_same_instance(const struct journal *j, int64_t started_s, uint32_t pid);

/* Records the destination instance. If another one was recorded, every entry is
 * forgotten (that server lost what was applied) and 1 is returned; else 0, or -errno. */
int journal_instance(struct journal *j, int64_t started_s, uint32_t pid);

const struct journal_entry *journal_find(const struct journal *j, uint32_t job, uint32_t part);
/* The applied-blocks bitmap of a partial entry, else NULL. */
const uint8_t *journal_applied(const struct journal *j, const struct journal_entry *e);

int journal_done(struct journal *j, uint32_t job, uint32_t part, uint32_t crc, uint32_t records);
int journal_partial(struct journal *j, uint32_t job, uint32_t part, uint32_t crc, uint32_t blocks,
		    const uint8_t *applied);

/* Makes every line appended so far durable (end of a pass, exit). */
int journal_sync(struct journal *j);
void journal_close(struct journal *j);

static inline bool bitmap_get(const uint8_t *b, uint32_t i)
{
	return b[i / 8] & (1u << (i % 8));
}
static inline void bitmap_set(uint8_t *b, uint32_t i)
{
	b[i / 8] |= (uint8_t)(1u << (i % 8));
}
static inline void bitmap_clear(uint8_t *b, uint32_t i)
{
	b[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

#endif
