/*
 * test_resume.c: how `mcwarm dump` continues an unfinished dump from its checkpoint
 * (core/engine/resume.c), without a server: a dump context is set up here as dump.c sets it up
 * after probing (source, process identity, output and spool directories), and the output
 * directory holds what a killed run leaves: real chunk files (chunk_writer), temporaries,
 * key chunks (keyspool) and the checkpoint.
 *
 * Covered: the options crc (what shapes a dump's content changes it, nothing else does);
 * refusals (another source, other options, a restarted source) that touch nothing;
 * continuing after the listing ended and before it ended (what is kept, removed, counted,
 * and where the engine goes on); the keys of finished jobs loaded into the dedupe table;
 * a damaged checkpoint or a damaged kept file starting the dump over; output groups.
 * Not covered here: the threads that then run (they need a server: it_dump).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dump.h"
#include "mcw_limits.h"

#define ID_HEX	     "0123456789abcdef0123456789abcdef"
#define SOURCE	     "10.0.0.5:11211"
#define PID	     4242
#define STARTED_S    1700000000
#define KEYS_PER_JOB 40
#define VALUE_BYTES  3000

static struct checkpoint cp; /* large: written here, loaded by resume into the context */

/* ---- a dump context, as dump.c leaves it before resume_prepare ---- */

struct rig {
	char dir[64];
	struct dump_cmd *c;
	uint8_t *disk_buf;
	void *dedupe_mem;
};

static void rig_open(struct rig *r, unsigned groups)
{
	memset(r, 0, sizeof(*r));
	r->c = calloc(1, sizeof(*r->c));
	assert_non_null(r->c);
	struct dump_cmd *c = r->c;
	dump_cmd_init(c);
	snprintf(r->dir, sizeof(r->dir), "/tmp/mcw-test-resume-XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	c->e.o.dir = r->dir;
	assert_int_equal(hostport_parse(SOURCE, &c->e.o.source), 0);
	c->e.src.pid = PID;
	c->e.src.uptime_s = 1000;
	c->e.src.time_s = STARTED_S + 1000;
	memset(c->e.id.dump_id, 0x01, sizeof(c->e.id.dump_id));
	c->e.dir_fd = open(r->dir, O_RDONLY | O_DIRECTORY);
	assert_true(c->e.dir_fd >= 0);
	c->e.kf.ngroups = groups;
	for (unsigned g = 0; g < groups; g++) {
		if (groups == 1) {
			c->group_fd[g] = c->e.dir_fd;
			snprintf(c->group_path[g], sizeof(c->group_path[g]), "%s", r->dir);
			continue;
		}
		char name[16];
		snprintf(name, sizeof(name), "g%u", g);
		assert_int_equal(mkdirat(c->e.dir_fd, name, 0755), 0);
		c->group_fd[g] = openat(c->e.dir_fd, name, O_RDONLY | O_DIRECTORY);
		assert_true(c->group_fd[g] >= 0);
		snprintf(c->group_path[g], sizeof(c->group_path[g]), "%s/%s", r->dir, name);
	}
	assert_int_equal(mkdirat(c->e.dir_fd, ".mcwarm", 0755), 0);
	c->e.spool_fd = openat(c->e.dir_fd, ".mcwarm", O_RDONLY | O_DIRECTORY);
	assert_true(c->e.spool_fd >= 0);
	snprintf(c->e.spool_path, sizeof(c->e.spool_path), "%s/.mcwarm", r->dir);
	/* what resume_load_dedupe borrows: worker 0's key input and the dedupe table */
	size_t disk = ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES) +
		      MCW_KEYCHUNK_BYTES;
	r->disk_buf = aligned_alloc(MCW_ALIGN_BYTES, disk);
	c->e.workers[0].key_off = (uint32_t *)r->disk_buf;
	c->e.workers[0].key_in =
	    r->disk_buf + ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES);
	r->dedupe_mem = calloc(1, MIB);
	dedupe_init(&c->e.dedupe, r->dedupe_mem, MIB);
}

static void rig_close(struct rig *r)
{
	dump_cmd_release(r->c);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
	assert_int_equal(system(cmd), 0);
	free(r->disk_buf);
	free(r->dedupe_mem);
	free(r->c);
}

static bool exists_at(int dir_fd, const char *name)
{
	return faccessat(dir_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static void touch_at(int dir_fd, const char *name)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

/* ---- what a killed run leaves ---- */

static void key_of(char *out, size_t cap, uint32_t job, uint32_t i)
{
	snprintf(out, cap, "job%u:key%u", job, i);
}

/* Key chunk seq with KEYS_PER_JOB keys, in the spool. */
static void write_key_chunk(struct dump_cmd *c, uint32_t seq, uint16_t group)
{
	uint8_t *buf = aligned_alloc(MCW_ALIGN_BYTES, MCW_KEYCHUNK_BYTES);
	assert_non_null(buf);
	struct keychunk_builder b;
	keychunk_builder_reset(&b, buf, MCW_KEYCHUNK_BYTES);
	for (uint32_t i = 0; i < KEYS_PER_JOB; i++) {
		char key[32];
		key_of(key, sizeof(key), seq, i);
		assert_true(keychunk_add(&b, (const uint8_t *)key, strlen(key), 0));
	}
	size_t bytes = keychunk_finish(&b, c->e.id.dump_id, seq, group);
	char name[32];
	keychunk_name(name, seq);
	int fd = openat(c->e.spool_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, bytes), (ssize_t)bytes);
	close(fd);
	free(buf);
}

struct written {
	unsigned n;
	uint64_t records, file_bytes, value_bytes;
	char names[16][CHUNK_NAME_MAX];
};

static void on_done(void *arg, const struct chunk_file_done *d)
{
	struct written *w = arg;
	assert_true(w->n < 16);
	snprintf(w->names[w->n++], CHUNK_NAME_MAX, "%s", d->name);
	w->records += d->records;
	w->file_bytes += d->file_bytes;
	w->value_bytes += d->value_bytes;
}

static void pump(struct ur_ring *ring, struct chunk_writer *w)
{
	struct ur_cqe cq[32];
	assert_int_equal(ur_submit_wait(ring, 1, 10000), 0);
	unsigned n = ur_reap(ring, cq, 32);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(chunk_writer_complete(w, &cq[i]), 0);
}

/* The chunk file of job (one part, records records) in dir_fd, as a worker writes it. */
static void write_job_file(int dir_fd, const char *path, uint32_t job, uint32_t records,
			   struct written *out)
{
	struct ur_ring *ring;
	struct ur_ring_opts ro = { .sq_entries = 64 };
	assert_int_equal(ur_ring_create(&ro, &ring), 0);
	size_t staging_bytes = chunk_writer_staging_min(CHUNK_WRITE_STAGE, VALUE_BYTES);
	uint8_t *staging =
	    mmap(NULL, staging_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(staging != MAP_FAILED);
	struct iovec iov = { staging, staging_bytes };
	assert_int_equal(ur_buffers_register(ring, &iov, 1), 0);
	struct chunk_identity id = { .source_pid = PID };
	memset(id.dump_id, 0x01, sizeof(id.dump_id));
	struct chunk_writer w;
	struct chunk_writer_opts o = {
		.mode = CHUNK_WRITE_STAGE,
		.ring = ring,
		.dir_fd = dir_fd,
		.dir_path = path,
		.id = &id,
		.staging = staging,
		.staging_bytes = staging_bytes,
		.chunk_bytes_max = MCW_CHUNK_BYTES_DEFAULT,
		.record_value_max = VALUE_BYTES,
		.on_file_done = on_done,
		.arg = out,
	};
	assert_int_equal(chunk_writer_init(&w, &o), 0);
	static uint8_t value[VALUE_BYTES];
	memset(value, 'v', sizeof(value));
	assert_int_equal(chunk_writer_begin(&w, job), 0);
	for (uint32_t i = 0; i < records; i++) {
		char key[32];
		key_of(key, sizeof(key), job, i);
		struct chunk_rec rec = {
			.key = (const uint8_t *)key,
			.key_len = (uint16_t)strlen(key),
			.value = value,
			.value_len = VALUE_BYTES - i,
		};
		int ret;
		while ((ret = chunk_writer_add(&w, &rec)) == -EAGAIN)
			pump(ring, &w);
		assert_int_equal(ret, 0);
	}
	assert_int_equal(chunk_writer_end(&w), 0);
	while (!chunk_writer_idle(&w))
		pump(ring, &w);
	chunk_writer_release(&w);
	ur_ring_destroy(ring);
	munmap(staging, staging_bytes);
}

/* The checkpoint of this context's dump: jobs done, and the listing's end if chunks. */
static void write_checkpoint(struct dump_cmd *c, const char *source, const uint32_t *done,
			     unsigned ndone, uint32_t chunks)
{
	assert_int_equal(checkpoint_create(&cp, c->e.spool_fd, ID_HEX, source, STARTED_S, PID,
					   dump_options_crc(&c->e.o)),
			 0);
	for (unsigned i = 0; i < ndone; i++)
		assert_int_equal(checkpoint_job_done(&cp, done[i]), 0);
	if (chunks)
		assert_int_equal(checkpoint_keys_done(&cp, chunks), 0);
	checkpoint_close(&cp);
}

/* A killed run of 5 jobs: key chunks 0..4; finished files of jobs 0, 2, 3; job 1 got a
 * final file but did not finish (a later part was being written); job 4 was writing a
 * temporary file. Returns what the finished jobs wrote. */
static struct written killed_run(struct rig *r, bool listing_ended)
{
	struct dump_cmd *c = r->c;
	struct written kept = { 0 }, lost = { 0 };
	for (uint32_t j = 0; j < 5; j++)
		write_key_chunk(c, j, 0);
	write_job_file(c->e.dir_fd, r->dir, 0, 5, &kept);
	write_job_file(c->e.dir_fd, r->dir, 2, 7, &kept);
	write_job_file(c->e.dir_fd, r->dir, 3, 1, &kept);
	write_job_file(c->e.dir_fd, r->dir, 1, 4, &lost);
	touch_at(c->e.dir_fd, "chunk-000004-000.tmp");
	touch_at(c->e.dir_fd, "notes.txt"); /* the operator's: never touched */
	touch_at(c->e.spool_fd, "notes.txt");
	static const uint32_t done[] = { 0, 2, 3 };
	write_checkpoint(c, SOURCE, done, 3, listing_ended ? 5 : 0);
	return kept;
}

static void assert_kept(struct rig *r, const struct written *kept, bool listing_ended)
{
	struct dump_cmd *c = r->c;
	for (unsigned i = 0; i < kept->n; i++)
		assert_true(exists_at(c->e.dir_fd, kept->names[i]));
	assert_false(exists_at(c->e.dir_fd, "chunk-000004-000.tmp"));
	assert_true(exists_at(c->e.dir_fd, "notes.txt"));
	assert_true(exists_at(c->e.spool_fd, "notes.txt"));
	assert_true(exists_at(c->e.spool_fd, CHECKPOINT_NAME));
	for (uint32_t j = 0; j < 5; j++) {
		char name[32];
		keychunk_name(name, j);
		bool job_done = j == 0 || j == 2 || j == 3;
		assert_int_equal(exists_at(c->e.spool_fd, name), listing_ended || job_done);
	}
	/* the kept files are counted as this run's */
	assert_int_equal(atomic_load(&c->e.st.items), kept->records);
	assert_int_equal(atomic_load(&c->st.items_resumed), kept->records);
	assert_int_equal(atomic_load(&c->st.group_items[0]), kept->records);
	assert_int_equal(atomic_load(&c->st.files), kept->n);
	assert_int_equal(atomic_load(&c->st.file_bytes), kept->file_bytes);
	assert_int_equal(atomic_load(&c->e.st.value_bytes), kept->value_bytes);
	assert_true(c->e.resuming);
	assert_true(checkpoint_job_is_done(&c->e.ckpt, 2));
	assert_false(checkpoint_job_is_done(&c->e.ckpt, 1));
}

/* The final chunk files in dir_fd. */
static unsigned chunk_files(int dir_fd)
{
	unsigned n = 0;
	DIR *d = fdopendir(dup(dir_fd));
	assert_non_null(d);
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint32_t job, part, crc;
		n += chunk_name_parse(de->d_name, &job, &part, &crc);
	}
	closedir(d);
	return n;
}

/* ---- tests ---- */

static void test_options_crc(void **state)
{
	(void)state;
	struct engine_opts a = { 0 };
	assert_int_equal(hostport_parse(SOURCE, &a.source), 0);
	a.filter.include[0] = "user:";
	a.filter.ninclude = 1;
	uint32_t base = dump_options_crc(&a);
	assert_int_equal(dump_options_crc(&a), base); /* a function of the options */

	/* what does not shape the content: no change */
	struct engine_opts b = a;
	b.co.memory_bytes = 1 << 30;
	b.co.threads = 9;
	b.dir = "/elsewhere";
	b.try_mgdump = false;
	/* the writer, chunk size, spool and syncfs options are dump_opts: not an input */
	assert_int_equal(dump_options_crc(&b), base);

	/* what does: each changes it */
	uint32_t seen[16];
	unsigned n = 0;
	seen[n++] = base;
#define CHANGED(stmt)                                                                              \
	do {                                                                                       \
		struct engine_opts x = a;                                                          \
		stmt;                                                                              \
		uint32_t v = dump_options_crc(&x);                                                 \
		for (unsigned k = 0; k < n; k++)                                                   \
			if (seen[k] == v)                                                          \
				fail_msg("%s: crc %08x seen before", #stmt, v);                    \
		seen[n++] = v;                                                                     \
	} while (0)
	CHANGED(assert_int_equal(hostport_parse("10.0.0.6:11211", &x.source), 0));
	CHANGED(x.crawl = KEYS_ALL);
	CHANGED(x.min_ttl_s = 60);
	CHANGED(x.filter.include[0] = "sess:");
	CHANGED(x.filter.ninclude = 0);
	CHANGED((x.filter.exclude[0] = "user:", x.filter.nexclude = 1));
	CHANGED((x.filter.ring_set = true, x.filter.ring.kind = RING_EVCACHE));
	CHANGED((x.filter.ring_set = true, x.filter.ring.kind = RING_EVCACHE,
		 x.filter.ring.points = 80));
	CHANGED(x.filter.nodes = "a,b");
	CHANGED(x.filter.ring_to = "a,b");
	CHANGED((x.filter.keep[0] = "a", x.filter.nkeep = 1));
	/* a prefix moved from include to exclude is another dump */
	CHANGED((x.filter.ninclude = 0, x.filter.exclude[0] = "user:", x.filter.nexclude = 1));
#undef CHANGED
}

/*
 * A regression test: dump_options_crc formatted the options into 8192 bytes and
 * checksummed what fit, so key filters past that (32 prefixes of 250 bytes fill it) did
 * not change the crc, and a dump continued with other trailing filters was not refused.
 */
static void test_options_crc_long(void **state)
{
	(void)state;
	static char prefix[KEYFILTER_PREFIXES_MAX][251];
	struct engine_opts a = { 0 };
	assert_int_equal(hostport_parse(SOURCE, &a.source), 0);
	for (unsigned i = 0; i < KEYFILTER_PREFIXES_MAX; i++) {
		memset(prefix[i], 'a' + (int)(i % 26), 250);
		a.filter.include[i] = prefix[i];
	}
	a.filter.ninclude = KEYFILTER_PREFIXES_MAX;
	struct engine_opts b = a;
	b.filter.exclude[0] = "tmp:";
	b.filter.nexclude = 1;
	bool same = dump_options_crc(&a) == dump_options_crc(&b);
	assert_false(same);
}

static void test_refusals_touch_nothing(void **state)
{
	(void)state;
	static const struct {
		const char *source;
		int64_t time_s;
		uint32_t pid;
		int64_t min_ttl_s;
	} c[] = {
		{ "10.0.0.6:11211", STARTED_S + 1000, PID, 0 }, /* another server */
		{ SOURCE, STARTED_S + 1000, PID, 30 },		/* other options */
		{ SOURCE, STARTED_S + 1000, PID + 1, 0 },	/* restarted: another pid */
		{ SOURCE, STARTED_S + 5000, PID, 0 },		/* restarted: another start */
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		struct rig r;
		rig_open(&r, 1);
		struct written kept = killed_run(&r, true);
		r.c->e.src.time_s = c[i].time_s;
		r.c->e.src.pid = c[i].pid;
		r.c->e.o.min_ttl_s = c[i].min_ttl_s;
		assert_int_equal(hostport_parse(c[i].source, &r.c->e.o.source), 0);
		assert_int_equal(resume_prepare(r.c), -EINVAL); /* exit 64 */
		assert_false(r.c->e.resuming);
		/* everything of the old run is still there for the operator to decide */
		for (unsigned k = 0; k < kept.n; k++)
			assert_true(exists_at(r.c->e.dir_fd, kept.names[k]));
		assert_true(exists_at(r.c->e.dir_fd, "chunk-000004-000.tmp"));
		assert_true(exists_at(r.c->e.spool_fd, CHECKPOINT_NAME));
		assert_int_equal(chunk_files(r.c->e.dir_fd), 4);
		assert_int_equal(atomic_load(&r.c->e.st.items), 0);
		rig_close(&r);
	}
}

static void test_continue_after_listing(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 1);
	struct written kept = killed_run(&r, true);
	assert_int_equal(resume_prepare(r.c), 0);
	assert_kept(&r, &kept, true);
	assert_int_equal(chunk_files(r.c->e.dir_fd), 3); /* job 1's file is fetched again */
	/* no new listing: the workers take the old key chunks */
	assert_true(r.c->e.keys_done);
	assert_int_equal(r.c->e.chunks_ready, 5);
	assert_int_equal(r.c->e.next_job, 0);
	/* nothing to load into the dedupe table: no listing follows */
	assert_int_equal(resume_load_dedupe(r.c), 0);
	assert_int_equal(r.c->e.dedupe.used, 0);
	rig_close(&r);
}

static void test_continue_during_listing(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 1);
	struct written kept = killed_run(&r, false);
	assert_int_equal(resume_prepare(r.c), 0);
	assert_kept(&r, &kept, false);
	assert_int_equal(chunk_files(r.c->e.dir_fd), 3);
	/* a new listing numbers its key chunks after the highest job named */
	assert_false(r.c->e.keys_done);
	assert_int_equal(r.c->e.chunks_ready, 4);
	assert_int_equal(r.c->e.next_job, 4);
	/* the keys of finished jobs are in the dedupe table, the others are not */
	assert_int_equal(resume_load_dedupe(r.c), 0);
	assert_int_equal(r.c->e.dedupe.used, 3 * KEYS_PER_JOB);
	for (uint32_t j = 0; j < 5; j++) {
		bool done = j == 0 || j == 2 || j == 3;
		for (uint32_t i = 0; i < KEYS_PER_JOB; i += 7) {
			char key[32];
			key_of(key, sizeof(key), j, i);
			uint64_t id = dedupe_id(0, (const uint8_t *)key, strlen(key));
			assert_int_equal(dedupe_check(&r.c->e.dedupe, id),
					 done ? DEDUPE_DUPLICATE : DEDUPE_NEW);
		}
	}
	rig_close(&r);
}

static void test_damaged_key_chunk_fails_load(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 1);
	killed_run(&r, false);
	assert_int_equal(resume_prepare(r.c), 0);
	/* a kept key chunk that no longer reads back: the dump fails, it is not guessed */
	char name[32];
	keychunk_name(name, 2);
	int fd = openat(r.c->e.spool_fd, name, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "garbage", 7, 4096 + 10), 7);
	close(fd);
	assert_int_equal(resume_load_dedupe(r.c), -EIO);
	assert_int_equal(mcw_exit_code(-EIO), MCW_EXIT_IO);
	assert_true(run_failed(&r.c->e.run));
	assert_non_null(strstr(r.c->e.run.fault.msg, name));
	rig_close(&r);
}

static void assert_wiped(struct rig *r, const struct written *kept)
{
	struct dump_cmd *c = r->c;
	assert_false(c->e.resuming);
	for (unsigned i = 0; i < kept->n; i++)
		assert_false(exists_at(c->e.dir_fd, kept->names[i]));
	assert_int_equal(chunk_files(c->e.dir_fd), 0);
	assert_false(exists_at(c->e.dir_fd, "chunk-000004-000.tmp"));
	assert_false(exists_at(c->e.spool_fd, CHECKPOINT_NAME));
	for (uint32_t j = 0; j < 5; j++) {
		char name[32];
		keychunk_name(name, j);
		assert_false(exists_at(c->e.spool_fd, name));
	}
	assert_true(exists_at(c->e.dir_fd, "notes.txt"));
	assert_true(exists_at(c->e.spool_fd, "notes.txt"));
	assert_int_equal(atomic_load(&c->e.st.items), 0);
	assert_int_equal(atomic_load(&c->st.items_resumed), 0);
	assert_int_equal(atomic_load(&c->st.files), 0);
	assert_int_equal(atomic_load(&c->st.group_items[0]), 0);
}

static void test_damaged_checkpoint_starts_over(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 1);
	struct written kept = killed_run(&r, true);
	int fd = openat(r.c->e.spool_fd, CHECKPOINT_NAME, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 20), 1); /* a byte of its first line */
	close(fd);
	assert_int_equal(resume_prepare(r.c), 0);
	assert_wiped(&r, &kept);
	rig_close(&r);
}

static void test_damaged_kept_file_starts_over(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 1);
	struct written kept = killed_run(&r, false);
	/* a finished file whose footer no longer matches its name */
	int fd = openat(r.c->e.dir_fd, kept.names[1], O_WRONLY);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal(pwrite(fd, "X", 1, sb.st_size - 100), 1);
	close(fd);
	assert_int_equal(resume_prepare(r.c), 0);
	assert_wiped(&r, &kept);
	rig_close(&r);
}

static void test_wipe(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 1);
	struct written kept = killed_run(&r, true);
	r.c->e.resuming = true;
	assert_int_equal(resume_wipe(r.c), 0);
	assert_wiped(&r, &kept);
	/* again: nothing left to remove */
	assert_int_equal(resume_wipe(r.c), 0);
	rig_close(&r);
}

static void test_groups(void **state)
{
	(void)state;
	struct rig r;
	rig_open(&r, 3);
	struct dump_cmd *c = r.c;
	struct written g0 = { 0 }, g2 = { 0 }, lost = { 0 };
	for (uint32_t j = 0; j < 4; j++)
		write_key_chunk(c, j, (uint16_t)(j % 3));
	write_job_file(c->group_fd[0], c->group_path[0], 0, 3, &g0);
	write_job_file(c->group_fd[2], c->group_path[2], 2, 6, &g2);
	write_job_file(c->group_fd[1], c->group_path[1], 1, 2, &lost); /* unfinished */
	touch_at(c->group_fd[2], "chunk-000003-000.tmp");
	static const uint32_t done[] = { 0, 2 };
	write_checkpoint(c, SOURCE, done, 2, 4);
	assert_int_equal(resume_prepare(c), 0);
	assert_true(c->e.resuming);
	assert_true(exists_at(c->group_fd[0], g0.names[0]));
	assert_true(exists_at(c->group_fd[2], g2.names[0]));
	assert_false(exists_at(c->group_fd[1], lost.names[0]));
	assert_false(exists_at(c->group_fd[2], "chunk-000003-000.tmp"));
	assert_int_equal(atomic_load(&c->st.group_items[0]), 3);
	assert_int_equal(atomic_load(&c->st.group_items[1]), 0);
	assert_int_equal(atomic_load(&c->st.group_items[2]), 6);
	assert_int_equal(atomic_load(&c->e.st.items), 9);
	assert_int_equal(atomic_load(&c->st.files), 2);
	rig_close(&r);
}

/*
 * A regression test: the checkpoint kept 63 bytes of the source and resume compared them
 * with the whole --source text, so a dump of a source named with more than 63 bytes was
 * refused as "a dump of another server" and could never be continued.
 */
static void test_long_source_name(void **state)
{
	(void)state;
	const char *longname =
	    "memcached-sessions-0042.use1a.production.internal.example.com:11211";
	assert_true(strlen(longname) > 63);
	struct rig r;
	rig_open(&r, 1);
	assert_int_equal(hostport_parse(longname, &r.c->e.o.source), 0);
	static const uint32_t done[] = { 0 };
	struct written kept = { 0 };
	write_key_chunk(r.c, 0, 0);
	write_job_file(r.c->e.dir_fd, r.dir, 0, 2, &kept);
	write_checkpoint(r.c, longname, done, 1, 1);
	int ret = resume_prepare(r.c);
	rig_close(&r);
	assert_int_equal(ret, 0);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* resume logs what it keeps and why it starts over */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_crc),
		cmocka_unit_test(test_options_crc_long),
		cmocka_unit_test(test_refusals_touch_nothing),
		cmocka_unit_test(test_continue_after_listing),
		cmocka_unit_test(test_continue_during_listing),
		cmocka_unit_test(test_damaged_key_chunk_fails_load),
		cmocka_unit_test(test_damaged_checkpoint_starts_over),
		cmocka_unit_test(test_damaged_kept_file_starts_over),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_long_source_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
