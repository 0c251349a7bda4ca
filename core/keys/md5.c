/*
 * md5.c: MD5 as RFC 1321 describes it. The message is padded with a 1 bit, zeros up to
 * 56 bytes mod 64, and its length in bits as a little-endian u64; each 64-byte block
 * then goes through four rounds of sixteen steps that update the state (A, B, C, D).
 * Message words and the digest are little-endian. Full blocks are read straight from
 * the caller's buffer; only the tail and the padding (one or two blocks) are copied to
 * the stack, so nothing allocates. Keys are short, so there is no streaming interface.
 */
#include <string.h>

#include "base.h" /* ensures a little-endian host: words are loaded with memcpy */
#include "md5.h"

#define MD5_BLOCK_BYTES	  64
#define MD5_BLOCK_WORDS	  16
#define MD5_LENGTH_OFFSET 56 /* the bit length fills the last 8 bytes of the last block */

/* T[i] = floor(2^32 * |sin(i + 1)|) (RFC 1321, 3.4), i = 0..63. */
static const uint32_t md5_t[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
	0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
	0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
	0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
	0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
	0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
	0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
	0xeb86d391,
};

/* Left-rotation amounts: four per round, repeated over the round's sixteen steps. */
static const uint8_t md5_shift[4][4] = {
	{ 7, 12, 17, 22 },
	{ 5, 9, 14, 20 },
	{ 4, 11, 16, 23 },
	{ 6, 10, 15, 21 },
};

static inline uint32_t rotl32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

/*
 * One step: a = b + ((a + f(b, c, d) + X[k] + T[i]) <<< s), then the registers rotate
 * (a, b, c, d) <- (d, a', b, c), which is the RFC's [abcd k s i], [dabc ...] sequence.
 * f is evaluated first, on the registers before the rotation.
 */
#define MD5_STEP(f, k, i, s)                                                                       \
	do {                                                                                       \
		uint32_t mixed = a + (f) + x[(k)] + md5_t[(i)];                                    \
		a = d;                                                                             \
		d = c;                                                                             \
		c = b;                                                                             \
		b = b + rotl32(mixed, (s));                                                        \
	} while (0)

static void md5_block(uint32_t state[4], const uint8_t *block)
{
	uint32_t x[MD5_BLOCK_WORDS];
	memcpy(x, block, sizeof(x));
	uint32_t a = state[0], b = state[1], c = state[2], d = state[3];

	/* Round 1: F(b, c, d) = (b & c) | (~b & d), words in order. */
	for (unsigned i = 0; i < 16; i++)
		MD5_STEP((b & c) | (~b & d), i, i, md5_shift[0][i % 4]);
	/* Round 2: G(b, c, d) = (b & d) | (c & ~d), word (1 + 5i) mod 16. */
	for (unsigned i = 16; i < 32; i++)
		MD5_STEP((b & d) | (c & ~d), (1 + 5 * i) % 16, i, md5_shift[1][i % 4]);
	/* Round 3: H(b, c, d) = b ^ c ^ d, word (5 + 3i) mod 16. */
	for (unsigned i = 32; i < 48; i++)
		MD5_STEP(b ^ c ^ d, (5 + 3 * i) % 16, i, md5_shift[2][i % 4]);
	/* Round 4: I(b, c, d) = c ^ (b | ~d), word 7i mod 16. */
	for (unsigned i = 48; i < 64; i++)
		MD5_STEP(c ^ (b | ~d), (7 * i) % 16, i, md5_shift[3][i % 4]);

	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
}

void mcw_md5(const void *data, size_t len, uint8_t out[MD5_DIGEST_BYTES])
{
	ASSERT(data != NULL || len == 0);
	uint32_t state[4] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };
	const uint8_t *p = data;
	size_t full = len / MD5_BLOCK_BYTES * MD5_BLOCK_BYTES;
	for (size_t off = 0; off < full; off += MD5_BLOCK_BYTES)
		md5_block(state, p + off);

	/* The tail, the 0x80 byte, zeros and the 64-bit length take one or two blocks. */
	uint8_t last[2 * MD5_BLOCK_BYTES] = { 0 };
	size_t tail = len - full;
	if (tail > 0)
		memcpy(last, p + full, tail);
	last[tail] = 0x80;
	size_t last_bytes = tail < MD5_LENGTH_OFFSET ? MD5_BLOCK_BYTES : 2 * MD5_BLOCK_BYTES;
	uint64_t bits = (uint64_t)len * 8;
	memcpy(last + last_bytes - 8, &bits, sizeof(bits));
	md5_block(state, last);
	if (last_bytes > MD5_BLOCK_BYTES)
		md5_block(state, last + MD5_BLOCK_BYTES);

	memcpy(out, state, MD5_DIGEST_BYTES);
}
