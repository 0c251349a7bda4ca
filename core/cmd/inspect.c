/*
 * inspect.c: `mcwarm inspect FILE...`, a decoder for chunk files that trusts nothing in
 * them. It reports every structure it can read and every one it cannot, by file, block
 * and byte offset, recomputes the whole-file crc32c and compares it with the footer and
 * the name. It reads with plain pread: this is a diagnostic, not the data path.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "chunk_reader.h"
#include "cli.h"
#include "core.h"
#include "crc.h"
#include "mcw_limits.h"

static const char inspect_usage[] =
    "usage: mcwarm inspect [--records [--values]] FILE...\n"
    "\n"
    "Decodes chunk files: header, every block, footer, checksums. Corruption is reported\n"
    "as FILE: block N at offset X: what. Exit code 0 when every file is intact, 65 when\n"
    "any is not.\n"
    "\n"
    "      --records   print one line per record instead of one per block:\n"
    "                  record key=<percent-encoded> flags=<u32> expires_ms=<unix ms|0>\n"
    "                  value_len=<n> [binary_key]\n"
    "      --values    with --records: add value=<hex> to each record line\n"
    "  -h, --help      this text\n";

struct inspect_opts {
	bool records;
	bool values;
};

struct file_scan {
	const char *path;
	const struct inspect_opts *o;
	bool bad;
	uint64_t records;
	uint64_t block_errors;
	uint64_t orphan_bytes;
};

static void report(struct file_scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct file_scan *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "%s: %s\n", s->path, msg);
	s->bad = true;
}

static int print_piece(void *arg, const struct chunk_piece *p)
{
	struct file_scan *s = arg;
	if (p->first)
		s->records++;
	if (!s->o->records)
		return 0;
	if (p->first) {
		char key[3 * MCP_KEY_MAX + 1];
		size_t n = mcp_pct_encode(key, sizeof(key) - 1, p->key, p->hdr.key_len);
		key[n] = '\0';
		printf("record key=%s flags=%u expires_ms=%" PRId64 " value_len=%u%s", key,
		       p->hdr.client_flags, p->hdr.expires_at_ms, p->hdr.value_len,
		       (p->hdr.flags & CHUNK_REC_F_BINARY_KEY) ? " binary_key" : "");
		if (s->o->values)
			fputs(" value=", stdout);
	}
	if (s->o->values) {
		static const char hex[] = "0123456789abcdef";
		for (uint32_t i = 0; i < p->value_len; i++) {
			putchar(hex[p->value[i] >> 4]);
			putchar(hex[p->value[i] & 15]);
		}
	}
	if (p->last)
		putchar('\n');
	return 0;
}

static void print_header(const struct chunk_header *h)
{
	char id[33], when[64];
	time_t t = (time_t)(h->f.created_unix_ns / NS_PER_SEC);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	hex_encode(id, h->f.dump_id, 16);
	printf("  header: format %u.%u, dump %s, key chunk %u part %u, created %s\n",
	       h->f.version_major, h->f.version_minor, id, h->f.job, h->f.part, when);
	printf("  source: %.64s (memcached %.32s, pid %u, clock %" PRId64 " at dump start), "
	       "blocks of %u bytes\n",
	       h->f.source_addr, h->f.source_version, h->f.source_pid, h->f.source_time_s,
	       h->f.block_bytes);
}

/* Walks blocks in [MCW_HEADER_BYTES, end), chaining the file crc over what it reads. */
static uint32_t scan_blocks(struct file_scan *s, int fd, uint64_t end, uint32_t block_bytes,
			    uint32_t crc, uint64_t *blocks)
{
	uint8_t *buf = malloc(block_bytes);
	struct chunk_span span = { 0 };
	ASSERT(buf != NULL);
	*blocks = 0;
	for (uint64_t off = MCW_HEADER_BYTES; off < end; off += block_bytes, (*blocks)++) {
		size_t want = (size_t)MIN((uint64_t)block_bytes, end - off);
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0) {
			report(s, "block %" PRIu64 " at offset %" PRIu64 ": read error: %s",
			       *blocks, off, strerror(errno));
			break;
		}
		crc = mcw_crc32c(crc, buf, (size_t)n);
		struct chunk_block_view v;
		enum chunk_status st =
		    chunk_block_check(buf, (size_t)n, block_bytes, (uint32_t)*blocks, &v);
		if (st != CHUNK_OK) {
			report(s, "block %" PRIu64 " at offset %" PRIu64 ": %s", *blocks, off,
			       chunk_status_name(st));
			s->block_errors++;
			chunk_span_lost(&span);
			continue;
		}
		struct chunk_walk_result r = chunk_block_walk(&v, &span, print_piece, s);
		if (r.status != CHUNK_OK) {
			report(s, "block %" PRIu64 " at offset %" PRIu64 ": record structure %s",
			       *blocks, off, chunk_status_name(r.status));
			s->block_errors++;
		}
		if (r.orphan_bytes > 0) {
			s->orphan_bytes += r.orphan_bytes;
			report(s,
			       "block %" PRIu64 " at offset %" PRIu64 ": %u bytes continue a "
			       "record from a damaged block",
			       *blocks, off, r.orphan_bytes);
		}
		if (!s->o->records)
			printf("  block %" PRIu64 " at %" PRIu64 ": %u records begin, %u payload "
			       "bytes%s, crc ok\n",
			       *blocks, off, v.h.record_count, v.h.payload_bytes,
			       (v.h.flags & CHUNK_BLOCK_F_CONTINUES) ? ", last continues" : "");
	}
	if (span.active)
		report(s, "the last record's value is cut off (%u bytes missing)", span.value_left);
	free(buf);
	return crc;
}

static void check_footer(struct file_scan *s, const struct chunk_footer *ft, uint32_t crc,
			 uint64_t blocks, const struct chunk_header *h)
{
	uint32_t job, part, name_crc;
	const char *base = strrchr(s->path, '/') ? strrchr(s->path, '/') + 1 : s->path;
	printf("  footer: %" PRIu64 " records in %" PRIu64 " blocks, %" PRIu64
	       " value bytes, file crc32c %08x\n",
	       ft->f.record_count, ft->f.block_count, ft->f.value_bytes, ft->f.file_crc);
	if (crc != ft->f.file_crc)
		report(s, "whole-file crc32c is %08x but the footer says %08x", crc,
		       ft->f.file_crc);
	if (ft->f.block_count != blocks)
		report(s, "%" PRIu64 " blocks but the footer says %" PRIu64, blocks,
		       ft->f.block_count);
	if (ft->f.record_count != s->records)
		report(s, "%" PRIu64 " records readable but the footer says %" PRIu64, s->records,
		       ft->f.record_count);
	if (memcmp(ft->f.dump_id, h->f.dump_id, 16) != 0 || ft->f.job != h->f.job ||
	    ft->f.part != h->f.part)
		report(s, "footer belongs to another file (dump id, job or part differ)");
	if (chunk_name_parse(base, &job, &part, &name_crc)) {
		if (name_crc != ft->f.file_crc)
			report(s, "the name says crc32c %08x but the footer says %08x", name_crc,
			       ft->f.file_crc);
		if (job != h->f.job || part != h->f.part)
			report(s, "the name says key chunk %u part %u, the header %u part %u", job,
			       part, h->f.job, h->f.part);
	}
}

static void inspect_fd(struct file_scan *s, int fd, uint64_t size)
{
	struct chunk_header h;
	struct chunk_footer ft;
	uint8_t page[MCW_HEADER_BYTES];
	ssize_t n = pread(fd, page, sizeof(page), 0);
	enum chunk_status st = chunk_header_check(page, n < 0 ? 0 : (size_t)n, &h);
	if (st != CHUNK_OK) {
		report(s, "header at offset 0: %s (not a chunk file, or damaged)",
		       chunk_status_name(st));
		return;
	}
	print_header(&h);
	bool has_footer = false;
	if (size >= MCW_HEADER_BYTES + MCW_FOOTER_BYTES) {
		n = pread(fd, page, sizeof(page), (off_t)(size - MCW_FOOTER_BYTES));
		has_footer = chunk_footer_check(page, n < 0 ? 0 : (size_t)n, &ft) == CHUNK_OK &&
			     ft.f.file_bytes == size;
	}
	uint64_t end = has_footer ? size - MCW_FOOTER_BYTES : size;
	uint64_t blocks;
	uint32_t crc = mcw_crc32c(0, &h, sizeof(h));
	crc = scan_blocks(s, fd, end, h.f.block_bytes, crc, &blocks);
	if (has_footer)
		check_footer(s, &ft, crc, blocks, &h);
	else
		report(s,
		       "no valid footer at offset %" PRIu64 ": the file is truncated or was "
		       "never finished (%" PRIu64 " records readable)",
		       size >= MCW_FOOTER_BYTES ? size - MCW_FOOTER_BYTES : 0, s->records);
}

static bool inspect_file(const char *path, const struct inspect_opts *o)
{
	struct file_scan s = { .path = path, .o = o };
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		report(&s, "cannot open: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (!S_ISREG(sb.st_mode)) {
		report(&s, "not a regular file");
		close(fd);
		return false;
	}
	if (!o->records)
		printf("%s: %" PRIu64 " bytes\n", path, (uint64_t)sb.st_size);
	inspect_fd(&s, fd, (uint64_t)sb.st_size);
	close(fd);
	if (!o->records)
		printf("  result: %s, %" PRIu64 " records\n", s.bad ? "DAMAGED" : "ok", s.records);
	return !s.bad;
}

int mcw_cmd_inspect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "records", no_argument, NULL, 'r' },
		{ "values", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct inspect_opts o = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.records = true;
			break;
		case 'v':
			o.values = true;
			break;
		case 'h':
			printf("%s\n%s", inspect_usage, mcw_exit_codes_help);
			return MCW_EXIT_OK;
		default:
			return cli_usage_error("inspect", "unknown option");
		}
	}
	if (o.values && !o.records)
		return cli_usage_error("inspect", "--values needs --records");
	if (optind == argc)
		return cli_usage_error("inspect", "name at least one chunk file");
	bool all_ok = true;
	for (int i = optind; i < argc; i++)
		all_ok &= inspect_file(argv[i], &o);
	fflush(stdout);
	return all_ok ? MCW_EXIT_OK : MCW_EXIT_DATA;
}
