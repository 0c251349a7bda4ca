/*
 * fuzz_journal.c: libFuzzer target for the populator's journal reader (journal_open, over
 * crcline_load). The input is written as <dir>/journal on /dev/shm and opened. Checked: no
 * read outside the file (ASan); an opened journal is consistent (entries sorted by job and
 * part without repeats, a partial entry's bitmap inside the pool and of at most
 * JOURNAL_BLOCKS_MAX blocks, every entry found again by journal_find).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static void *mem;

static void empty_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[128];
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p); /* a damaged journal is set aside under another name */
	}
	if (d)
		closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (mem == NULL) {
		snprintf(dir, sizeof(dir), "/dev/shm/mcw-fuzz-journal-%d", (int)getpid());
		mkdir(dir, 0700);
		mem = malloc(journal_memory_bytes());
	}
	empty_dir();
	char path[96];
	snprintf(path, sizeof(path), "%s/journal", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	struct journal j;
	char err[256];
	if (journal_open(&j, dir, mem, err, sizeof(err)) != 0)
		return 0;
	for (uint32_t i = 0; i < j.n; i++) {
		const struct journal_entry *e = &j.e[i];
		if (i > 0 && (j.e[i - 1].job > e->job ||
			      (j.e[i - 1].job == e->job && j.e[i - 1].part >= e->part)))
			abort();
		if (journal_find(&j, e->job, e->part) != e)
			abort();
		const uint8_t *b = journal_applied(&j, e);
		if (b != NULL &&
		    (e->blocks > JOURNAL_BLOCKS_MAX || e->bitmap < 0 ||
		     (uint32_t)e->bitmap >= j.nbitmaps || j.nbitmaps > JOURNAL_PARTIALS_MAX))
			abort();
		if (b != NULL) {
			volatile uint8_t sink = b[(e->blocks + 7) / 8 - (e->blocks > 0)];
			(void)sink;
		}
	}
	journal_close(&j);
	return 0;
}
