/*
 * chunk_format.h: the on-disk layout of chunk files, version 1 (docs/format.md).
 *
 *   offset 0            header          4096 bytes
 *   4096 + i*block      block i         block_bytes (the last block may be shorter: its
 *                                       header and payload rounded up to 4096)
 *   after last block    footer          4096 bytes
 *
 * Little-endian, fixed-width fields. Every structure carries its own crc32c; the footer
 * carries the crc32c of every byte before it, and the file's final name carries that too.
 * Records start anywhere in a block payload (no alignment); a record's header and key
 * never cross a block boundary, its value may (records larger than the span threshold).
 */
#ifndef MCW_CHUNK_FORMAT_H
#define MCW_CHUNK_FORMAT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "mcw_limits.h"

#define CHUNK_MAGIC	    "MCWCHUNK"
#define CHUNK_FOOTER_MAGIC  "MCWFOOTR"
#define CHUNK_BLOCK_MAGIC   0x4257434dU /* "MCWB" */
#define CHUNK_VERSION_MAJOR 1
#define CHUNK_VERSION_MINOR 0
#define CHUNK_SUFFIX	    ".mcw"
#define CHUNK_NAME_MAX	    64

/* Block flags. */
#define CHUNK_BLOCK_F_CONTINUES 0x1u /* the last record's value goes on in the next block */

/* Record flags. */
#define CHUNK_REC_F_BINARY_KEY 0x1u /* the source reported the key as binary (meta b) */

struct chunk_header_fields {
	char magic[8];		      /* CHUNK_MAGIC */
	uint16_t version_major;	      /* readers refuse other majors */
	uint16_t version_minor;	      /* readers accept any minor */
	uint32_t header_bytes;	      /* 4096 */
	uint32_t block_bytes;	      /* stride of data blocks, multiple of 4096 */
	uint32_t flags;		      /* 0 */
	uint8_t dump_id[16];	      /* random, shared by every file of one dump */
	uint32_t job;		      /* key chunk this file was fetched for */
	uint32_t part;		      /* file number within the job */
	int64_t created_unix_ns;      /* mover wall clock when the file was opened */
	int64_t dump_started_unix_ns; /* mover wall clock when the dump started */
	int64_t source_time_s;	      /* source "stats time" at dump start */
	int64_t source_started_s;     /* source time - uptime: identifies the process */
	uint32_t source_pid;
	uint32_t reserved0;
	char source_addr[64];	 /* host:port, NUL padded */
	char source_version[32]; /* memcached version, NUL padded */
};

struct chunk_header {
	struct chunk_header_fields f;
	uint8_t zero[MCW_HEADER_BYTES - sizeof(struct chunk_header_fields) - 4];
	uint32_t crc; /* crc32c of the 4092 bytes before it */
};

struct chunk_block_header {
	uint32_t magic;		/* CHUNK_BLOCK_MAGIC */
	uint32_t index;		/* block number in the file, from 0 */
	uint32_t payload_bytes; /* bytes of payload after this header */
	uint32_t cont_bytes;	/* payload bytes that continue a record from the previous block */
	uint32_t record_count;	/* records that begin in this block */
	uint32_t flags;		/* CHUNK_BLOCK_F_* */
	uint32_t reserved;
	uint32_t crc; /* crc32c(crc32c(0, payload), first 28 bytes of this header) */
};

struct __attribute__((packed)) chunk_record_header {
	uint16_t key_len; /* 1..250 */
	uint8_t flags;	  /* CHUNK_REC_F_* */
	uint8_t reserved;
	uint32_t client_flags; /* memcached client flags, all 32 bits */
	int64_t expires_at_ms; /* unix milliseconds, mover's clock; 0 = never expires */
	uint32_t value_len;
	/* key bytes, then value bytes */
};

struct chunk_footer_fields {
	char magic[8]; /* CHUNK_FOOTER_MAGIC */
	uint64_t record_count;
	uint64_t block_count;
	uint64_t key_bytes;
	uint64_t value_bytes;
	uint64_t file_bytes; /* whole file, footer included */
	uint32_t file_crc;   /* crc32c of bytes [0, file_bytes - 4096) */
	uint32_t last_block_bytes;
	uint8_t dump_id[16];
	uint32_t job;
	uint32_t part;
};

struct chunk_footer {
	struct chunk_footer_fields f;
	uint8_t zero[MCW_FOOTER_BYTES - sizeof(struct chunk_footer_fields) - 4];
	uint32_t crc; /* crc32c of the 4092 bytes before it */
};

static_assert(sizeof(struct chunk_header) == MCW_HEADER_BYTES, "header is one page");
static_assert(sizeof(struct chunk_footer) == MCW_FOOTER_BYTES, "footer is one page");
static_assert(sizeof(struct chunk_block_header) == MCW_BLOCK_HEADER_BYTES, "block header");
static_assert(sizeof(struct chunk_record_header) == MCW_RECORD_HEADER_BYTES, "record header");
static_assert(offsetof(struct chunk_block_header, crc) == 28, "block crc covers 28 bytes");
static_assert(offsetof(struct chunk_header_fields, source_addr) == 88, "documented offsets");

#define CHUNK_PAYLOAD_MAX(block_bytes) ((block_bytes)-MCW_BLOCK_HEADER_BYTES)
#define CHUNK_SPAN_THRESHOLD(block_bytes)                                                          \
	(CHUNK_PAYLOAD_MAX(block_bytes) / MCW_SPAN_THRESHOLD_DIVISOR)

/* "chunk-<job:06>-<part:03>-<crc:08x>.mcw" and its temporary "chunk-<job>-<part>.tmp". */
void chunk_name_final(char out[CHUNK_NAME_MAX], uint32_t job, uint32_t part, uint32_t crc);
void chunk_name_temp(char out[CHUNK_NAME_MAX], uint32_t job, uint32_t part);
/* Parses a final name; false for anything else (temporary files included). */
bool chunk_name_parse(const char *name, uint32_t *job, uint32_t *part, uint32_t *crc);

#endif
