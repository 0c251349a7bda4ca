/*
 * test_manifest.c: the end of a dump (core/files/manifest.c) in a temporary directory with real
 * chunk files written by chunk_writer: collect finds every final chunk, checks its footer
 * against its name and sorts by job and part; publish writes MANIFEST then DONE; load
 * reads back what was published. Then damage: a changed byte in MANIFEST or DONE, one
 * missing, a DONE of another dump, counts that disagree, a chunk whose footer does not
 * match its name (renamed, truncated, too short).
 */
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

#include "chunk_writer.h"
#include "crc.h"
#include "manifest.h"
#include "tmp_dir.h"

#define VALUE_MAX (300 * 1024)
#define ERR_BYTES 512
#define FILES_MAX 16
#define ID_HEX	  "00112233445566778899aabbccddeeff"
#define OTHER_HEX "ffeeddccbbaa99887766554433221100"

static char dir[64];
static int dir_fd = -1;

struct written {
	unsigned n;
	struct chunk_file_done f[FILES_MAX];
};

static void on_done(void *arg, const struct chunk_file_done *d)
{
	struct written *w = arg;
	assert_true(w->n < FILES_MAX);
	w->f[w->n++] = *d;
}

static void fresh_dir(void)
{
	dir_fd = tmp_dir_make(dir, sizeof(dir), "manifest");
}

static void cleanup_dir(void)
{
	tmp_dir_remove(dir, dir_fd);
	dir_fd = -1;
}

static void pump(struct ur_ring *ring, struct chunk_writer *w)
{
	struct ur_cqe c[32];
	assert_int_equal(ur_submit_wait(ring, 1, 10000), 0);
	unsigned n = ur_reap(ring, c, 32);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(chunk_writer_complete(w, &c[i]), 0);
}

/* Writes jobs[i] with recs[i] records (values of value_len bytes; a 1 MiB file limit, so
 * large values make several parts) in the order given. */
static void write_chunks(const uint32_t *jobs, const uint32_t *recs, unsigned njobs,
			 uint32_t value_len, struct written *out)
{
	struct ur_ring *ring;
	struct ur_ring_opts ro = { .sq_entries = 64 };
	assert_int_equal(ur_ring_create(&ro, &ring), 0);
	size_t staging_bytes = chunk_writer_staging_min(CHUNK_WRITE_STAGE, VALUE_MAX);
	uint8_t *staging =
	    mmap(NULL, staging_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(staging != MAP_FAILED);
	struct iovec iov = { staging, staging_bytes };
	assert_int_equal(ur_buffers_register(ring, &iov, 1), 0);
	struct chunk_identity id = { .source_pid = 7 };
	memset(id.dump_id, 0x11, sizeof(id.dump_id));
	snprintf(id.source_addr, sizeof(id.source_addr), "10.0.0.5:11211");
	struct chunk_writer w;
	struct chunk_writer_opts o = {
		.mode = CHUNK_WRITE_STAGE,
		.ring = ring,
		.dir_fd = dir_fd,
		.dir_path = dir,
		.id = &id,
		.staging = staging,
		.staging_bytes = staging_bytes,
		.chunk_bytes_max = MCW_CHUNK_BYTES_MIN,
		.record_value_max = VALUE_MAX,
		.on_file_done = on_done,
		.arg = out,
	};
	assert_int_equal(chunk_writer_init(&w, &o), 0);
	static uint8_t value[VALUE_MAX];
	memset(value, 'v', sizeof(value));
	for (unsigned j = 0; j < njobs; j++) {
		assert_int_equal(chunk_writer_begin(&w, jobs[j]), 0);
		for (uint32_t i = 0; i < recs[j]; i++) {
			char key[32];
			int klen = snprintf(key, sizeof(key), "job%u:key%u", jobs[j], i);
			struct chunk_rec r = {
				.key = (const uint8_t *)key,
				.key_len = (uint16_t)klen,
				.client_flags = i,
				.value = value,
				.value_len = value_len,
			};
			int ret;
			while ((ret = chunk_writer_add(&w, &r)) == -EAGAIN)
				pump(ring, &w);
			assert_int_equal(ret, 0);
		}
		assert_int_equal(chunk_writer_end(&w), recs[j] == 0 ? 1 : 0);
		while (!chunk_writer_idle(&w))
			pump(ring, &w);
	}
	chunk_writer_release(&w);
	ur_ring_destroy(ring);
	munmap(staging, staging_bytes);
}

static void write_text(const char *name, const char *text)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* body followed by its "crc32c" line, as publish writes it. */
static void write_signed(const char *name, const char *body)
{
	char text[8192];
	snprintf(text, sizeof(text), "%scrc32c %08x\n", body, mcw_crc32c(0, body, strlen(body)));
	write_text(name, text);
}

static char *read_text(const char *name)
{
	static char buf[8192];
	int fd = openat(dir_fd, name, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static bool exists(const char *name)
{
	struct stat sb;
	return fstatat(dir_fd, name, &sb, 0) == 0;
}

static void info_fill(struct manifest_info *info, const char *id_hex)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->dump_id_hex, sizeof(info->dump_id_hex), "%s", id_hex);
	snprintf(info->source, sizeof(info->source), "10.0.0.5:11211");
	snprintf(info->source_version, sizeof(info->source_version), "1.6.21");
	info->started_unix_ns = 1700000000123456789LL;
	info->finished_unix_ns = 1700000100987654321LL;
}

static void expect_load_refused(int want, const char *words)
{
	struct manifest_info info;
	struct manifest_entry *e = (struct manifest_entry *)&info; /* must stay untouched */
	char err[ERR_BYTES] = "";
	long ret = manifest_load(dir_fd, &info, &e, err, sizeof(err));
	if (ret != want || (words && strstr(err, words) == NULL))
		fail_msg("load: %ld \"%s\", want %d and \"%s\"", ret, err, want,
			 words ? words : "");
	assert_ptr_equal(e, (struct manifest_entry *)&info);
}

/* ---- tests ---- */

static void test_round_trip(void **state)
{
	(void)state;
	fresh_dir();
	/* job 7 first, job 2 in several parts, an empty job, job 0 last */
	static const uint32_t jobs[] = { 7, 2, 5, 0 };
	static const uint32_t recs[] = { 3, 12, 0, 1 };
	struct written wr = { 0 };
	write_chunks(jobs, recs, 4, 200 * 1024, &wr);
	assert_true(wr.n >= 4); /* job 2's 2.4 MB go into more than one 1 MiB file */
	/* what collect must ignore: temporary files, other names, near misses */
	write_text("chunk-000009-000.tmp", "torn");
	write_text("notes.txt", "operator notes");
	write_text("chunk-000009-000-0000000g.mcw", "not hex");
	write_text("chunk-00009-000-00000000.mcw", "short job");
	write_text("Chunk-000009-000-00000000.mcw", "case");
	char err[ERR_BYTES] = "";
	struct manifest_entry *e = NULL;
	long n = manifest_collect(dir_fd, &e, err, sizeof(err));
	if (n != (long)wr.n)
		fail_msg("collect: %ld (%s), %u files written", n, err, wr.n);
	uint64_t records = 0, value_bytes = 0;
	for (long i = 0; i < n; i++) {
		if (i > 0) /* sorted by job, then part */
			assert_true(e[i - 1].job < e[i].job ||
				    (e[i - 1].job == e[i].job && e[i - 1].part < e[i].part));
		unsigned k = 0;
		while (k < wr.n && strcmp(wr.f[k].name, e[i].name) != 0)
			k++;
		assert_true(k < wr.n);
		assert_int_equal(e[i].job, wr.f[k].job);
		assert_int_equal(e[i].part, wr.f[k].part);
		assert_int_equal(e[i].crc, wr.f[k].crc);
		assert_int_equal(e[i].records, wr.f[k].records);
		assert_int_equal(e[i].file_bytes, wr.f[k].file_bytes);
		assert_int_equal(e[i].value_bytes, wr.f[k].value_bytes);
		records += e[i].records;
		value_bytes += e[i].value_bytes;
	}
	assert_int_equal(e[0].job, 0);
	assert_int_equal(e[n - 1].job, 7);
	assert_int_equal(records, 3 + 12 + 1);
	assert_int_equal(value_bytes, 16 * 200 * 1024);

	struct manifest_info info;
	info_fill(&info, ID_HEX);
	info.files = 999; /* publish fills the totals in */
	assert_int_equal(manifest_publish(dir_fd, &info, e, (size_t)n, err, sizeof(err)), 0);
	assert_int_equal(info.files, (uint64_t)n);
	assert_int_equal(info.records, records);
	assert_int_equal(info.value_bytes, value_bytes);
	assert_true(exists(MANIFEST_NAME) && exists(DONE_NAME));
	assert_false(exists(".MANIFEST.tmp") || exists(".DONE.tmp"));

	struct manifest_info got;
	struct manifest_entry *l = NULL;
	memset(&got, 0x5a, sizeof(got));
	long m = manifest_load(dir_fd, &got, &l, err, sizeof(err));
	if (m != n)
		fail_msg("load: %ld (%s)", m, err);
	assert_string_equal(got.dump_id_hex, ID_HEX);
	assert_int_equal(got.files, (uint64_t)n);
	assert_int_equal(got.records, records);
	assert_int_equal(got.value_bytes, value_bytes);
	assert_int_equal(got.started_unix_ns, info.started_unix_ns);
	assert_int_equal(got.finished_unix_ns, info.finished_unix_ns);
	assert_int_equal(got.crc, info.crc);
	assert_string_equal(got.source_version, "1.6.21");
	for (long i = 0; i < n; i++) {
		assert_string_equal(l[i].name, e[i].name);
		assert_int_equal(l[i].job, e[i].job);
		assert_int_equal(l[i].part, e[i].part);
		assert_int_equal(l[i].crc, e[i].crc);
		assert_int_equal(l[i].records, e[i].records);
		assert_int_equal(l[i].file_bytes, e[i].file_bytes);
		assert_int_equal(l[i].value_bytes, e[i].value_bytes);
	}
	free(l);
	free(e);
	cleanup_dir();
}

/*
 * A regression test: load read "source %299s" from every line, and a format's blank
 * matches no blank at all, so "source_version 1.6.21" (the next line) overwrote the
 * source with "_version".
 */
static void test_source_survives_load(void **state)
{
	(void)state;
	fresh_dir();
	char err[ERR_BYTES];
	struct manifest_info info, got;
	info_fill(&info, ID_HEX);
	assert_int_equal(manifest_publish(dir_fd, &info, NULL, 0, err, sizeof(err)), 0);
	struct manifest_entry *l = NULL;
	assert_int_equal(manifest_load(dir_fd, &got, &l, err, sizeof(err)), 0);
	free(l);
	assert_non_null(strstr(read_text(MANIFEST_NAME), "\nsource 10.0.0.5:11211\n"));
	cleanup_dir();
	assert_string_equal(got.source, "10.0.0.5:11211");
}

static void publish_two(void)
{
	static const uint32_t jobs[] = { 1, 0 };
	static const uint32_t recs[] = { 2, 3 };
	struct written wr = { 0 };
	write_chunks(jobs, recs, 2, 1000, &wr);
	char err[ERR_BYTES];
	struct manifest_entry *e = NULL;
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), 2);
	struct manifest_info info;
	info_fill(&info, ID_HEX);
	assert_int_equal(manifest_publish(dir_fd, &info, e, 2, err, sizeof(err)), 0);
	free(e);
}

/*
 * A regression test: DONE without MANIFEST was refused with an empty message, so
 * populate reported a damaged dump without saying why.
 */
static void test_missing_manifest_said(void **state)
{
	(void)state;
	fresh_dir();
	publish_two();
	assert_int_equal(unlinkat(dir_fd, MANIFEST_NAME, 0), 0);
	struct manifest_info info;
	struct manifest_entry *l = NULL;
	char err[ERR_BYTES] = "";
	assert_int_equal(manifest_load(dir_fd, &info, &l, err, sizeof(err)), -EBADMSG);
	cleanup_dir();
	assert_non_null(strstr(err, MANIFEST_NAME));
}

/* Reads a whole file of the test directory into a new buffer with one spare byte. */
static char *slurp(const char *name, size_t *len)
{
	int fd = openat(dir_fd, name, O_RDONLY);
	assert_true(fd >= 0);
	off_t size = lseek(fd, 0, SEEK_END);
	char *buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
	close(fd);
	*len = (size_t)size;
	return buf;
}

/* manifest_parse over bytes held by the caller (populate --from s3://) decides exactly as
 * manifest_load over the files, and a changed byte is refused. */
static void test_parse_from_buffers(void **state)
{
	(void)state;
	fresh_dir();
	publish_two();
	char err[ERR_BYTES] = "";
	struct manifest_info want, got;
	struct manifest_entry *we = NULL, *ge = NULL;
	assert_int_equal(manifest_load(dir_fd, &want, &we, err, sizeof(err)), 2);
	size_t nd, nm;
	/* parsing changes both buffers: fresh copies for each call */
	char *done = slurp(DONE_NAME, &nd), *man = slurp(MANIFEST_NAME, &nm);
	assert_int_equal(manifest_parse(done, nd, man, nm, &got, &ge, err, sizeof(err)), 2);
	assert_string_equal(got.dump_id_hex, want.dump_id_hex);
	assert_int_equal(got.records, want.records);
	assert_int_equal(got.crc, want.crc);
	assert_memory_equal(ge, we, 2 * sizeof(*ge));
	free(ge);
	free(done);
	free(man);
	done = slurp(DONE_NAME, &nd);
	man = slurp(MANIFEST_NAME, &nm);
	man[nm / 2] ^= 0x04;
	assert_int_equal(manifest_parse(done, nd, man, nm, &got, &ge, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, MANIFEST_NAME " is damaged"));
	free(done);
	done = slurp(DONE_NAME, &nd);
	assert_int_equal(manifest_parse(done, nd, NULL, 0, &got, &ge, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "DONE is there but " MANIFEST_NAME " is missing"));
	free(we);
	free(done);
	free(man);
	cleanup_dir();
}

static void test_empty_dump(void **state)
{
	(void)state;
	fresh_dir();
	char err[ERR_BYTES];
	struct manifest_entry *e = (struct manifest_entry *)1;
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), 0);
	struct manifest_info info;
	info_fill(&info, ID_HEX);
	assert_int_equal(manifest_publish(dir_fd, &info, e, 0, err, sizeof(err)), 0);
	free(e);
	assert_int_equal(info.files, 0);
	struct manifest_entry *l = NULL;
	struct manifest_info got;
	assert_int_equal(manifest_load(dir_fd, &got, &l, err, sizeof(err)), 0);
	assert_int_equal(got.files, 0);
	assert_string_equal(got.dump_id_hex, ID_HEX);
	free(l);
	cleanup_dir();
}

static void test_damaged_files(void **state)
{
	(void)state;
	fresh_dir();
	publish_two();
	char man[8192], done[8192];
	snprintf(man, sizeof(man), "%s", read_text(MANIFEST_NAME));
	snprintf(done, sizeof(done), "%s", read_text(DONE_NAME));

	/* one changed byte anywhere in either file (but the last newline, which the crc line
	 * does not need) */
	for (size_t i = 0; i + 1 < strlen(man); i += 7) {
		char bad[8192];
		snprintf(bad, sizeof(bad), "%s", man);
		bad[i] = bad[i] == 'x' ? 'y' : 'x';
		write_text(MANIFEST_NAME, bad);
		expect_load_refused(-EBADMSG, NULL);
	}
	write_text(MANIFEST_NAME, man);
	for (size_t i = 0; i + 1 < strlen(done); i += 3) {
		char bad[8192];
		snprintf(bad, sizeof(bad), "%s", done);
		bad[i] = bad[i] == 'x' ? 'y' : 'x';
		write_text(DONE_NAME, bad);
		expect_load_refused(-EBADMSG, NULL);
	}
	write_text(DONE_NAME, done);

	/* cut short (a torn copy), or empty */
	char cut[8192];
	snprintf(cut, sizeof(cut), "%.*s", (int)strlen(man) - 5, man);
	write_text(MANIFEST_NAME, cut);
	expect_load_refused(-EBADMSG, "MANIFEST is damaged");
	write_text(MANIFEST_NAME, "");
	expect_load_refused(-EBADMSG, "MANIFEST is damaged");
	write_text(MANIFEST_NAME, man);
	snprintf(cut, sizeof(cut), "%.*s", (int)strlen(done) - 3, done);
	write_text(DONE_NAME, cut);
	expect_load_refused(-EBADMSG, "DONE is damaged");
	write_text(DONE_NAME, done);

	/* MANIFEST missing: the dump is damaged, not unfinished; DONE missing: unfinished */
	assert_int_equal(renameat(dir_fd, MANIFEST_NAME, dir_fd, "M.saved"), 0);
	expect_load_refused(-EBADMSG, NULL); /* its message: test_missing_manifest_said */
	assert_int_equal(renameat(dir_fd, "M.saved", dir_fd, MANIFEST_NAME), 0);
	assert_int_equal(unlinkat(dir_fd, DONE_NAME, 0), 0);
	expect_load_refused(-ENOENT, NULL);

	/* not a regular file */
	assert_int_equal(mkdirat(dir_fd, DONE_NAME, 0755), 0);
	expect_load_refused(-EBADMSG, "not a regular file");
	assert_int_equal(unlinkat(dir_fd, DONE_NAME, AT_REMOVEDIR), 0);

	/* a well-sealed DONE in a layout we do not know, or with a dump id that is not hex */
	write_signed(DONE_NAME, "mcwarm-done 2\ndump_id " ID_HEX "\nmanifest_crc32c 00000000\n");
	expect_load_refused(-EBADMSG, "unknown layout");
	write_signed(DONE_NAME, "mcwarm-done 1\ndump_id 0011223344556677889XAABBCCDDEEFF\n"
				"manifest_crc32c 00000000\n");
	expect_load_refused(-EBADMSG, "unknown layout");
	write_text(DONE_NAME, done);
	struct manifest_info info;
	struct manifest_entry *l = NULL;
	char err[ERR_BYTES];
	assert_int_equal(manifest_load(dir_fd, &info, &l, err, sizeof(err)), 2);
	free(l);
	cleanup_dir();
}

static void test_done_of_another_dump(void **state)
{
	(void)state;
	fresh_dir();
	publish_two();
	static char man[8192];
	memcpy(man, read_text(MANIFEST_NAME), sizeof(man));
	uint32_t man_crc;
	char *crc_line = strstr(man, "crc32c ");
	assert_non_null(crc_line);
	assert_int_equal(sscanf(crc_line, "crc32c %8x", &man_crc), 1);

	/* DONE of another publish (another manifest): they disagree */
	char body[1024];
	snprintf(body, sizeof(body),
		 "mcwarm-done 1\ndump_id %s\nmanifest_crc32c %08x\nfiles 2\nrecords 5\n", ID_HEX,
		 man_crc ^ 1);
	write_signed(DONE_NAME, body);
	expect_load_refused(-EBADMSG, "disagree");

	/* a DONE naming this manifest's crc but another dump: refused */
	snprintf(body, sizeof(body),
		 "mcwarm-done 1\ndump_id %s\nmanifest_crc32c %08x\nfiles 2\nrecords 5\n", OTHER_HEX,
		 man_crc);
	write_signed(DONE_NAME, body);
	expect_load_refused(-EBADMSG, "is not for dump " OTHER_HEX);

	/* a manifest without a dump_id line cannot be for this dump either */
	char *id_line = strstr(man, "dump_id ");
	assert_non_null(id_line);
	static char stripped[8192 + 64];
	size_t head = (size_t)(id_line - man);
	snprintf(stripped, sizeof(stripped), "%.*s%s", (int)head, man, strchr(id_line, '\n') + 1);
	*strstr(stripped, "crc32c ") = '\0';
	write_signed(MANIFEST_NAME, stripped);
	snprintf(body, sizeof(body), "mcwarm-done 1\ndump_id %s\nmanifest_crc32c %08x\n", ID_HEX,
		 mcw_crc32c(0, stripped, strlen(stripped)));
	write_signed(DONE_NAME, body);
	expect_load_refused(-EBADMSG, "is not for dump");

	/* a sealed manifest whose chunk lines disagree with its count */
	char *files = strstr(man, "files 2\n");
	assert_non_null(files);
	files[6] = '3';
	*strstr(man, "crc32c ") = '\0';
	write_signed(MANIFEST_NAME, man);
	snprintf(body, sizeof(body), "mcwarm-done 1\ndump_id %s\nmanifest_crc32c %08x\n", ID_HEX,
		 mcw_crc32c(0, man, strlen(man)));
	write_signed(DONE_NAME, body);
	expect_load_refused(-EBADMSG, "lists 2 chunks but says 3");
	cleanup_dir();
}

static void test_chunk_footer_mismatch(void **state)
{
	(void)state;
	fresh_dir();
	static const uint32_t jobs[] = { 3 };
	static const uint32_t recs[] = { 4 };
	struct written wr = { 0 };
	write_chunks(jobs, recs, 1, 5000, &wr);
	assert_int_equal(wr.n, 1);
	const char *good = wr.f[0].name;
	char err[ERR_BYTES];
	struct manifest_entry *e = (struct manifest_entry *)1;

	/* the name's crc is not the footer's */
	char renamed[CHUNK_NAME_MAX];
	chunk_name_final(renamed, 3, 0, wr.f[0].crc ^ 0x10);
	assert_int_equal(renameat(dir_fd, good, dir_fd, renamed), 0);
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, renamed));
	assert_non_null(strstr(err, "does not match the file name"));
	assert_ptr_equal(e, (struct manifest_entry *)1); /* nothing handed out */
	assert_int_equal(renameat(dir_fd, renamed, dir_fd, good), 0);
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), 1);
	free(e);

	/* a byte of the footer changed: its own crc fails */
	int fd = openat(dir_fd, good, O_RDWR);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	uint8_t byte;
	off_t at = sb.st_size - MCW_FOOTER_BYTES + 20;
	assert_int_equal(pread(fd, &byte, 1, at), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);
	e = (struct manifest_entry *)1;
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, good));
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);

	/* one page longer: the footer is not at the end any more */
	assert_int_equal(ftruncate(fd, sb.st_size + 4096), 0);
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), -EBADMSG);
	/* cut at the last block: no footer at all */
	assert_int_equal(ftruncate(fd, sb.st_size - MCW_FOOTER_BYTES), 0);
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), -EBADMSG);
	/* shorter than a footer */
	assert_int_equal(ftruncate(fd, 100), 0);
	assert_int_equal(manifest_collect(dir_fd, &e, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, good));
	close(fd);

	/* a final name that is a symbolic link is not followed */
	assert_int_equal(unlinkat(dir_fd, good, 0), 0);
	assert_int_equal(symlinkat("/etc/passwd", dir_fd, good), 0);
	assert_true(manifest_collect(dir_fd, &e, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, good));
	cleanup_dir();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_source_survives_load),
		cmocka_unit_test(test_empty_dump),
		cmocka_unit_test(test_damaged_files),
		cmocka_unit_test(test_missing_manifest_said),
		cmocka_unit_test(test_parse_from_buffers),
		cmocka_unit_test(test_done_of_another_dump),
		cmocka_unit_test(test_chunk_footer_mismatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
