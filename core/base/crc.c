/*
 * crc.c: crc32c through isa-l. isa-l's crc32_iscsi does no pre/post inversion and takes
 * an int length, so this wrapper inverts and feeds it at most 1 GiB at a time.
 */
#include <pthread.h>

#include <isa-l/crc.h>

#include "crc.h"

uint32_t mcw_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;
	while (len > 0) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		c = crc32_iscsi((unsigned char *)p, (int)n, c);
		p += n;
		len -= n;
	}
	return ~c;
}

/*
 * Combination works in GF(2) polynomial arithmetic modulo the reflected Castagnoli
 * polynomial: crc(A.B) = crc(A) * x^(8*len(B)) + crc(B). Powers x^(2^k) are computed once;
 * x^(8n) is the product of the powers for the set bits of n. A few microseconds a call,
 * so it is used per block, never per record.
 */
#define CRC32C_POLY_REFLECTED 0x82f63b78u

static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
	uint32_t product = 0;
	for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
		if (a & bit)
			product ^= b;
		b = (b & 1) ? (b >> 1) ^ CRC32C_POLY_REFLECTED : b >> 1;
	}
	return product;
}

static uint32_t x_pow_2k[64]; /* x^(2^k) mod P, reflected */

static void powers_init(void)
{
	uint32_t p = 1u << 30; /* x^1 */
	for (unsigned k = 0; k < 64; k++) {
		x_pow_2k[k] = p;
		p = gf2_mulmod(p, p);
	}
}

uint32_t mcw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, powers_init);
	uint32_t shift = 1u << 31; /* x^0 */
	uint64_t n = len_b;
	for (unsigned k = 3; n != 0; n >>= 1, k++) { /* 8*len = len * 2^3 */
		if (n & 1)
			shift = gf2_mulmod(x_pow_2k[k & 63], shift);
	}
	return gf2_mulmod(shift, crc_a) ^ crc_b;
}
