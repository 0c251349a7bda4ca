/*
 * keyspool.h: key chunks, the dumper's private spool between the key reader and the
 * value workers. One file per chunk, "keys-<seq:06>.mck" in <out>/.mcwarm/:
 *
 *   header page (4096): magic "MCWKEYS1", version, output group, dump id, sequence,
 *                       key count, payload length, payload crc32c, header crc32c
 *   payload:            per key: u16 length, u8 flags (KEYCHUNK_F_*), u8 0, key bytes
 *   zero padding to a multiple of 4096 (written with one O_DIRECT write)
 */
#ifndef MCW_KEYSPOOL_H
#define MCW_KEYSPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYCHUNK_F_B64 0x1u /* the key must travel base64-encoded (meta b) */

struct keychunk_header {
	char magic[8];
	uint16_t version;
	uint16_t group; /* output group of every key in it (keyfilter.h), 0 without groups */
	uint32_t header_bytes;
	uint8_t dump_id[16];
	uint32_t seq;
	uint32_t key_count;
	uint32_t payload_bytes;
	uint32_t payload_crc;
	uint8_t zero[4096 - 48 - 4];
	uint32_t crc;
};

/* Builds one chunk in caller memory (4096-aligned; a chunk holds at most
 * min(cap, MCW_KEYCHUNK_BYTES) bytes). */
struct keychunk_builder {
	uint8_t *buf;
	size_t cap;
	size_t used; /* header page + payload so far */
	uint32_t count;
};

void keychunk_builder_reset(struct keychunk_builder *b, uint8_t *buf, size_t cap);
/* false when the key does not fit (count or bytes): finish this chunk first. */
bool keychunk_add(struct keychunk_builder *b, const uint8_t *key, size_t key_len, uint8_t flags);
/* Writes the header; returns the bytes to write (a multiple of 4096). */
size_t keychunk_finish(struct keychunk_builder *b, const uint8_t dump_id[16], uint32_t seq,
		       uint16_t group);

void keychunk_name(char out[32], uint32_t seq);

/* A loaded chunk: keys are read in order with keychunk_next. */
struct keychunk_view {
	const uint8_t *payload;
	uint32_t payload_bytes;
	uint32_t count;
	uint32_t seq;
	uint16_t group;
};

/* Reads and verifies chunk seq from dir_fd into buf. 0, -EIO (corrupt: err says how),
 * or -errno. */
int keychunk_load(int dir_fd, uint32_t seq, const uint8_t dump_id[16], uint8_t *buf, size_t cap,
		  struct keychunk_view *out, char *err, size_t err_cap);

/* Iterates keys: *pos starts at 0. false at the end. Lengths were checked at load. */
bool keychunk_next(const struct keychunk_view *v, uint32_t *pos, const uint8_t **key,
		   uint16_t *key_len, uint8_t *flags);

#endif
