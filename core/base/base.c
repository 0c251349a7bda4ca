/*
 * base.c: assertions, logging, clocks and size helpers shared by all of core.
 * Logging writes whole lines with one call so lines from threads do not interleave.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>

#include "base.h"
#include "core.h"

static enum log_level log_level_max = LOG_INFO;

void mcw_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "mcwarm: internal error: assertion failed: %s (%s:%d)\n", expr, file, line);
	abort();
}

void log_set_level(enum log_level level)
{
	log_level_max = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	char line[2048];
	va_list ap;

	if (level > log_level_max)
		return;
	int n = snprintf(line, sizeof(line), "mcwarm: %s", prefix[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	if (len + 1 < sizeof(line)) {
		line[len++] = '\n';
		line[len] = '\0';
	}
	fputs(line, stderr);
}

int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

bool mcw_size_parse(const char *s, uint64_t *out)
{
	return size_parse(s, out);
}

bool size_parse(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0 || !isfinite(v))
		return false;
	double mult = 1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = (double)KIB;
		end++;
		break;
	case 'm':
	case 'M':
		mult = (double)MIB;
		end++;
		break;
	case 'g':
	case 'G':
		mult = (double)GIB;
		end++;
		break;
	default:
		return false;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end != '\0' || v * mult > 1e18)
		return false;
	*out = (uint64_t)(v * mult);
	return true;
}

const char *size_format(char *buf, size_t cap, uint64_t bytes)
{
	if (bytes >= GIB)
		snprintf(buf, cap, "%.2f GiB", (double)bytes / (double)GIB);
	else if (bytes >= MIB)
		snprintf(buf, cap, "%.1f MiB", (double)bytes / (double)MIB);
	else if (bytes >= KIB)
		snprintf(buf, cap, "%.1f KiB", (double)bytes / (double)KIB);
	else
		snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
	return buf;
}

double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a process started by a
 * large parent would report the parent's size. */
uint64_t peak_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kib = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmHWM: %llu kB", &kib) == 1)
			break;
	}
	if (f != NULL)
		fclose(f);
	return (uint64_t)kib * 1024;
}

void random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		ASSERT(r > 0);
		p += r;
		n -= (size_t)r;
	}
}

void hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int short_write_errno(int fd, uint64_t missing)
{
	struct statvfs sv;
	if (fstatvfs(fd, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < missing + MIB)
		return -ENOSPC;
	return -EIO;
}

const char *mcw_strerror(int err)
{
	switch (err) {
	case MCW_ETOOSMALL:
		return "destination too small";
	case MCW_EBUG:
		return "internal error";
	default:
		if (err > MCW_ESTORE_BASE && err <= MCW_ESTORE_LAST)
			return "object store failure";
		return strerror(err);
	}
}

int mcw_fault_vset(struct mcw_fault *f, int err, const char *fmt, va_list ap)
{
	ASSERT(err < 0);
	if (f->err == 0) {
		vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
		f->err = err;
	}
	return err;
}

int mcw_fault_set(struct mcw_fault *f, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mcw_fault_vset(f, err, fmt, ap);
	va_end(ap);
	return err;
}
