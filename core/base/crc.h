/*
 * crc.h: crc32c (Castagnoli), the checksum of every mcwarm file format.
 * Standard CRC-32C: mcw_crc32c(0, "123456789", 9) == 0xE3069283. Chaining:
 * mcw_crc32c(mcw_crc32c(0, a, n), b, m) == crc of a followed by b.
 */
#ifndef MCW_CRC_H
#define MCW_CRC_H

#include <stddef.h>
#include <stdint.h>

#include "core.h" /* mcw_crc32c is public */

/* crc32c of A followed by B, from crc(A), crc(B) and the length of B: lets a block's
 * checksum and the file's whole checksum come from one pass over the bytes. */
uint32_t mcw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
#endif
