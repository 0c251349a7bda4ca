/*
 * checkpoint.h: what a dump has finished, so that a dump killed at any moment continues
 * where it stopped (`mcwarm dump` run again with the same arguments). The file is
 * <out>/.mcwarm/checkpoint, append-only crc lines (crcline.h):
 *
 *   mcwarm-checkpoint 1 dump=<32 hex> source=<host:port> started=<unix s> pid=<n>
 *       options=<8 hex>                     first line: the dump and what shapes it
 *   keys-done chunks=<n>                    the key listing ended with n key chunks
 *   job <j>                                 every file of key chunk j is published
 *
 * A job line is written only after the job's last chunk file has its final name and its
 * directory is synced, so a job named here never needs redoing. Lines are not synced one
 * by one: a line lost in a crash only means that job is done again (its files are
 * removed first). A damaged line (not a torn last one) makes the whole file untrusted.
 */
#ifndef MCW_CHECKPOINT_H
#define MCW_CHECKPOINT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcw_limits.h"

#define CHECKPOINT_NAME "checkpoint"

struct checkpoint {
	int fd;
	pthread_mutex_t mu;
	char dump_id_hex[33];
	char source[300]; /* --source as given (struct hostport's text) */
	int64_t source_started_s;
	uint32_t source_pid;
	uint32_t options_crc;
	bool keys_done;
	uint32_t chunks;    /* key chunks, when keys_done */
	uint32_t jobs_done; /* job lines */
	uint32_t job_end;   /* highest job named + 1 */
	uint8_t done[CHECKPOINT_JOBS_MAX / 8];
};

/* Reads <spool>/checkpoint. 0: loaded; -ENOENT: none; -EBADMSG: damaged (err says where);
 * other -errno: unreadable. The file stays open for appends on success. */
int checkpoint_load(struct checkpoint *cp, int spool_fd, char *err, size_t cap);

/* Starts a new checkpoint (replacing any) and syncs it. 0 or -errno. */
int checkpoint_create(struct checkpoint *cp, int spool_fd, const char *dump_id_hex,
		      const char *source, int64_t source_started_s, uint32_t source_pid,
		      uint32_t options_crc);

/* Thread-safe appends. 0 or -errno. The bitmap keeps what was loaded (workers read it
 * without a lock); the lines count at the next load. */
int checkpoint_keys_done(struct checkpoint *cp, uint32_t chunks);
int checkpoint_job_done(struct checkpoint *cp, uint32_t job);

bool checkpoint_job_is_done(const struct checkpoint *cp, uint32_t job);
void checkpoint_close(struct checkpoint *cp);

#endif
