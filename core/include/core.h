/*
 * core.h: the public face of mcwarm's engine: the commands and their exit codes.
 * Everything else in core/ is private to it (tests include the private headers on
 * purpose; nothing else may).
 */
#ifndef MCW_CORE_H
#define MCW_CORE_H

/* Exit codes, by class of failure (sysexits.h values, so scripts can tell them apart). */
enum mcw_exit {
	MCW_EXIT_OK = 0,
	MCW_EXIT_INCOMPLETE = 1,   /* ran fine but the job is not finished (populate --once) */
	MCW_EXIT_MISMATCH = 2,	   /* verify: warm ratio below --min-ratio */
	MCW_EXIT_TOO_SMALL = 3,	   /* the destination cannot hold what is sent: refused before
				    * sending, or it evicted items (or refused them) meanwhile */
	MCW_EXIT_ROLLBACK = 4,	   /* watch: the new cluster's hit ratio stayed too low */
	MCW_EXIT_USAGE = 64,	   /* bad command line */
	MCW_EXIT_DATA = 65,	   /* corrupt input (chunk files) */
	MCW_EXIT_UNAVAILABLE = 69, /* server unreachable, unsuitable, or gone mid-run */
	MCW_EXIT_SOFTWARE = 70,	   /* internal error (a bug: please report it) */
	MCW_EXIT_IO = 74,	   /* local I/O error: disk full, permissions, ... */
	MCW_EXIT_TEMPFAIL = 75,	   /* try again later: crawler busy past the retry limit */
	MCW_EXIT_PROTOCOL = 76,	   /* the server broke the protocol */
	MCW_EXIT_REFUSED = 77,	   /* TLS certificate or authentication refused (credentials) */
};

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The text that --help prints for exit codes. */
extern const char mcw_exit_codes_help[];

/* The one mapping from a failure's cause (0, -errno or -MCW_E*: base.h) to the exit code a
 * command ends with; below the command layer nothing chooses exit codes. Network errors:
 * MCW_EXIT_UNAVAILABLE; -EPROTO: PROTOCOL; -EBADMSG (a corrupt file): DATA; -EINVAL:
 * USAGE; -EKEYREJECTED (credentials refused): REFUSED; -EBUSY (the crawler stayed busy):
 * TEMPFAIL; -MCW_ETOOSMALL: TOO_SMALL; local file errors: IO; anything else (and
 * -MCW_EBUG) is our bug: SOFTWARE. */
int mcw_exit_code(int err);

int mcw_cmd_dump(int argc, char **argv);
int mcw_cmd_inspect(int argc, char **argv);
int mcw_cmd_populate(int argc, char **argv);
int mcw_cmd_verify(int argc, char **argv);
int mcw_cmd_stream(int argc, char **argv);
int mcw_cmd_watch(int argc, char **argv);

/* One record of a chunk file, value assembled (for tools; the data path streams pieces). */
struct mcw_record {
	const uint8_t *key;
	uint16_t key_len;
	bool binary_key;
	uint32_t client_flags;
	int64_t expires_at_ms; /* mover unix milliseconds, 0 = never */
	const uint8_t *value;
	uint32_t value_len;
};

/* Reads a chunk file and calls fn for every record of every intact block (fn returns 0 to
 * go on). Returns 0 when the whole file is intact, -EBADMSG when anything is damaged or
 * missing (err says what, first problem only; good records were still delivered), or
 * -errno. */
int mcw_chunk_file_scan(const char *path, int (*fn)(void *arg, const struct mcw_record *r),
			void *arg, char *err, size_t err_cap);

/* CRC-32C (Castagnoli), the checksum of every mcwarm file format; chainable:
 * mcw_crc32c(mcw_crc32c(0, a, n), b, m) is the crc of a followed by b. */
uint32_t mcw_crc32c(uint32_t crc, const void *buf, size_t len);

/* Whether a stored checksum is the computed one. Fuzz builds (FUZZING_BUILD_MODE_UNSAFE_
 * FOR_PRODUCTION, tests/fuzz, never a product) accept any, so that mutated inputs reach
 * the structure checks behind every checksum of every format. */
static inline bool mcw_crc_matches(uint32_t stored, uint32_t computed)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	(void)stored;
	(void)computed;
	return true;
#else
	return stored == computed;
#endif
}

/* "64M", "8G", "4096": bytes (K, M, G, T are powers of 1024). false if malformed. */
bool mcw_size_parse(const char *s, uint64_t *out);

/* The TLS and authentication options of a copy's servers as mcwarm's own words: "--tls",
 * "--tls-ca", FILE, ..., "--auth-file", FILE for the source, the same with --dest- for the
 * destination (mcwarm-ctl passes its own on). n 0: both plain. */
#define MCW_SECURE_WORDS_MAX 24
struct mcw_secure_words {
	int n;
	char *const *words;
};

/* What a memcached holds now (stats curr_items and bytes), for sizing a volume; sec: the
 * source side's words. 0 or -errno with err explaining it. */
int mcw_server_usage(const char *hostport, const struct mcw_secure_words *sec, uint64_t *items,
		     uint64_t *bytes, char *err, size_t cap);

/* What a copy from source to destination may accept (populate, stream, mcwarm-ctl warm). */
struct mcw_copy_allow {
	bool shrink;	    /* a destination too small for everything: it evicts the rest */
	bool smaller_items; /* a smaller item_size_max: larger items are skipped */
	bool share;	    /* dest gets a share of the source (key or ring filters): its
			     * memory is not compared with all that the source holds */
};

/* The checks before a warm-up from source into dest, made on both live servers: not the
 * same server, both suitable (meta commands; key dumps on the source), dest's
 * item_size_max not below the source's and its memory able to hold what the source holds
 * (unless allow says otherwise), each over TLS and authenticated as sec says. resumed: dest already
 * holds part of this copy (a continued warm-up), so what it holds is not counted as others'. 0, or
 * the exit code with err naming the cause and the fix. */
int mcw_copy_preflight(const char *source, const char *dest, const struct mcw_secure_words *sec,
		       const struct mcw_copy_allow *allow, bool resumed, char *err, size_t cap);

/* `mcwarm COMMAND ...` */
int mcw_main(int argc, char **argv);

#endif
