/*
 * manifest.h: the end of a dump. MANIFEST lists every chunk file with its counts; DONE
 * says the manifest is complete. Both are text (for operators), end with a crc32c line
 * over every byte before it, and are written to a temporary name, synced and renamed,
 * MANIFEST strictly before DONE (docs/format.md).
 */
#ifndef MCW_MANIFEST_H
#define MCW_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "chunk_format.h"
#include "mcw_limits.h" /* MANIFEST_TEXT_MAX */

#define MANIFEST_NAME "MANIFEST"
#define DONE_NAME     "DONE"

struct manifest_entry {
	char name[CHUNK_NAME_MAX];
	uint32_t job, part, crc;
	uint64_t records, file_bytes, value_bytes;
	uint64_t key_bytes; /* from the footer; not a MANIFEST column */
};

struct manifest_info {
	char dump_id_hex[33];
	char source[300];
	char source_version[32];
	int64_t started_unix_ns, finished_unix_ns;
	uint64_t files, records, value_bytes;
	uint64_t key_bytes;	       /* 0 in a MANIFEST of an older mcwarm */
	uint64_t source_item_size_max; /* 0 if unknown (an older mcwarm) */
	uint32_t crc;		       /* of the manifest text, as DONE records it */
};

/* Finds every final chunk file in dir_fd and checks its footer against its name.
 * Allocates *out (free it); returns the count or -errno with err set. */
long manifest_collect(int dir_fd, struct manifest_entry **out, char *err, size_t err_cap);

/* Writes MANIFEST then DONE atomically. info's totals are filled in from entries. */
int manifest_publish(int dir_fd, struct manifest_info *info, const struct manifest_entry *e,
		     size_t n, char *err, size_t err_cap);

/* The same, through put (called for MANIFEST, then for DONE once MANIFEST is stored; 0 or
 * -errno): dump to an object store puts them as objects. */
typedef int (*manifest_put_fn)(void *arg, const char *name, const char *data, size_t len);
int manifest_publish_with(struct manifest_info *info, const struct manifest_entry *e, size_t n,
			  manifest_put_fn put, void *arg, char *err, size_t err_cap);

/* Checks a chunk's footer (the last n bytes read, up to one footer page) against e's name
 * (e->crc) and the object's size; fills e's counts. 0 or -EBADMSG with err set. */
int manifest_entry_check(struct manifest_entry *e, const struct chunk_footer *ft, size_t n,
			 uint64_t size, char *err, size_t cap);
/* Sorts entries by job, then part (the order of a MANIFEST). */
void manifest_sort(struct manifest_entry *v, size_t n);

/* Reads DONE and MANIFEST and checks both checksums and that they agree. Returns the
 * entry count (entries allocated into *out), -ENOENT if DONE is absent, or -EBADMSG. */
long manifest_load(int dir_fd, struct manifest_info *info, struct manifest_entry **out, char *err,
		   size_t err_cap);

/* manifest_load's checks and parsing over DONE's and MANIFEST's bytes held by the caller
 * (populate reads them from an object store): done and man each need one writable byte
 * past their length, and man is changed (parsed in place); man NULL: MANIFEST is absent
 * (-EBADMSG, err says the dump is damaged). Returns as manifest_load. */
long manifest_parse(char *done, size_t done_len, char *man, size_t man_len,
		    struct manifest_info *info, struct manifest_entry **out, char *err,
		    size_t err_cap);

#endif
