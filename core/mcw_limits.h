/*
 * mcw_limits.h: every limit and default of mcwarm in one place, with the relations
 * between them checked at compile time. Units are in the names.
 */
#ifndef MCW_LIMITS_H
#define MCW_LIMITS_H

#include <assert.h>

#include "base.h"
#include "mcproto.h"

/* Memory. */
#define MCW_MEMORY_DEFAULT_BYTES  (64 * MIB)
#define MCW_MEMORY_OVERHEAD_BYTES (16 * MIB) /* promised bound on RSS beyond the budget */
#define MCW_WORKER_BUF_MAX_BYTES  (8 * MIB)  /* more per buffer does not go faster */
#define MCW_DEDUPE_MIN_BYTES	  (1 * MIB)
#define MCW_THREADS_MAX		  64

/* Chunk files (docs/format.md). */
#define MCW_ALIGN_BYTES		   4096
#define MCW_HEADER_BYTES	   4096
#define MCW_FOOTER_BYTES	   4096
#define MCW_BLOCK_BYTES		   (256 * KIB)
#define MCW_BLOCK_HEADER_BYTES	   32
#define MCW_RECORD_HEADER_BYTES	   20
#define MCW_WRITE_UNIT_BLOCKS	   4 /* blocks per O_DIRECT write: 1 MiB */
#define MCW_CHUNK_BYTES_DEFAULT	   (64 * MIB)
#define MCW_CHUNK_BYTES_MIN	   (1 * MIB)
#define MCW_CHUNK_BYTES_MAX	   (1 * GIB) /* 4096 blocks: the populator tracks blocks per file */
#define MCW_SPAN_THRESHOLD_DIVISOR 8	     /* records above payload/8 may span blocks */
#define MCW_PARTS_PER_JOB_MAX	   999

/* Key chunks (the dumper's key spool). */
#define MCW_KEYCHUNK_BYTES	 (1 * MIB)
#define MCW_KEYCHUNK_KEYS_MAX	 16384
#define MCW_GROUP_KEYCHUNK_BYTES (64 * KIB) /* a key chunk per output group (resize dumps) */
#define MCW_STREAM_SLOTS	 2	    /* ms batches in flight per stream worker */
#define MCW_STREAM_BATCH_RECORDS 256	    /* ms requests per batch, closed by mn */
#define MCW_STREAM_RECV_BYTES	 (64 * KIB) /* the destination's answers (NS, MN, errors) */
#define MCW_KEY_RECORD_HEADER	 4	    /* u16 length, u8 flags, u8 reserved */

/* Pipelining against memcached. */
#define MCW_BATCH_KEYS	       512 /* mg requests per batch, closed by mn */
#define MCW_BATCHES_INFLIGHT   4   /* batches sent and not yet answered, per connection */
#define MCW_BATCH_REQ_BYTES    (MCW_BATCH_KEYS * MCP_REQ_MAX + 8)
#define MCW_REPLY_OVERHEAD_MAX (MCP_META_LINE_MAX + 2)
#define MCW_RING_ENTRIES       64
#define MCW_IOWQ_WORKERS_MAX   2

/* TLS (tls.c) and authentication. */
#define MCW_TLS_RECORD_BYTES	    16384      /* largest TLS plaintext record */
#define MCW_TLS_RECORD_OVERHEAD_MAX 320	       /* header, MAC/tag, padding (OpenSSL's bound) */
#define MCW_TLS_RECV_CIPHER_BYTES   (64 * KIB) /* a pipe's ciphertext receive area */
#define MCW_TLS_FDS_MAX		    4096       /* TLS sessions are found by fd below this */
#define MCW_AUTH_BYTES_MAX	    512	       /* "user password" from an --auth-file */

#define MCW_METRICS_INTERVAL_MS 5000 /* --metrics-file rewritten this often */

/* mcwarm watch. */
#define WATCH_NODES_MAX		 1024  /* old and new clusters together */
#define WATCH_SAMPLES_MAX	 121   /* per node: --window / --interval + 1 */
#define WATCH_STATS_BYTES	 16384 /* a 'stats' reply (about 4 KiB on memcached 1.6) */
#define WATCH_CONNECT_TIMEOUT_MS 1000  /* a node slower than this is down for the sample */
#define WATCH_IO_TIMEOUT_MS	 2000

/* Waits and retries. */
#define MCW_CONNECT_TIMEOUT_MS	 5000
#define MCW_IO_TIMEOUT_MS	 30000 /* no byte from a server for this long: it is gone */
#define MCW_BUSY_RETRIES_MAX	 40
#define MCW_RECV_RETRIES_MAX	 100 /* receives in a row that end EAGAIN/EINTR before giving up */
#define MCW_BUSY_BACKOFF_MIN_MS	 100
#define MCW_BUSY_BACKOFF_MAX_MS	 5000
#define MCW_PROGRESS_INTERVAL_MS 500

static_assert(MCW_BLOCK_BYTES % MCW_ALIGN_BYTES == 0, "blocks are O_DIRECT aligned");
static_assert(MCW_HEADER_BYTES % MCW_ALIGN_BYTES == 0, "header is O_DIRECT aligned");
static_assert(MCW_RECORD_HEADER_BYTES + MCP_KEY_MAX <
		  (MCW_BLOCK_BYTES - MCW_BLOCK_HEADER_BYTES) / MCW_SPAN_THRESHOLD_DIVISOR,
	      "a record header and key always fit in one block");
static_assert(MCW_KEYCHUNK_KEYS_MAX * (MCW_KEY_RECORD_HEADER + 1) < MCW_KEYCHUNK_BYTES,
	      "key count, not bytes, can end a key chunk of short keys");
static_assert(MCW_KEYCHUNK_BYTES % MCW_ALIGN_BYTES == 0, "key chunks are O_DIRECT aligned");
static_assert(MCW_TLS_RECV_CIPHER_BYTES >= MCW_TLS_RECORD_BYTES + MCW_TLS_RECORD_OVERHEAD_MAX,
	      "a whole TLS record fits the ciphertext receive area");
static_assert(MCW_BATCH_KEYS * MCW_BATCHES_INFLIGHT <= MCW_KEYCHUNK_KEYS_MAX * 4,
	      "opaques stay small");

#endif
