/*
 * fuzz_input.h: the fuzz targets' private copy of an input, exactly size bytes long (at
 * least one), so that AddressSanitizer reports any read past its end.
 */
#ifndef MCW_FUZZ_INPUT_H
#define MCW_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline char *fuzz_input_copy(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (buf != NULL && size > 0)
		memcpy(buf, data, size);
	return buf;
}

#endif
