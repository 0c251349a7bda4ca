/*
 * fuzz_chunk_file.c: libFuzzer target for the chunk-file reader, through
 * mcw_chunk_file_scan (the whole path: header, blocks, records spanning blocks, footer,
 * checksums). The input is written to a file on /dev/shm and scanned. Checked: no read
 * outside what the file holds (ASan), every record handed out has a key of 1 to 250 bytes
 * (or a binary key up to its limit) and a value no larger than the file. Checksums make
 * would stop most mutations at the first block: the fuzz build accepts any checksum
 * (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, chunk_reader.c) so the structure checks
 * behind them are what is fuzzed. The seed corpus holds real chunk files.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];
static size_t file_size;

static int on_record(void *arg, const struct mcw_record *r)
{
	(void)arg;
	if (r->key_len == 0 || r->key_len > 250 || r->value_len > file_size)
		abort();
	/* touch both ends of key and value: ASan reports an overread */
	volatile uint8_t sink = r->key[0] ^ r->key[r->key_len - 1];
	if (r->value_len > 0)
		sink ^= r->value[0] ^ r->value[r->value_len - 1];
	(void)sink;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/dev/shm/mcw-fuzz-%d.mcw", (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	for (size_t off = 0; off < size;) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	close(fd);
	file_size = size;
	char err[512];
	(void)mcw_chunk_file_scan(path, on_record, NULL, err, sizeof(err));
	unlink(path);
	return 0;
}
