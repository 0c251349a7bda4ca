/*
 * mcw_limits.h: every limit and default of mcwarm in one place, with the relations
 * between them checked at compile time. Units are in the names.
 */
#ifndef MCW_LIMITS_H
#define MCW_LIMITS_H

#include <assert.h>
#include <limits.h>
#include <stdint.h>

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
#define MCW_BATCH_KEYS		     512 /* mg requests per batch, closed by mn */
#define MCW_BATCHES_INFLIGHT	     4	 /* batches sent and not yet answered, per connection */
#define MCW_BATCH_REQ_BYTES	     (MCW_BATCH_KEYS * MCP_REQ_MAX + 8)
#define MCW_REPLY_OVERHEAD_MAX	     (MCP_META_LINE_MAX + 2)
#define MCW_RING_ENTRIES	     64
#define MCW_IOWQ_WORKERS_MAX	     2
#define MCW_SERVER_ERRORS_LOGGED_MAX 5	 /* SERVER_ERROR answers logged per pipe (mg, ms) */
#define KR_PREFETCH_KEYS	     32	 /* keys whose dedupe slots the key reader prefetches */
#define DUMP_COUNTS_FLUSH_ITEMS	     256 /* items a dump worker counts before adding them up */

/* TLS (tls.c) and authentication. */
#define MCW_TLS_RECORD_BYTES	    16384      /* largest TLS plaintext record */
#define MCW_TLS_RECORD_OVERHEAD_MAX 320	       /* header, MAC/tag, padding (OpenSSL's bound) */
#define MCW_TLS_RECV_CIPHER_BYTES   (64 * KIB) /* a pipe's ciphertext receive area */
#define MCW_TLS_FDS_MAX		    4096       /* TLS sessions are found by fd below this */
#define MCW_AUTH_BYTES_MAX	    512	       /* "user password" from an --auth-file */
/* Largest ciphertext of plain_bytes sealed at once: every TLS record adds at most
 * MCW_TLS_RECORD_OVERHEAD_MAX bytes to at most MCW_TLS_RECORD_BYTES. */
#define MCW_TLS_SEAL_BYTES(plain_bytes)                                                            \
	((plain_bytes) + ((plain_bytes) / MCW_TLS_RECORD_BYTES + 2) * MCW_TLS_RECORD_OVERHEAD_MAX)
/* What a pipe needs from its owner's budget when its connection is TLS (tls.h): a sealed
 * batch of requests, then the ciphertext receive area. */
#define MCW_TLS_PIPE_BYTES                                                                         \
	ROUND_UP(MCW_TLS_SEAL_BYTES(MCW_BATCH_REQ_BYTES) + MCW_TLS_RECV_CIPHER_BYTES, 64 * KIB)

#define MCW_METRICS_INTERVAL_MS 5000 /* --metrics-file rewritten this often */
#define BUDGET_REGIONS_MAX	256  /* named slices of the one budget mapping */

/* Rate limits (ratelimit.h). Under an ops limit, batches shrink so that about
 * RATELIMIT_BATCHES_PER_S go per second per pipe: a server works through a batch in one
 * go, and a live client's request that arrives meanwhile waits for the whole batch. */
#define RATELIMIT_RECHECK_MS	500 /* the limits file is looked at this often */
#define RATELIMIT_BATCHES_PER_S 1000
#define RATELIMIT_BATCH_MIN	8

/* Populate's journal and the dump's checkpoint (journal.h, checkpoint.h). */
#define JOURNAL_FILES_MAX    65536 /* chunk files one state directory can track (4 TiB at 64 MiB) */
#define JOURNAL_PARTIALS_MAX 1024  /* damaged files tracked block by block */
#define JOURNAL_BLOCKS_MAX   4096  /* blocks per chunk file (1 GiB of 256 KiB blocks) */
#define JOURNAL_LINE_MAX     (JOURNAL_BLOCKS_MAX / 4 + 256)
#define CHECKPOINT_JOBS_MAX  (1u << 20)		   /* key chunks of one dump: 17 G keys */
#define CRCLINE_MAX	     1344		   /* longest crc-sealed text line, text and seal */
#define CHUNK_VALUE_MAX	     (1024u * 1024 * 1024) /* memcached's own ceiling (-I 1024m) */
#define CW_WRITEV_IOV_MAX    1024		   /* iovecs of one chunk writer writev */
#define MANIFEST_TEXT_MAX    (64 * MIB) /* a MANIFEST or DONE read back: about 600,000 files */
#define MANIFEST_LINE_MAX    160 /* "chunk NAME RECORDS BYTES CRC": a name under 64, 3 numbers */

/* Key filters and rings (keyfilter.h, hashring.h). */
#define HASHRING_NODES_MAX	     1024
#define HASHRING_NAME_MAX	     128 /* bytes of a node's name, host or hostname, with NUL */
#define HASHRING_WEIGHT_MAX	     1000000
#define HASHRING_POINTS_PER_NODE_MAX 4096 /* for opts.points */
#define KEYFILTER_PREFIXES_MAX	     32
#define KEYFILTER_KEEP_MAX	     64
#define KEYFILTER_GROUPS_MAX	     64 /* new owners one resize dump can feed */
#define HASHRING_NODE_STRING_MAX     (2 * HASHRING_NAME_MAX + 32) /* "hostname/host:port-index" */
#define HASHRING_ENTRY_SHOW_BYTES    64 /* bytes of a bad node list entry quoted in errors */

/* The destination's capacity (capacity.h). */
#define CAP_SLAB_CLASSES_MAX  64
#define CAP_WATCH_INTERVAL_MS 2000 /* between reads of the destination's evictions */
#define CAP_WATCH_TIMEOUT_MS  2000 /* a read that takes longer is skipped, not fatal */
#define CAP_OOM_ERRORS_MAX                                                                         \
	64 /* "out of memory" answers of an evicting server before we stop; a server that does     \
	    * not evict stops us at one */

/* populate (populate_private.h, pop_walk.h) and the ms pipe (mspipe.h). */
#define POP_QUEUE_MAX	      65536 /* chunk files queued in one pass */
#define POP_BATCH_RECORDS     512   /* ms requests per batch, closed by mn */
#define POP_BATCHES_INFLIGHT  4
#define POP_BATCH_PIECES      2048 /* value pieces of one batch */
#define POP_REC_PIECES_MAX    2048 /* value pieces of one record (pop_walk.h) */
#define POP_BATCH_HDR_BYTES   (POP_BATCH_RECORDS * MCP_REQ_MAX)
#define POP_RECV_BYTES	      (64 * 1024)
#define POP_RECONNECT_MIN_MS  100
#define POP_RECONNECT_MAX_MS  5000
#define POP_INTERVAL_MS	      500  /* between --follow passes */
#define POP_DEST_RESTARTS_MAX 10   /* destination restarts survived in one run */
#define POP_FILE_WARNINGS_MAX 8	   /* damaged blocks of one file listed; the rest counted */
#define POP_SHARDS_MAX	      4096 /* --shard I/N: N at most */
#define POP_BACKLOG_WRITE_MS  2000 /* STATE/backlog rewritten at most this often in a pass */
/* populate --from s3:// (populate_fetch.c, populate_s3.c) */
#define POP_S3_FETCHES_MAX                                                                         \
	3				/* a worker's fetches handed to its fetch thread: its two  \
					 * read windows and one header/footer fetch */
#define POP_S3_LIST_PAGE_KEYS	   1000 /* keys per ListObjectsV2 page */
#define POP_S3_LIST_SCRATCH_BYTES  (2 * 1024 * 1024) /* one page's answer */
#define POP_S3_FETCH_SCRATCH_BYTES (64 * 1024)	     /* a fetch thread's: error answers only */
#define MSPIPE_BATCHES_MAX	   4		     /* ms batches in flight per pipe */
#define MSPIPE_SENDMSG_IOV	   1024		     /* iovecs of one sendmsg */
#define MSPIPE_TLS_STAGE_BYTES	   (256 * KIB)	     /* TLS: plaintext sealed at once (one burst) */
#define MSPIPE_RECV_MIN		   (MCP_META_LINE_MAX * 2) /* a pipe's receive area at least */

/* mcwarm verify. */
#define VERIFY_MISMATCHES_MAX 100 /* --mismatches: differing keys listed in the report */

/* dump --out s3:// (chunk_upload.h). */
#define MCW_S3_PART_BYTES (5 * MIB) /* S3's smallest part (OBJS_PART_MIN_BYTES) */
#define MCW_S3_PART_BUFS  2	    /* per worker: one filling, one on its way up */
#define MCW_S3_MEMORY_DEFAULT_BYTES                                                                \
	(128 * MIB)		    /* --memory's default: parts take 10 MiB a worker              \
				     */
#define MCW_S3_JOBS_MAX		  8 /* hand-offs queued to one uploader thread */
#define MCW_S3_FILE_PARTS_MAX	  ((MCW_CHUNK_BYTES_MAX + 2 * MCW_BLOCK_BYTES) / MCW_S3_PART_BYTES + 2)
#define MCW_S3_SCRATCH_BYTES	  (64 * KIB)  /* an uploader's request bodies and answers */
#define MCW_S3_LIST_SCRATCH_BYTES (256 * KIB) /* the main thread's: listing pages */
#define MCW_S3_LIST_PAGE_KEYS	  150	      /* keys per listing page: fits the scratch above */
static_assert(MCW_S3_PART_BYTES % MCW_ALIGN_BYTES == 0, "parts are whole pages");
static_assert(MCW_S3_JOBS_MAX >= MCW_S3_PART_BUFS + 2 * 2,
	      "every part buffer plus a create and a finish per file slot fit the hand-off");
static_assert(MCW_S3_FILE_PARTS_MAX * 200 < MCW_S3_SCRATCH_BYTES,
	      "the complete body of the largest file fits the scratch buffer");
static_assert(MCW_S3_LIST_PAGE_KEYS * (1024 + 512) < MCW_S3_LIST_SCRATCH_BYTES,
	      "a listing page of the longest keys (1024 bytes) and their XML fits");

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
/* The workers' nice value unless --nice says otherwise. On a source that serves clients
 * the dump competes with memcached's own threads for the CPU: at nice 10 they come first.
 * Measured on 2 vCPUs, 2,000,000 items: a dump alone 3.01 s and 0.83 CPU-s at nice 10
 * against 3.65 s and 0.97 at 0 (medians of 4: a worker that runs after the server finds
 * more replies waiting), a stream 1.19 CPU-s against 1.29 in the same time; a client's
 * p50 under an unthrottled dump 0.62x. The key reader keeps the caller's priority: a
 * metadump reader that falls behind stalls memcached 1.6.18's crawler, which holds an
 * item lock while it writes. */
#define MCW_WORKER_NICE_DEFAULT 10
/* A worker's wait gathers completions (ur_submit_wait_gather, kernels 6.12+) for up to
 * MCW_GATHER_US, or until MCW_GATHER_CQES are ready: the receive posted next then takes
 * what arrived meanwhile in one go, and a worker wakes about once per MCW_GATHER_US
 * instead of once per segment (memcached answers about 20 mg per write). Measured on
 * 2,000,000 items: 100 us woke a dump's workers 29,000 times for 1.34 CPU-s (median of
 * 5), 400 us 1.09, 1000 us 1.02, wall time no worse. 500 us stays well under the time a
 * server takes for the MCW_BATCHES_INFLIGHT batches in flight (2,048 mg, 3 ms or more),
 * so the server never waits for the worker. */
#define MCW_GATHER_US	500
#define MCW_GATHER_CQES 32
/* The key reader's receive (net_recv_gather): a read shorter than MCW_KEYS_GATHER_BYTES
 * waits MCW_KEYS_GATHER_US and takes what arrived meanwhile. memcached 1.6.42 writes an
 * mgdump in short pieces (about 300 bytes a receive, 43,000 receives and as many wake-ups
 * for 2,000,000 keys); gathered, a wake-up brings a millisecond's keys. A metadump arrives
 * in large reads and never waits. */
#define MCW_KEYS_GATHER_US    1000
#define MCW_KEYS_GATHER_BYTES (16 * KIB)

static_assert(MCW_GATHER_CQES <= MCW_RING_ENTRIES, "a gathering wait can be satisfied");
static_assert(MCW_GATHER_US * 10 <= MCW_IO_TIMEOUT_MS * 1000, "gathering is not waiting");
static_assert(MCW_KEYS_GATHER_US * 10 <= MCW_IO_TIMEOUT_MS * 1000, "gathering is not waiting");
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
static_assert((uint64_t)JOURNAL_BLOCKS_MAX * MCW_BLOCK_BYTES >= MCW_CHUNK_BYTES_MAX,
	      "the journal's block bitmap covers the largest chunk file");
static_assert((uint64_t)CHECKPOINT_JOBS_MAX * MCW_KEYCHUNK_KEYS_MAX >= (1ull << 34),
	      "the checkpoint tracks the key chunks of 17 G keys");
static_assert(CHUNK_VALUE_MAX >= 1024u * MIB, "any value memcached can hold (-I 1024m)");
static_assert(KEYFILTER_GROUPS_MAX <= HASHRING_NODES_MAX, "a group per new node at most");
static_assert(CAP_WATCH_TIMEOUT_MS <= CAP_WATCH_INTERVAL_MS,
	      "an evictions read ends before the next is due");
static_assert(MCW_CONNECT_TIMEOUT_MS < MCW_IO_TIMEOUT_MS,
	      "a connect gives up before a silent server is declared gone");
static_assert((uint64_t)MCW_BUSY_RETRIES_MAX * MCW_BUSY_BACKOFF_MAX_MS <= 3600 * 1000,
	      "a busy crawler is waited for an hour at most");
static_assert(MCW_BUSY_BACKOFF_MIN_MS <= MCW_BUSY_BACKOFF_MAX_MS, "backoff grows");
static_assert(WATCH_CONNECT_TIMEOUT_MS + WATCH_IO_TIMEOUT_MS <= 1000 * 5,
	      "a sample of a dead node ends within a few seconds");
static_assert(MCW_METRICS_INTERVAL_MS >= MCW_PROGRESS_INTERVAL_MS,
	      "metrics are written from the progress loop: not more often than it wakes");
static_assert(RATELIMIT_BATCH_MIN <= MCW_BATCH_KEYS, "a shrunk batch is still a batch");
static_assert(POP_REC_PIECES_MAX <= POP_BATCH_PIECES, "a whole record fits in an empty batch");
static_assert(POP_REC_PIECES_MAX >= MCW_WORKER_BUF_MAX_BYTES / MCW_BLOCK_BYTES + 2,
	      "a record as large as a read window of our own blocks fits");
static_assert((uint64_t)POP_REC_PIECES_MAX * (MCW_BLOCK_BYTES - MCW_BLOCK_HEADER_BYTES) >=
		  511ull * MIB,
	      "pieces per record carry a value of nearly 512 MiB in our blocks");
static_assert(POP_BATCHES_INFLIGHT <= MSPIPE_BATCHES_MAX && MCW_STREAM_SLOTS <= MSPIPE_BATCHES_MAX,
	      "populate's and stream's batches fit the pipe");
static_assert(POP_RECONNECT_MIN_MS <= POP_RECONNECT_MAX_MS, "reconnect backoff grows");
/* The kernel refuses a writev or sendmsg of more than IOV_MAX (UIO_MAXIOV) iovecs with
 * EINVAL: the writer and the ms pipe cut their sends at these. */
static_assert(CW_WRITEV_IOV_MAX <= IOV_MAX && MSPIPE_SENDMSG_IOV <= IOV_MAX,
	      "a writev or sendmsg never carries more iovecs than the kernel takes");
/* Both owners of an ms pipe lend it a receive area of at least its minimum. */
static_assert(POP_RECV_BYTES >= MSPIPE_RECV_MIN && MCW_STREAM_RECV_BYTES >= MSPIPE_RECV_MIN,
	      "populate's and stream's receive areas hold two reply lines");
/* A populator tracks up to JOURNAL_FILES_MAX files; the MANIFEST listing them is read whole. */
static_assert((uint64_t)JOURNAL_FILES_MAX * MANIFEST_LINE_MAX <= MANIFEST_TEXT_MAX,
	      "a MANIFEST of every file a populator can track can be read back");
/* The TLS areas are cut from the budget in whole pages like every other slice. */
static_assert(MCW_TLS_PIPE_BYTES % MCW_ALIGN_BYTES == 0, "a TLS pipe's area keeps alignment");
static_assert(MCW_TLS_SEAL_BYTES(MCW_TLS_RECORD_BYTES) >=
		  MCW_TLS_RECORD_BYTES + MCW_TLS_RECORD_OVERHEAD_MAX,
	      "a sealed record has room for its overhead");
static_assert(POP_S3_FETCHES_MAX >= 3, "two read windows and a header/footer fetch at once");
static_assert(POP_S3_LIST_SCRATCH_BYTES >= POP_S3_LIST_PAGE_KEYS * 2048,
	      "a listing page fits: keys of up to 1024 bytes, their entry's XML around them");
static_assert((uint64_t)POP_DEST_RESTARTS_MAX * POP_RECONNECT_MAX_MS < MCW_IO_TIMEOUT_MS * 10ull,
	      "surviving destination restarts is bounded in time");

#endif
