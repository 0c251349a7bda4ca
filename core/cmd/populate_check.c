/*
 * populate_check.c: populate's checks of the destination against the dump before anything
 * is sent (capacity.c does the arithmetic): the destination is not the process the dump
 * was taken from, and it has the memory and the item size limit for what the MANIFEST
 * lists. Without a MANIFEST yet (--follow while the dump runs) the MANIFEST's checks wait
 * until a pass first sees one (pop_check_manifest from completion()).
 *
 * A refusal is a run failure (pop_fail): its text names cause, numbers and fix, and the
 * JSON summary carries it. The same holds for a destination that answers 'out of memory'
 * while items are sent (mspipe.c, in the workers).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "chunk_reader.h"
#include "manifest.h"
#include "populate_private.h"

static bool dir_first_header(int dir_fd, struct chunk_header *h)
{
	int dfd = dup(dir_fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	uint32_t job, part, crc;
	bool found = false;
	if (d == NULL) {
		if (dfd >= 0)
			close(dfd);
		return false;
	}
	rewinddir(d);
	while (!found && (de = readdir(d)) != NULL) {
		if (!chunk_name_parse(de->d_name, &job, &part, &crc))
			continue;
		int fd = openat(dir_fd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		uint8_t page[MCW_HEADER_BYTES];
		ssize_t n = fd >= 0 ? pread(fd, page, sizeof(page), 0) : -1;
		if (fd >= 0)
			close(fd);
		found = chunk_header_check(page, n < 0 ? 0 : (size_t)n, h) == CHUNK_OK;
	}
	closedir(d);
	return found;
}

bool pop_first_header(struct pop_ctx *c, struct chunk_header *h)
{
	return c->o.from_s3 ? pop_s3_first_header(c, h) : dir_first_header(c->from_fd, h);
}

long pop_manifest_load(struct pop_ctx *c, struct manifest_info *mi, struct manifest_entry **e,
		       char *err, size_t cap)
{
	return c->o.from_s3 ? pop_s3_manifest_load(c, mi, e, err, cap)
			    : manifest_load(c->from_fd, mi, e, err, cap);
}

/* Populating the very process the dump came from warms nothing (its items are there);
 * the same address with a new process is fine: a restart refilled from its own dump. */
static int check_not_source(struct pop_ctx *c)
{
	struct chunk_header h;
	struct hostport hp;
	char addr[sizeof(h.f.source_addr) + 1];
	if (!pop_first_header(c, &h))
		return 0;
	snprintf(addr, sizeof(addr), "%.*s", (int)sizeof(h.f.source_addr), h.f.source_addr);
	uint32_t port = hostport_parse(addr, &hp) == 0 ? hp.port : 0;
	if (!server_is_process(&c->dst, h.f.source_pid, h.f.source_started_s, port))
		return 0;
	pop_fail(c, -EINVAL,
		 "%s is the memcached this dump was taken from (%s, pid %u, started at unix time "
		 "%lld): it holds these items already. Fix: give the new server as --dest",
		 c->o.dest.text, addr, (unsigned)h.f.source_pid, (long long)h.f.source_started_s);
	return -EINVAL;
}

int pop_check_manifest(struct pop_ctx *c, const struct manifest_info *mi)
{
	char err[1024];
	c->manifest_checked = true;
	struct cap_load load = {
		.what = "the dump's MANIFEST",
		.items = mi->records,
		.item_bytes = cap_item_bytes(&c->dst, mi->records, mi->key_bytes, mi->value_bytes),
		.item_size_max = mi->source_item_size_max,
		.resumed = c->journal.n > 0, /* files applied to this destination process */
	};
	int ret = cap_check(&c->dst, c->o.dest.text, &load, &c->o.allow, err, sizeof(err));
	if (ret != 0)
		pop_fail(c, ret, "%s", err);
	return ret;
}

int pop_preflight(struct pop_ctx *c)
{
	struct manifest_info mi;
	struct manifest_entry *e = NULL;
	char err[512];
	int code = check_not_source(c);
	if (code != 0)
		return code;
	long n = pop_manifest_load(c, &mi, &e, err, sizeof(err));
	if (n < 0) { /* damaged: completion() says so on every pass */
		if (n == -ENOENT && !c->o.co.quiet)
			log_info("%s has no MANIFEST yet: the destination's memory and item size "
				 "are checked when it appears",
				 c->o.from_dir);
		return 0;
	}
	free(e);
	return strcmp(mi.dump_id_hex, c->dump_id_hex) == 0 ? pop_check_manifest(c, &mi) : 0;
}
