/*
 * chunk_format.c: chunk file names. The final name carries the job, the part and the
 * whole-file crc32c, so a reader can check a file against its own name.
 */
#include <stdio.h>
#include <string.h>

#include "chunk_format.h"

void chunk_name_final(char out[CHUNK_NAME_MAX], uint32_t job, uint32_t part, uint32_t crc)
{
	snprintf(out, CHUNK_NAME_MAX, "chunk-%06u-%03u-%08x" CHUNK_SUFFIX, job, part, crc);
}

void chunk_name_temp(char out[CHUNK_NAME_MAX], uint32_t job, uint32_t part)
{
	snprintf(out, CHUNK_NAME_MAX, "chunk-%06u-%03u.tmp", job, part);
}

bool chunk_name_parse(const char *name, uint32_t *job, uint32_t *part, uint32_t *crc)
{
	unsigned j, p, c;
	int n = 0;
	if (strlen(name) != strlen("chunk-000000-000-00000000" CHUNK_SUFFIX))
		return false;
	if (sscanf(name, "chunk-%6u-%3u-%8x" CHUNK_SUFFIX "%n", &j, &p, &c, &n) != 3 ||
	    (size_t)n != strlen(name))
		return false;
	for (size_t i = 0; i < 25; i++) { /* digits exactly where the format puts them */
		char ch = name[i];
		bool dash = i == 5 || i == 12 || i == 16;
		if (dash    ? ch != '-'
		    : i < 5 ? ch != "chunk"[i]
			    : !((ch >= '0' && ch <= '9') || (i > 16 && ch >= 'a' && ch <= 'f')))
			return false;
	}
	*job = j;
	*part = p;
	*crc = c;
	return true;
}
