/*
 * test_chunk.c: chunk files end to end: chunk_writer (both strategies, real io_uring, real
 * files) then chunk_reader. Records of every shape (empty values, values that span
 * several blocks, the largest value the writer accepts), then damage: a flipped bit in
 * each block, truncation at every block boundary, a bad footer. The reader must return
 * every record of every good block, and name the bad block.
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
#include <dirent.h>

#include <cmocka.h>

#include "chunk_reader.h"
#include "chunk_writer.h"
#include "crc.h"

#define VALUE_MAX (1024 * 1024)
#define NRECS	  3000

struct rec_model {
	uint8_t key[MCP_KEY_MAX];
	uint16_t key_len;
	uint32_t flags;
	int64_t exp;
	uint32_t value_len;
	uint32_t seed;
};

static struct rec_model model[NRECS];
static uint8_t *value_buf;   /* scratch for one value */
static uint8_t *value_arena; /* every model value, so writev references stay valid */
static size_t value_off[NRECS];

static void value_fill(uint8_t *p, uint32_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* Mixed sizes: mostly small, some medium, a few spanning, one at the maximum. */
static void model_init(void)
{
	for (uint32_t i = 0; i < NRECS; i++) {
		struct rec_model *m = &model[i];
		m->key_len = (uint16_t)snprintf((char *)m->key, sizeof(m->key), "key:%u:", i);
		if (i % 7 == 0) { /* binary bytes and a long key */
			for (uint16_t k = 0; k < 60; k++)
				m->key[m->key_len++] = (uint8_t)(k * 13 + i);
		}
		m->flags = i % 3 == 0 ? 0xffffffffu : i;
		m->exp = i % 2 ? 0 : 1800000000000LL + i;
		m->seed = i;
		if (i == 17)
			m->value_len = VALUE_MAX;
		else if (i % 500 == 3)
			m->value_len = 300000 + i;
		else if (i % 50 == 1)
			m->value_len = 40000 + i;
		else if (i % 11 == 0)
			m->value_len = 0;
		else
			m->value_len = 10 + (i * 37) % 900;
	}
	size_t total = 0;
	for (uint32_t i = 0; i < NRECS; i++) {
		value_off[i] = total;
		total += model[i].value_len;
	}
	value_arena = malloc(total);
	for (uint32_t i = 0; i < NRECS; i++)
		value_fill(value_arena + value_off[i], model[i].value_len, model[i].seed);
}

struct harness {
	char dir[64];
	int dir_fd;
	struct ur_ring *ring;
	uint8_t *staging;
	size_t staging_bytes;
	struct chunk_writer w;
	struct chunk_identity id;
	unsigned files_done;
	char names[64][CHUNK_NAME_MAX];
	unsigned job_ends;	   /* files reported with job_end */
	unsigned files_at_job_end; /* files_done when the job's end was reported */
};

static void on_done(void *arg, const struct chunk_file_done *d)
{
	struct harness *h = arg;
	assert_true(h->files_done < 64);
	snprintf(h->names[h->files_done++], CHUNK_NAME_MAX, "%s", d->name);
	if (d->job_end) {
		h->job_ends++;
		h->files_at_job_end = h->files_done;
	}
}

static void pump(struct harness *h)
{
	struct ur_cqe c[32];
	assert_int_equal(ur_submit_wait(h->ring, 1, 10000), 0);
	unsigned n = ur_reap(h->ring, c, 32);
	for (unsigned i = 0; i < n; i++) {
		assert_true(chunk_writer_owns(c[i].user_data));
		assert_int_equal(chunk_writer_complete(&h->w, &c[i]), 0);
	}
}

static void harness_open(struct harness *h, enum chunk_write_mode mode, uint64_t chunk_bytes)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/mcw-test-chunk-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	h->dir_fd = open(h->dir, O_RDONLY | O_DIRECTORY);
	struct ur_ring_opts ro = { .sq_entries = 64 };
	assert_int_equal(ur_ring_create(&ro, &h->ring), 0);
	h->staging_bytes = chunk_writer_staging_min(mode, VALUE_MAX) + 2 * 1024 * 1024;
	h->staging = mmap(NULL, h->staging_bytes, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec iov = { h->staging, h->staging_bytes };
	assert_int_equal(ur_buffers_register(h->ring, &iov, 1), 0);
	memset(h->id.dump_id, 0xab, 16);
	snprintf(h->id.source_addr, sizeof(h->id.source_addr), "test:1");
	struct chunk_writer_opts o = {
		.mode = mode,
		.ring = h->ring,
		.dir_fd = h->dir_fd,
		.dir_path = h->dir,
		.id = &h->id,
		.staging = h->staging,
		.staging_bytes = h->staging_bytes,
		.chunk_bytes_max = chunk_bytes,
		.record_value_max = VALUE_MAX,
		.direct = true,
		.on_file_done = on_done,
		.arg = h,
	};
	assert_int_equal(chunk_writer_init(&h->w, &o), 0);
}

/* flush_every: writev mode releases references every that many records (as the worker
 * does when it must reuse its receive buffer); 0 never. */
static void harness_write(struct harness *h, uint32_t job, uint32_t first, uint32_t count,
			  uint32_t flush_every)
{
	assert_int_equal(chunk_writer_begin(&h->w, job), 0);
	for (uint32_t i = first; i < first + count; i++) {
		struct rec_model *m = &model[i];
		struct chunk_rec r = {
			.key = m->key,
			.key_len = m->key_len,
			.client_flags = m->flags,
			.expires_at_ms = m->exp,
			.value = value_arena + value_off[i],
			.value_len = m->value_len,
		};
		int ret;
		while ((ret = chunk_writer_add(&h->w, &r)) == -EAGAIN)
			pump(h);
		assert_int_equal(ret, 0);
		if (flush_every && (i + 1) % flush_every == 0) {
			assert_int_equal(chunk_writer_flush(&h->w), 0);
			while (chunk_writer_holds_refs(&h->w))
				pump(h);
		}
	}
	/* 1: the job wrote no file and is complete now; 0: its last file reports it */
	assert_int_equal(chunk_writer_end(&h->w), count == 0 ? 1 : 0);
	while (!chunk_writer_idle(&h->w))
		pump(h);
}

static void harness_close(struct harness *h)
{
	chunk_writer_release(&h->w);
	ur_ring_destroy(h->ring);
	munmap(h->staging, h->staging_bytes);
	DIR *d = opendir(h->dir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		unlinkat(h->dir_fd, de->d_name, 0);
	closedir(d);
	close(h->dir_fd);
	rmdir(h->dir);
}

/* ---- reading ------------------------------------------------------------------------ */

struct readback {
	uint32_t next; /* model index expected next */
	uint32_t got;
	uint32_t mismatches;
	uint8_t *val; /* assembled value */
	uint32_t seen[NRECS];
};

static int check_piece(void *arg, const struct chunk_piece *p)
{
	struct readback *rb = arg;
	if (p->first) {
		/* find the model record by key */
		uint32_t idx;
		if (sscanf((const char *)p->key, "key:%u:", &idx) != 1 || idx >= NRECS) {
			rb->mismatches++;
			return 0;
		}
		rb->next = idx;
	}
	struct rec_model *m = &model[rb->next];
	if (p->hdr.key_len != m->key_len || memcmp(p->key, m->key, m->key_len) != 0 ||
	    p->hdr.client_flags != m->flags || p->hdr.expires_at_ms != m->exp ||
	    p->hdr.value_len != m->value_len)
		rb->mismatches++;
	memcpy(rb->val + p->value_offset, p->value, p->value_len);
	if (p->last) {
		value_fill(value_buf, m->value_len, m->seed);
		if (memcmp(rb->val, value_buf, m->value_len) != 0)
			rb->mismatches++;
		rb->seen[rb->next]++;
		rb->got++;
	}
	return 0;
}

/* Reads a whole file with the reader API; returns blocks that failed their check. */
static unsigned read_file(int dir_fd, const char *name, struct readback *rb, uint64_t *blocks,
			  bool *footer_ok)
{
	int fd = openat(dir_fd, name, O_RDONLY);
	assert_true(fd >= 0);
	struct stat sb;
	fstat(fd, &sb);
	uint8_t *buf = malloc((size_t)sb.st_size + 1);
	assert_int_equal(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	struct chunk_header h;
	assert_int_equal(chunk_header_check(buf, (size_t)sb.st_size, &h), CHUNK_OK);
	struct chunk_footer ft;
	size_t size = (size_t)sb.st_size;
	*footer_ok = size >= 8192 && chunk_footer_check(buf + size - 4096, 4096, &ft) == CHUNK_OK &&
		     ft.f.file_bytes == size && ft.f.file_crc == mcw_crc32c(0, buf, size - 4096);
	size_t end = *footer_ok ? size - 4096 : size;
	unsigned bad = 0;
	struct chunk_span span = { 0 };
	*blocks = 0;
	for (size_t off = 4096; off < end; off += h.f.block_bytes, (*blocks)++) {
		struct chunk_block_view v;
		size_t len = end - off < h.f.block_bytes ? end - off : h.f.block_bytes;
		if (chunk_block_check(buf + off, len, h.f.block_bytes, (uint32_t)*blocks, &v) !=
		    CHUNK_OK) {
			bad++;
			chunk_span_lost(&span);
			continue;
		}
		struct chunk_walk_result r = chunk_block_walk(&v, &span, check_piece, rb);
		assert_int_equal(r.status, CHUNK_OK);
	}
	free(buf);
	return bad;
}

static void readback_init(struct readback *rb)
{
	memset(rb, 0, sizeof(*rb));
	rb->val = malloc(VALUE_MAX);
}

static void roundtrip(enum chunk_write_mode mode, uint32_t flush_every)
{
	struct harness h;
	harness_open(&h, mode, 2 * 1024 * 1024); /* small parts: rotation is exercised */
	harness_write(&h, 7, 0, NRECS, flush_every);
	assert_true(h.files_done > 1);
	/* the job's end comes once, with the last of its files to get a final name */
	assert_int_equal(h.job_ends, 1);
	assert_int_equal(h.files_at_job_end, h.files_done);
	struct readback rb;
	readback_init(&rb);
	bool part_seen[64] = { false }; /* files may finish in any order; parts are 0..n-1 */
	for (unsigned i = 0; i < h.files_done; i++) {
		uint32_t job, part, crc;
		assert_true(chunk_name_parse(h.names[i], &job, &part, &crc));
		assert_int_equal(job, 7);
		assert_true(part < h.files_done && !part_seen[part]);
		part_seen[part] = true;
		uint64_t blocks;
		bool footer_ok;
		assert_int_equal(read_file(h.dir_fd, h.names[i], &rb, &blocks, &footer_ok), 0);
		assert_true(footer_ok);
	}
	assert_int_equal(rb.mismatches, 0);
	assert_int_equal(rb.got, NRECS);
	for (uint32_t i = 0; i < NRECS; i++)
		assert_int_equal(rb.seen[i], 1);
	free(rb.val);
	harness_close(&h);
}

static void test_roundtrip_stage(void **state)
{
	(void)state;
	roundtrip(CHUNK_WRITE_STAGE, 0);
}

static void test_roundtrip_writev(void **state)
{
	(void)state;
	roundtrip(CHUNK_WRITE_WRITEV, 0);
}

static void test_roundtrip_writev_early_flushes(void **state)
{
	(void)state;
	roundtrip(CHUNK_WRITE_WRITEV, 997); /* blocks closed early, padded: still correct */
}

static void test_no_records_no_file(void **state)
{
	(void)state;
	struct harness h;
	harness_open(&h, CHUNK_WRITE_STAGE, 64 * 1024 * 1024);
	harness_write(&h, 1, 0, 0, 0);
	assert_int_equal(h.files_done, 0);
	assert_int_equal(h.job_ends, 0);
	harness_close(&h);
}

/* Copies the file, lets damage() change the copy, reads it back. */
static void damaged_copy(struct harness *h, const char *name, const char *copy,
			 void (*damage)(int fd, size_t size, uint64_t arg), uint64_t arg)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cp %s/%s %s/%s", h->dir, name, h->dir, copy);
	assert_int_equal(system(cmd), 0);
	int fd = openat(h->dir_fd, copy, O_RDWR);
	struct stat sb;
	fstat(fd, &sb);
	damage(fd, (size_t)sb.st_size, arg);
	close(fd);
}

static void flip_bit(int fd, size_t size, uint64_t off)
{
	(void)size;
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
}

static void truncate_at(int fd, size_t size, uint64_t len)
{
	if (len > size)
		len = size - 4096; /* the last block is short: cut just the footer */
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
}

static void test_flipped_bit_each_block(void **state)
{
	(void)state;
	struct harness h;
	harness_open(&h, CHUNK_WRITE_STAGE, 64 * 1024 * 1024);
	harness_write(&h, 0, 0, NRECS, 0); /* one file */
	assert_int_equal(h.files_done, 1);
	struct readback clean;
	readback_init(&clean);
	uint64_t nblocks;
	bool ok;
	read_file(h.dir_fd, h.names[0], &clean, &nblocks, &ok);
	assert_true(nblocks > 4);
	for (uint64_t b = 0; b < nblocks; b++) {
		struct readback rb;
		readback_init(&rb);
		uint64_t off = 4096 + b * MCW_BLOCK_BYTES + 100; /* inside the payload */
		damaged_copy(&h, h.names[0], "flip.mcw", flip_bit, off);
		uint64_t blocks;
		bool footer_ok;
		unsigned bad = read_file(h.dir_fd, "flip.mcw", &rb, &blocks, &footer_ok);
		assert_int_equal(bad, 1);	    /* exactly the damaged block */
		assert_false(footer_ok);	    /* the whole-file crc no longer matches */
		assert_int_equal(rb.mismatches, 0); /* nothing wrong is ever returned */
		assert_true(rb.got < NRECS);
		assert_true(rb.got + 2000 > NRECS); /* the other blocks' records survive */
		free(rb.val);
	}
	free(clean.val);
	harness_close(&h);
}

static void test_truncated_every_block(void **state)
{
	(void)state;
	struct harness h;
	harness_open(&h, CHUNK_WRITE_STAGE, 64 * 1024 * 1024);
	harness_write(&h, 0, 0, NRECS, 0);
	struct readback clean;
	readback_init(&clean);
	uint64_t nblocks;
	bool ok;
	read_file(h.dir_fd, h.names[0], &clean, &nblocks, &ok);
	uint32_t prev = 0;
	for (uint64_t b = 0; b <= nblocks; b++) {
		struct readback rb;
		readback_init(&rb);
		damaged_copy(&h, h.names[0], "cut.mcw", truncate_at, 4096 + b * MCW_BLOCK_BYTES);
		uint64_t blocks;
		bool footer_ok;
		unsigned bad = read_file(h.dir_fd, "cut.mcw", &rb, &blocks, &footer_ok);
		assert_false(footer_ok); /* a truncated file is never taken as complete */
		assert_int_equal(bad, 0);
		assert_int_equal(rb.mismatches, 0);
		assert_true(rb.got >= prev); /* more blocks, more records */
		prev = rb.got;
		free(rb.val);
	}
	free(clean.val);
	harness_close(&h);
}

static void test_header_and_footer_checks(void **state)
{
	(void)state;
	struct chunk_header h;
	struct chunk_footer f;
	uint8_t page[4096] = { 0 };
	assert_int_equal(chunk_header_check(page, sizeof(page), &h), CHUNK_ERR_MAGIC);
	assert_int_equal(chunk_header_check(page, 100, &h), CHUNK_ERR_SHORT);
	memcpy(page, CHUNK_MAGIC, 8);
	assert_int_equal(chunk_header_check(page, sizeof(page), &h), CHUNK_ERR_CRC);
	struct chunk_header *ph = (struct chunk_header *)page;
	ph->f.version_major = 2;
	ph->f.header_bytes = 4096;
	ph->f.block_bytes = 262144;
	ph->crc = mcw_crc32c(0, ph, offsetof(struct chunk_header, crc));
	assert_int_equal(chunk_header_check(page, sizeof(page), &h), CHUNK_ERR_VERSION);
	ph->f.version_major = 1;
	ph->f.block_bytes = 1000; /* not aligned */
	ph->crc = mcw_crc32c(0, ph, offsetof(struct chunk_header, crc));
	assert_int_equal(chunk_header_check(page, sizeof(page), &h), CHUNK_ERR_FIELD);
	memset(page, 0, sizeof(page));
	assert_int_equal(chunk_footer_check(page, sizeof(page), &f), CHUNK_ERR_MAGIC);
}

static void test_orphan_continuation(void **state)
{
	(void)state;
	/* A block whose first bytes continue a record from a block the reader lost. */
	static uint8_t blk[MCW_BLOCK_BYTES];
	struct chunk_block_header bh = { .magic = CHUNK_BLOCK_MAGIC, .index = 3 };
	uint8_t *payload = blk + sizeof(bh);
	memset(payload, 0x5a, 100); /* the orphaned tail of a value */
	struct chunk_record_header rh = { .key_len = 1, .value_len = 2 };
	memcpy(payload + 100, &rh, sizeof(rh));
	memcpy(payload + 100 + sizeof(rh), "kvv", 3);
	bh.payload_bytes = 100 + sizeof(rh) + 3;
	bh.cont_bytes = 100;
	bh.record_count = 1;
	bh.crc = mcw_crc32c(mcw_crc32c(0, payload, bh.payload_bytes), &bh, 28);
	memcpy(blk, &bh, sizeof(bh));
	struct chunk_block_view v;
	assert_int_equal(chunk_block_check(blk, sizeof(blk), MCW_BLOCK_BYTES, 3, &v), CHUNK_OK);
	assert_int_equal(chunk_block_check(blk, sizeof(blk), MCW_BLOCK_BYTES, 4, &v),
			 CHUNK_ERR_FIELD);
	/* a continuation where nothing was lost (block 0, or after a block whose records
	 * all ended): it continues nothing, so the block is refused */
	struct chunk_span span = { 0 };
	struct readback rb;
	readback_init(&rb);
	struct chunk_walk_result r = chunk_block_walk(&v, &span, check_piece, &rb);
	assert_int_equal(r.status, CHUNK_ERR_FIELD);
	assert_int_equal(r.records_begun, 0);
	/* after a lost block: the continuation is an orphan, the record after it is good */
	memset(&span, 0, sizeof(span));
	chunk_span_lost(&span);
	r = chunk_block_walk(&v, &span, check_piece, &rb);
	assert_int_equal(r.status, CHUNK_OK);
	assert_int_equal(r.orphan_bytes, 100);
	assert_int_equal(r.records_begun, 1);
	/* the same block after a span that expects 50 bytes: inconsistent, nothing emitted */
	span.active = true;
	span.value_left = 50;
	r = chunk_block_walk(&v, &span, check_piece, &rb);
	assert_int_equal(r.status, CHUNK_ERR_FIELD);
	assert_int_equal(r.records_begun, 0);
	/* a record claiming more bytes than the payload holds, without the span flag */
	rh.value_len = 5000;
	memcpy(payload + 100, &rh, sizeof(rh));
	bh.crc = mcw_crc32c(mcw_crc32c(0, payload, bh.payload_bytes), &bh, 28);
	memcpy(blk, &bh, sizeof(bh));
	assert_int_equal(chunk_block_check(blk, sizeof(blk), MCW_BLOCK_BYTES, 3, &v), CHUNK_OK);
	memset(&span, 0, sizeof(span));
	r = chunk_block_walk(&v, &span, check_piece, &rb);
	assert_int_equal(r.status, CHUNK_ERR_FIELD);
	free(rb.val);
}

static int count_piece(void *arg, const struct chunk_piece *p)
{
	(void)arg;
	(void)p;
	return 0;
}

/* A block whose last value goes on must be full (as the writer leaves it): otherwise a
 * value could be cut into as many pieces as a file has blocks. */
static void test_continuing_block_is_full(void **state)
{
	(void)state;
	static uint8_t blk[MCW_BLOCK_BYTES];
	const uint32_t cap = MCW_BLOCK_BYTES - MCW_BLOCK_HEADER_BYTES;
	struct chunk_block_header bh = { .magic = CHUNK_BLOCK_MAGIC,
					 .flags = CHUNK_BLOCK_F_CONTINUES,
					 .record_count = 1 };
	uint8_t *payload = blk + sizeof(bh);
	struct chunk_record_header rh = { .key_len = 1, .value_len = 3 * cap };
	memcpy(payload, &rh, sizeof(rh));
	payload[sizeof(rh)] = 'k';
	const uint32_t lens[] = { cap, cap - 1 }; /* full: good; one byte short: refused */
	for (unsigned i = 0; i < 2; i++) {
		uint32_t len = lens[i];
		bh.payload_bytes = len;
		bh.crc = mcw_crc32c(mcw_crc32c(0, payload, len), &bh, 28);
		memcpy(blk, &bh, sizeof(bh));
		struct chunk_block_view v;
		assert_int_equal(chunk_block_check(blk, sizeof(blk), MCW_BLOCK_BYTES, 0, &v),
				 CHUNK_OK);
		struct chunk_span span = { 0 };
		struct chunk_walk_result r = chunk_block_walk(&v, &span, count_piece, NULL);
		assert_int_equal(r.status, len == cap ? CHUNK_OK : CHUNK_ERR_FIELD);
		if (len == cap) { /* a middle block one byte short is refused as well */
			assert_true(span.active);
			bh = (struct chunk_block_header){ .magic = CHUNK_BLOCK_MAGIC,
							  .index = 1,
							  .flags = CHUNK_BLOCK_F_CONTINUES,
							  .payload_bytes = cap - 1,
							  .cont_bytes = cap - 1 };
			bh.crc = mcw_crc32c(mcw_crc32c(0, payload, cap - 1), &bh, 28);
			memcpy(blk, &bh, sizeof(bh));
			assert_int_equal(
			    chunk_block_check(blk, sizeof(blk), MCW_BLOCK_BYTES, 1, &v), CHUNK_OK);
			r = chunk_block_walk(&v, &span, count_piece, NULL);
			assert_int_equal(r.status, CHUNK_ERR_FIELD);
			bh = (struct chunk_block_header){ .magic = CHUNK_BLOCK_MAGIC,
							  .flags = CHUNK_BLOCK_F_CONTINUES,
							  .record_count = 1 };
			memcpy(payload, &rh, sizeof(rh));
			payload[sizeof(rh)] = 'k';
		}
	}
}

static void test_names(void **state)
{
	(void)state;
	char n[CHUNK_NAME_MAX];
	uint32_t j, p, c;
	chunk_name_final(n, 12, 3, 0xdeadbeef);
	assert_string_equal(n, "chunk-000012-003-deadbeef.mcw");
	assert_true(chunk_name_parse(n, &j, &p, &c));
	assert_int_equal(j, 12);
	assert_int_equal(p, 3);
	assert_int_equal(c, 0xdeadbeef);
	chunk_name_temp(n, 12, 3);
	assert_false(chunk_name_parse(n, &j, &p, &c));
	assert_false(chunk_name_parse("chunk-000012-003-DEADBEEF.mcw", &j, &p, &c));
	assert_false(chunk_name_parse("chunk-00001x-003-deadbeef.mcw", &j, &p, &c));
	assert_false(chunk_name_parse("chunk-000012-003-deadbeef.mcwx", &j, &p, &c));
}

int main(void)
{
	model_init();
	value_buf = malloc(VALUE_MAX);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_stage),
		cmocka_unit_test(test_roundtrip_writev),
		cmocka_unit_test(test_roundtrip_writev_early_flushes),
		cmocka_unit_test(test_no_records_no_file),
		cmocka_unit_test(test_flipped_bit_each_block),
		cmocka_unit_test(test_truncated_every_block),
		cmocka_unit_test(test_header_and_footer_checks),
		cmocka_unit_test(test_orphan_continuation),
		cmocka_unit_test(test_continuing_block_is_full),
		cmocka_unit_test(test_names),
	};
	int ret = cmocka_run_group_tests(tests, NULL, NULL);
	free(value_buf);
	free(value_arena);
	return ret;
}
