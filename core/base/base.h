/*
 * base.h: what every core source needs: assertions that stay on in release, logging to
 * stderr, clocks, and small helpers for sizes. No state beyond the log level.
 */
#ifndef MCW_BASE_H
#define MCW_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mcwarm's on-disk structs are little-endian and are written from memory as is"
#endif

void mcw_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* On in every build: argument checks at module boundaries, state transitions, ownership. */
#define ASSERT(c) ((c) ? (void)0 : mcw_assert_fail(#c, __FILE__, __LINE__))
/* Only in debug builds: checks inside per-byte or per-item loops. */
#ifdef MCW_DEBUG
#define ASSERT_HOT(c) ASSERT(c)
#else
#define ASSERT_HOT(c) ((void)0)
#endif

#define ARRAY_LEN(a)   (sizeof(a) / sizeof((a)[0]))
#define ROUND_UP(x, a) ((((x) + (a)-1) / (a)) * (a))
#define MIN(a, b)      ((a) < (b) ? (a) : (b))
#define MAX(a, b)      ((a) > (b) ? (a) : (b))
#define KIB	       ((size_t)1024)
#define MIB	       ((size_t)1024 * 1024)
#define GIB	       ((size_t)1024 * 1024 * 1024)
#define NS_PER_SEC     1000000000LL
#define likely(x)      __builtin_expect(!!(x), 1)
#define unlikely(x)    __builtin_expect(!!(x), 0)

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the level below which messages are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Monotonic and wall clocks. */
int64_t mono_ns(void);
int64_t wall_ns(void);
static inline int64_t wall_s(void)
{
	return wall_ns() / NS_PER_SEC;
}

/* "64M", "1.5G", "4096", "256K" (binary units) into bytes; false if malformed. */
bool size_parse(const char *s, uint64_t *out);
/* Formats bytes as "64.0 MiB" into buf. */
const char *size_format(char *buf, size_t cap, uint64_t bytes);

/* Process CPU seconds (user + system) and peak RSS in bytes, from getrusage. */
double cpu_seconds(void);
uint64_t peak_rss_bytes(void);

/* Fills buf with n random bytes (getrandom); aborts if the kernel cannot. */
void random_bytes(void *buf, size_t n);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(char *out, const uint8_t *in, size_t n);

/* Causes errno has no word for, returned negated as errno values are (-MCW_ETOOSMALL);
 * numbered past errno's range, as the kernel's own 512 and up. */
enum mcw_errno {
	MCW_ETOOSMALL = 4096, /* the destination cannot hold what is sent (it is full) */
	MCW_EBUG,	      /* a step that cannot fail did: our bug */
	/* -(MCW_ESTORE_BASE + cls): the object store failed with enum objs_class cls
	 * (objstore.h, cls > 0); mcw_exit_code maps it to objs_exit_code(cls). */
	MCW_ESTORE_BASE = 4352,
	MCW_ESTORE_LAST = MCW_ESTORE_BASE + 255,
};
/* The cause for an object store failure of class cls (enum objs_class, > 0). */
static inline int mcw_store_cause(int cls)
{
	return -(MCW_ESTORE_BASE + cls);
}
/* strerror for errno values and mcw_errno (err > 0). */
const char *mcw_strerror(int err);

/* A failure below the command layer: its cause (-errno or -MCW_E*, 0: none) and a message
 * for the operator. The first failure wins: later ones are dropped. Where a command ends,
 * mcw_exit_code (core.h) turns the cause into its exit code. */
#define MCW_FAULT_MSG_BYTES 1024
struct mcw_fault {
	int err;
	char msg[MCW_FAULT_MSG_BYTES];
};
/* Records err (< 0) and the message unless f already holds a failure. Returns err. */
int mcw_fault_set(struct mcw_fault *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int mcw_fault_vset(struct mcw_fault *f, int err, const char *fmt, va_list ap);

/* A write to the regular file fd came back `missing` bytes short: -ENOSPC when its
 * filesystem has no room for them (the next write would say so), else -EIO. */
int short_write_errno(int fd, uint64_t missing);

#endif
