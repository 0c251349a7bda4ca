/*
 * mcproto.h: memcached text and meta protocol, as mcwarm speaks it.
 *
 * Parsers work in place over a caller-owned buffer, never allocate, never read past the
 * length they are given, and return a closed enum. Encoders write into caller storage and
 * return the number of bytes written (0 when it does not fit or the input is invalid).
 * Facts behind the choices: shared/reference/memcached-protocol.md (sections 1 and 2).
 */
#ifndef MCPROTO_H
#define MCPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of the protocol (memcached 1.6). */
enum {
	MCP_KEY_MAX = 250,	   /* raw key bytes on the wire */
	MCP_KEY_B64_RAW_MAX = 186, /* raw bytes of a key that must travel as base64 (b) */
	MCP_DUMP_LINE_MAX = 4096,  /* one metadump/mgdump line, terminator included */
	MCP_META_LINE_MAX = 1024,  /* one meta reply status line, terminator included */
	MCP_STAT_LINE_MAX = 1024,  /* one STAT line */
	MCP_OPAQUE_MAX = 31,	   /* characters of an O token */
	MCP_REQ_MAX = 512,	   /* longest request line mcwarm encodes (mg/ms header) */
};

/* Result of every decoder. */
enum mcp_status {
	MCP_OK = 0,
	MCP_NEED_MORE,	  /* input ends inside a line or value: call again with more bytes */
	MCP_ERR_SYNTAX,	  /* malformed input; the connection is out of sync */
	MCP_ERR_TOO_LONG, /* a line, key or value is longer than its limit */
	MCP_ERR_RANGE,	  /* a number does not fit its field */
};

const char *mcp_status_name(enum mcp_status s);

/* ---- Keys -------------------------------------------------------------------------- */

/* True when the key cannot travel as a plain ASCII token (space, control bytes, DEL):
 * it must be sent base64-encoded with the b flag. */
bool mcp_key_needs_b64(const uint8_t *key, size_t key_len);

/* True when the key can be sent in a meta request at all (1..250 bytes as text, or
 * 1..186 bytes when it must travel as base64). */
bool mcp_key_is_sendable(const uint8_t *key, size_t key_len);

/* Standard base64 with padding. Encode returns the length written (0 if cap is too
 * small); decode returns the length written or -1 on bad input or small cap. */
size_t mcp_b64_encode(char *out, size_t cap, const uint8_t *in, size_t in_len);
long mcp_b64_decode(uint8_t *out, size_t cap, const char *in, size_t in_len);

/* Percent-decodes %XX escapes (upper or lower hex); no '+' rule. Returns the decoded
 * length or -1 on a bad escape or small cap. */
long mcp_pct_decode(uint8_t *out, size_t cap, const char *in, size_t in_len);

/* Percent-encodes every byte outside [A-Za-z0-9._~-], as metadump does. Returns the
 * length written or 0 if cap is too small (cap >= 3 * in_len always suffices). */
size_t mcp_pct_encode(char *out, size_t cap, const uint8_t *in, size_t in_len);

/* ---- Key dump stream: lru_crawler metadump / mgdump -------------------------------- */

enum mcp_dump_kind {
	MCP_DUMP_ITEM,	/* one key; fields below are valid */
	MCP_DUMP_END,	/* END (metadump) or EN (mgdump): the dump is complete */
	MCP_DUMP_SKIP,	/* a line to ignore (a leading OK) */
	MCP_DUMP_BUSY,	/* BUSY ..., ERROR locked ...: the crawler or the hash table is
			 * busy; retry later */
	MCP_DUMP_ERROR, /* ERROR..., CLIENT_ERROR..., BADCLASS, NOTSTARTED: msg holds the line */
};

struct mcp_dump_item {
	enum mcp_dump_kind kind;
	uint8_t key[MCP_KEY_MAX]; /* decoded key bytes */
	size_t key_len;
	bool key_b64;	    /* mgdump said the item has a binary key (b) */
	bool key_needs_b64; /* the key must travel base64 (mcp_key_needs_b64), known free */
	int64_t exp;	    /* absolute expiry on the server's clock; -1 never; 0 unknown */
	uint64_t cas;	    /* 0 when the line does not carry it (mgdump) */
	const char *msg;    /* error/busy line (points into the input, no terminator) */
	size_t msg_len;
};

/* Parses one line of a metadump or mgdump reply from buf[0..len). On MCP_OK, *consumed is
 * the length of the line including its terminator (\n or \r\n) and *out describes it.
 * Unknown name=value tokens are ignored. MCP_NEED_MORE when no complete line is present;
 * MCP_ERR_TOO_LONG when MCP_DUMP_LINE_MAX bytes hold no line end. */
enum mcp_status mcp_dump_line_parse(const char *buf, size_t len, size_t *consumed,
				    struct mcp_dump_item *out);

/* ---- Meta replies ----------------------------------------------------------------- */

enum mcp_reply_code {
	MCP_RC_VA,	     /* value follows */
	MCP_RC_HD,	     /* success, no value */
	MCP_RC_EN,	     /* miss */
	MCP_RC_NS,	     /* not stored */
	MCP_RC_EX,	     /* CAS mismatch */
	MCP_RC_NF,	     /* not found */
	MCP_RC_MN,	     /* reply to mn: every earlier request has been answered */
	MCP_RC_CLIENT_ERROR, /* msg holds the text */
	MCP_RC_SERVER_ERROR, /* msg holds the text */
	MCP_RC_ERROR,	     /* unknown command */
};

struct mcp_meta_reply {
	enum mcp_reply_code code;
	size_t line_len;  /* status line including \r\n */
	size_t value_len; /* VA only */
	size_t total_len; /* line + value + \r\n (VA), else line_len */
	const char *value;
	/* returned flags, in any order; has_* says whether each was present */
	bool has_client_flags, has_ttl, has_cas, has_opaque, has_key, key_b64;
	uint32_t client_flags;
	int64_t ttl; /* remaining seconds; -1 never expires */
	uint64_t cas;
	uint64_t opaque; /* mcwarm only sends numeric opaques */
	const char *key;
	size_t key_len;
	const char *msg; /* error text, no terminator */
	size_t msg_len;
};

/* Parses one meta reply from buf[0..len). Only the fields that apply are set: value for
 * VA, a flag's value when its has_* is true, msg for the error codes. value_len_max bounds the
 * value a VA may announce (MCP_ERR_TOO_LONG above it). On MCP_OK the whole reply (total_len bytes)
 * is in the buffer. On MCP_NEED_MORE with out->code == MCP_RC_VA the status line was complete and
 * out->total_len says how many bytes the whole reply needs; otherwise total_len is 0. */
enum mcp_status mcp_meta_reply_parse(const char *buf, size_t len, size_t value_len_max,
				     struct mcp_meta_reply *out);

/* ---- Requests ----------------------------------------------------------------------- */

/* "mg <key>[ b] <flags> O<opaque>\r\n": flags is a space-separated list such as
 * "k f t v u q". b64: send the key base64-encoded with b; the caller decides, and must say
 * true at least when mcp_key_needs_b64 does (debug builds check). Returns bytes written,
 * 0 if the key is too long or empty or cap (>= MCP_REQ_MAX always suffices) too small. */
size_t mcp_mg_encode(char *out, size_t cap, const uint8_t *key, size_t key_len, bool b64,
		     const char *flags, uint64_t opaque);

enum mcp_ms_mode {
	MCP_MS_ADD, /* ME: not stored if the key exists */
	MCP_MS_SET, /* MS: overwrite */
};

/* "ms <key> <len>[ b] T<ttl> F<flags> M<mode> q O<opaque>\r\n" (the value and its \r\n
 * follow, sent by the caller). ttl is the exptime to send (0 = never). b64 as for mg. */
size_t mcp_ms_encode(char *out, size_t cap, const uint8_t *key, size_t key_len, bool b64,
		     size_t value_len, int64_t ttl, uint32_t client_flags, enum mcp_ms_mode mode,
		     uint64_t opaque);

/* ---- stats / stats settings --------------------------------------------------------- */

/* True when buf holds a complete "STAT ...\r\n...END\r\n" reply (or an error line).
 * *reply_len is set to its length. */
bool mcp_stats_is_complete(const char *buf, size_t len, size_t *reply_len);

/* Finds "STAT <name> <value>\r\n" in a complete stats reply and points *val at the
 * value. Returns false if absent. */
bool mcp_stats_find(const char *buf, size_t len, const char *name, const char **val,
		    size_t *val_len);

/* Parses an unsigned or signed decimal that spans exactly s[0..n). */
bool mcp_parse_u64(const char *s, size_t n, uint64_t *out);
bool mcp_parse_i64(const char *s, size_t n, int64_t *out);

#endif
