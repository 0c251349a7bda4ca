/*
 * ratelimit.c: token buckets and the limits file (see ratelimit.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base.h"
#include "ratelimit.h"

void rate_limits_init(struct rate_limits *l, uint64_t ops_per_s, uint64_t bytes_per_s,
		      unsigned shares, const char *file)
{
	memset(l, 0, sizeof(*l));
	atomic_store(&l->ops_per_s, ops_per_s);
	atomic_store(&l->bytes_per_s, bytes_per_s);
	l->shares = shares ? shares : 1;
	l->file = file;
}

bool rate_limits_active(const struct rate_limits *l)
{
	return l->file != NULL || atomic_load(&l->ops_per_s) || atomic_load(&l->bytes_per_s);
}

static void describe(char *out, size_t cap, uint64_t v, const char *unit)
{
	char s[32];
	if (v == 0)
		snprintf(out, cap, "no %s limit", unit);
	else if (strcmp(unit, "byte") == 0)
		snprintf(out, cap, "%s/s", size_format(s, sizeof(s), v));
	else
		snprintf(out, cap, "%llu %s/s", (unsigned long long)v, unit);
}

int rate_limits_poll(struct rate_limits *l, char *msg, size_t cap)
{
	struct stat sb;
	if (l->file == NULL)
		return 0;
	if (stat(l->file, &sb) < 0) {
		if (!l->file_seen)
			return 0; /* not there yet: the command-line limits hold */
		l->file_seen = false;
		snprintf(msg, cap, "%s is gone: keeping the limits as they are", l->file);
		return -ENOENT;
	}
	if (l->file_seen && sb.st_mtim.tv_sec == l->file_mtime.tv_sec &&
	    sb.st_mtim.tv_nsec == l->file_mtime.tv_nsec)
		return 0;
	l->file_seen = true;
	l->file_mtime = sb.st_mtim;
	FILE *f = fopen(l->file, "r");
	if (f == NULL) {
		int e = errno;
		snprintf(msg, cap, "cannot read %s: %s: keeping the limits as they are", l->file,
			 strerror(e));
		return -e;
	}
	uint64_t ops = 0, bytes = 0;
	char line[256];
	unsigned lineno = 0;
	int ret = 1;
	while (ret == 1 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char key[32], val[64];
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		int n = sscanf(line, " %31[a-z-] = %63s", key, val);
		if (n <= 0 && strspn(line, " \t\r\n") == strlen(line))
			continue; /* blank */
		uint64_t v;
		if (n != 2 || !size_parse(val, &v) ||
		    (strcmp(key, "max-ops") != 0 && strcmp(key, "max-bytes") != 0)) {
			snprintf(msg, cap,
				 "%s:%u: expected 'max-ops = N' or 'max-bytes = SIZE': keeping the "
				 "limits as they are",
				 l->file, lineno);
			ret = -EINVAL;
		} else {
			*(strcmp(key, "max-ops") == 0 ? &ops : &bytes) = v;
		}
	}
	fclose(f);
	if (ret < 0)
		return ret;
	atomic_store(&l->ops_per_s, ops);
	atomic_store(&l->bytes_per_s, bytes);
	char a[48], b[48];
	describe(a, sizeof(a), ops, "ops");
	describe(b, sizeof(b), bytes, "byte");
	snprintf(msg, cap, "limits from %s: %s, %s", l->file, a, b);
	return 1;
}

void rate_bucket_init(struct rate_bucket *b, struct rate_limits *l)
{
	memset(b, 0, sizeof(*b));
	b->l = l;
}

/* Refills one bucket dimension: rate per second shared, capped at cap tokens. */
static void refill(double *tokens, uint64_t per_s, unsigned shares, int64_t dt_ns, double cap)
{
	if (per_s == 0)
		return;
	*tokens += (double)per_s / shares * (double)dt_ns / 1e9;
	if (*tokens > cap)
		*tokens = cap;
}

static int64_t wait_ns(double missing, uint64_t per_s, unsigned shares)
{
	double ns = missing * 1e9 * shares / (double)per_s;
	return ns < 1e6 ? 1000000 : (int64_t)ns; /* wake at most every millisecond */
}

int64_t rate_bucket_take(struct rate_bucket *b, uint64_t ops, uint64_t bytes, int64_t now_ns)
{
	if (b->l == NULL)
		return 0;
	uint64_t ops_rate = atomic_load(&b->l->ops_per_s);
	uint64_t byte_rate = atomic_load(&b->l->bytes_per_s);
	unsigned shares = b->l->shares;
	if (b->last_ns == 0) { /* a full batch may go at once */
		b->ops = (double)ops;
		b->bytes = (double)bytes;
	} else {
		/* a bucket holds up to two batches: a pipe woken a little late sends its batch
		 * and the next one right after, so lateness is not lost from the rate */
		int64_t dt = now_ns - b->last_ns;
		refill(&b->ops, ops_rate, shares, dt, 2.0 * (double)MAX(ops, 1));
		refill(&b->bytes, byte_rate, shares, dt, 2.0 * (double)MAX(bytes, 1));
	}
	b->last_ns = now_ns;
	if (ops_rate == 0)
		b->ops = (double)ops;
	if (byte_rate == 0)
		b->bytes = MAX(b->bytes, (double)bytes); /* no limit: no debt either */
	int64_t wait = 0;
	if (b->ops < (double)ops)
		wait = wait_ns((double)ops - b->ops, ops_rate, shares);
	if (b->bytes < (double)bytes || b->bytes < 0)
		wait =
		    MAX(wait, wait_ns(MAX((double)bytes - b->bytes, -b->bytes), byte_rate, shares));
	if (wait > 0)
		return wait;
	b->ops -= (double)ops;
	b->bytes -= (double)bytes;
	return 0;
}

void rate_bucket_charge(struct rate_bucket *b, uint64_t bytes)
{
	if (b->l != NULL && atomic_load(&b->l->bytes_per_s) != 0)
		b->bytes -= (double)bytes;
}

unsigned rate_bucket_batch(const struct rate_bucket *b, unsigned max)
{
	if (b->l == NULL)
		return max;
	uint64_t rate = atomic_load(&b->l->ops_per_s);
	if (rate == 0)
		return max;
	uint64_t n = rate / b->l->shares / RATELIMIT_BATCHES_PER_S;
	return (unsigned)MIN((uint64_t)max, MAX(n, (uint64_t)RATELIMIT_BATCH_MIN));
}

void rate_limits_poll_log(struct rate_limits *l)
{
	char msg[512];
	int ret = rate_limits_poll(l, msg, sizeof(msg));
	if (ret > 0)
		log_info("%s", msg);
	else if (ret < 0)
		log_warn("%s", msg);
}
