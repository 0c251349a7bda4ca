/*
 * s3_probe.c: mcw-s3-probe, a test driver of objstore/: one subcommand per operation, so
 * tests/integration/test_s3.py can run each against a real S3 API server. Configuration
 * comes from the AWS environment (objs_config_from_env); MCW_S3_RETRIES,
 * MCW_S3_BACKOFF_MS and MCW_S3_STALL_MS shorten retries for tests. Output is one line per
 * result on stdout; a failure prints "error class=... exit=... http=... code=... attempts=..:
 * text" on stderr and exits with objs_exit_code(). Statistics go to stderr at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "objstore.h"

#define SCRATCH_BYTES  (1u << 20)
#define FILE_MAX_BYTES (256u << 20)
#define PARTS_MAX      1000

static struct objs_client cli;

static int fail_report(void)
{
	const struct objs_error *e = objs_last_error(&cli);

	fprintf(stderr, "error class=%s exit=%d http=%ld code=%s attempts=%u: %s\n",
		objs_class_name(e->cls), objs_exit_code(e->cls), e->http_status, e->code,
		e->attempts, e->text);
	return objs_exit_code(e->cls) ? objs_exit_code(e->cls) : 70;
}

static char *file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = f ? malloc(FILE_MAX_BYTES) : NULL;

	if (!buf) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(74);
	}
	*len = fread(buf, 1, FILE_MAX_BYTES, f);
	fclose(f);
	return buf;
}

static int cmd_put(char **a)
{
	size_t len;
	char *buf = file_read(a[2], &len);
	int rc = objs_put(&cli, a[0], a[1], buf, len, mcw_crc32c(0, buf, len));

	free(buf);
	return rc < 0 ? fail_report() : 0;
}

/* mpu B K FILE PART_BYTES [STOP_AFTER_PARTS [BAD_CRC_PART]]: without STOP, completes. */
static int cmd_mpu(char **a, int n)
{
	static struct objs_part parts[PARTS_MAX];
	char id[OBJS_UPLOAD_ID_MAX_BYTES];
	size_t len, part_bytes = strtoull(a[3], NULL, 0);
	char *buf = file_read(a[2], &len);
	unsigned stop = n > 4 ? (unsigned)atoi(a[4]) : PARTS_MAX, bad = n > 5 ? atoi(a[5]) : 0;
	unsigned np = 0;
	int rc = objs_mpu_create(&cli, a[0], a[1], id);

	for (size_t off = 0; rc == 0 && off < len && np < stop; off += part_bytes, np++) {
		size_t pl = len - off < part_bytes ? len - off : part_bytes;
		parts[np] =
		    (struct objs_part){ .number = np + 1, .crc32c = mcw_crc32c(0, buf + off, pl) };
		if (np + 1 == bad)
			parts[np].crc32c ^= 1;
		rc = objs_mpu_upload_part(&cli, a[0], a[1], id, &parts[np], buf + off, pl);
		if (rc == 0)
			printf("part %u %zu %08x %s\n", np + 1, pl, parts[np].crc32c,
			       parts[np].etag);
	}
	free(buf);
	printf("upload %s\n", id);
	if (rc == 0 && n <= 4)
		rc = objs_mpu_complete(&cli, a[0], a[1], id, parts, np);
	return rc < 0 ? fail_report() : 0;
}

static int cmd_get(char **a)
{
	size_t len = strtoull(a[3], NULL, 0);
	char *buf = malloc(len ? len : 1);
	int64_t got = objs_get_range(&cli, a[0], a[1], strtoull(a[2], NULL, 0), buf, len);
	FILE *f = fopen(a[4], "wb");

	if (got >= 0 && f)
		fwrite(buf, 1, (size_t)got, f);
	if (f)
		fclose(f);
	free(buf);
	if (got < 0)
		return fail_report();
	printf("got %" PRId64 "\n", got);
	return 0;
}

static int print_key(void *arg, const char *key, uint64_t size, const char *etag)
{
	(void)arg;
	printf("key %s %" PRIu64 " %s\n", key, size, etag);
	return 0;
}

static int print_upload(void *arg, const char *key, const char *id)
{
	(void)arg;
	printf("upload %s %s\n", key, id);
	return 0;
}

static int cmd_simple(const char *cmd, char **a, int n)
{
	int rc = -EINVAL;
	uint64_t size;
	char etag[OBJS_ETAG_MAX_BYTES];

	if (strcmp(cmd, "head") == 0 && n == 2 &&
	    (rc = objs_head(&cli, a[0], a[1], &size, etag)) == 0)
		printf("size %" PRIu64 " etag %s\n", size, etag);
	else if (strcmp(cmd, "delete") == 0 && n == 2)
		rc = objs_delete(&cli, a[0], a[1]);
	else if (strcmp(cmd, "list") == 0 && n >= 2)
		rc = objs_list(&cli, a[0], a[1], n > 2 ? (unsigned)atoi(a[2]) : 0, print_key, NULL);
	else if (strcmp(cmd, "uploads") == 0 && n == 2)
		rc = objs_mpu_list(&cli, a[0], a[1], print_upload, NULL);
	else if (strcmp(cmd, "abort") == 0 && n == 3)
		rc = objs_mpu_abort(&cli, a[0], a[1], a[2]);
	else if (strcmp(cmd, "delete-prefix") == 0 && n == 2) {
		int64_t d = objs_delete_prefix(&cli, a[0], a[1]);
		rc = d < 0 ? (int)d : 0;
		if (d >= 0)
			printf("deleted %" PRId64 "\n", d);
	} else if (rc == -EINVAL && n >= 0) {
		fprintf(stderr, "mcw-s3-probe %s: unknown command or wrong arguments\n", cmd);
		return 64;
	}
	return rc < 0 ? fail_report() : 0;
}

static void config_tune(struct objs_config *cfg)
{
	const char *v;

	if ((v = getenv("MCW_S3_RETRIES")))
		cfg->retries = (unsigned)atoi(v);
	if ((v = getenv("MCW_S3_BACKOFF_MS")))
		cfg->backoff_min_ms = (unsigned)atoi(v),
		cfg->backoff_max_ms = 20 * cfg->backoff_min_ms;
	if ((v = getenv("MCW_S3_STALL_MS")))
		cfg->stall_timeout_ms = cfg->request_timeout_ms = (unsigned)atoi(v);
}

static int cmd_local(const char *cmd, char **a, int n, const struct objs_config *cfg)
{
	if (strcmp(cmd, "url") == 0 && n == 1) {
		struct objs_url u;
		struct objs_error e;
		if (objs_url_parse(a[0], &u, &e) < 0) {
			fprintf(stderr, "error class=%s exit=%d: %s\n", objs_class_name(e.cls),
				objs_exit_code(e.cls), e.text);
			return objs_exit_code(e.cls);
		}
		printf("bucket %s prefix %s\n", u.bucket, u.prefix);
		return 0;
	}
	printf("region %s\nendpoint %s\npath_style %d\nsource %s\nkey_id %s\ntoken %s\n",
	       cfg->region, cfg->endpoint, cfg->path_style, cfg->creds.source, cfg->creds.key_id,
	       cfg->creds.token);
	return 0;
}

int main(int argc, char **argv)
{
	static char scratch[SCRATCH_BYTES];
	struct objs_config cfg;
	struct objs_error err;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: mcw-s3-probe url|config|put|mpu|get|head|list|uploads|"
				"abort|delete|delete-prefix ARGS...\n");
		return 64;
	}
	if (strcmp(argv[1], "url") == 0)
		return cmd_local(argv[1], argv + 2, argc - 2, NULL);
	if (objs_config_from_env(&cfg, &err) < 0) {
		fprintf(stderr, "error class=%s exit=%d: %s\n", objs_class_name(err.cls),
			objs_exit_code(err.cls), err.text);
		return objs_exit_code(err.cls);
	}
	if (strcmp(argv[1], "config") == 0)
		return cmd_local(argv[1], argv + 2, argc - 2, &cfg);
	config_tune(&cfg);
	if (objs_client_init(&cli, &cfg, scratch, sizeof(scratch)) < 0)
		return fail_report();
	if (strcmp(argv[1], "put") == 0 && argc == 5)
		rc = cmd_put(argv + 2);
	else if (strcmp(argv[1], "mpu") == 0 && argc >= 6)
		rc = cmd_mpu(argv + 2, argc - 2);
	else if (strcmp(argv[1], "get") == 0 && argc == 7)
		rc = cmd_get(argv + 2);
	else
		rc = cmd_simple(argv[1], argv + 2, argc - 2);
	fprintf(stderr, "stats requests=%" PRIu64 " retries=%" PRIu64 "\n", cli.stats.requests,
		cli.stats.retries);
	objs_client_fini(&cli);
	return rc;
}
