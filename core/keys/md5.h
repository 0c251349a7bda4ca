/*
 * md5.h: MD5 (RFC 1321), one-shot. Only for ketama rings (hashring.c), whose clients
 * derive ring points and key hashes from MD5; never use it where collisions matter.
 * mcw_md5("", 0) == d41d8cd98f00b204e9800998ecf8427e.
 */
#ifndef MCW_MD5_H
#define MCW_MD5_H

#include <stddef.h>
#include <stdint.h>

#define MD5_DIGEST_BYTES 16

/* Digest of len bytes at data into out. No allocation; data may be NULL when len is 0. */
void mcw_md5(const void *data, size_t len, uint8_t out[MD5_DIGEST_BYTES]);

#endif
