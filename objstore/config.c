/*
 * config.c: the AWS configuration, read the way the AWS CLI and SDKs read it: credentials
 * from the environment, then the shared credentials file and its profile, then the EC2
 * instance role through IMDSv2 (a token PUT, then GETs carrying it); the region and the
 * endpoint from the environment. A failure names every source tried and the fix. The
 * role's credentials expire: http.c fetches them again OBJS_IMDS_REFRESH_S before.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "objstore_private.h"

#define IMDS_DEFAULT	    "http://169.254.169.254"
#define IMDS_TOKEN_TTL_S    21600
#define IMDS_BODY_MAX_BYTES 8192
#define INI_LINE_MAX_BYTES  (OBJS_TOKEN_MAX_BYTES + 64)

static bool copy_env(const char *name, char *out, size_t cap)
{
	const char *v = getenv(name);

	if (!v || !*v || strlen(v) >= cap)
		return false;
	memcpy(out, v, strlen(v) + 1);
	return true;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	char *p = s;

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	memmove(s, p, strlen(p) + 1);
}

/* One "name = value" line of the wanted section into cr. */
static void ini_take(struct objs_creds *cr, char *line)
{
	char *eq = strchr(line, '=');

	if (!eq)
		return;
	*eq = 0;
	char *name = line, *val = eq + 1;
	trim(name);
	trim(val);
	if (strcmp(name, "aws_access_key_id") == 0)
		snprintf(cr->key_id, sizeof(cr->key_id), "%s", val);
	else if (strcmp(name, "aws_secret_access_key") == 0)
		snprintf(cr->secret, sizeof(cr->secret), "%s", val);
	else if (strcmp(name, "aws_session_token") == 0)
		snprintf(cr->token, sizeof(cr->token), "%s", val);
}

/* 0 found, -ENOENT no file, -ESRCH no such profile, -EINVAL profile without keys. */
static int creds_from_file(const char *path, const char *profile, struct objs_creds *cr)
{
	char line[INI_LINE_MAX_BYTES];
	bool in = false, seen = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		trim(line);
		if (line[0] == '[') {
			char *e = strchr(line, ']');
			if (e)
				*e = 0;
			trim(line + 1);
			in = strcmp(line + 1, profile) == 0;
			seen |= in;
		} else if (in && line[0] != '#' && line[0] != ';') {
			ini_take(cr, line);
		}
	}
	fclose(f);
	if (!seen)
		return -ESRCH;
	return cr->key_id[0] && cr->secret[0] ? 0 : -EINVAL;
}

struct imds_body {
	char buf[IMDS_BODY_MAX_BYTES];
	size_t len;
};

static size_t imds_write(char *d, size_t sz, size_t n, void *arg)
{
	struct imds_body *b = arg;
	size_t len = sz * n;

	if (len >= sizeof(b->buf) - b->len)
		return 0;
	memcpy(b->buf + b->len, d, len);
	b->len += len;
	b->buf[b->len] = 0;
	return len;
}

/* One IMDS call; 0 and the body, or -EHOSTUNREACH/-EACCES with why. */
static int imds_call(CURL *e, const char *url, const char *method, const char *hdr,
		     struct imds_body *b, char *why, size_t why_cap)
{
	struct curl_slist *h = curl_slist_append(NULL, hdr);
	long st = 0;

	b->len = 0;
	b->buf[0] = 0;
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)OBJS_IMDS_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, imds_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	CURLcode rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		snprintf(why, why_cap, "%s %s: %s", method, url, curl_easy_strerror(rc));
		return -EHOSTUNREACH;
	}
	if (st != 200) {
		snprintf(why, why_cap, "%s %s: HTTP %ld", method, url, st);
		return -EACCES;
	}
	return 0;
}

/* "Name" : "value" of a flat JSON object into out. */
static bool json_str(const char *j, const char *name, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\"", name);
	const char *p = strstr(j, pat);

	if (!p || !(p = strchr(p + strlen(pat), '"')))
		return false;
	const char *e = strchr(++p, '"');
	if (!e || (size_t)(e - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = 0;
	return true;
}

static int64_t iso8601_unix(const char *s)
{
	struct tm tm = { 0 };

	if (!strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static int imds_creds(CURL *e, const char *ep, const char *tok_hdr, struct objs_creds *cr,
		      char *why, size_t cap)
{
	struct imds_body b; /* on the stack: clients of several threads may renew at once */
	char url[OBJS_ENDPOINT_MAX_BYTES + 128], role[256], exp[64];
	int rc;

	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", ep);
	if ((rc = imds_call(e, url, "GET", tok_hdr, &b, why, cap)) < 0)
		return rc;
	snprintf(role, sizeof(role), "%.*s", (int)strcspn(b.buf, "\r\n"), b.buf);
	if (!role[0]) {
		snprintf(why, cap, "%s: the instance has no role attached", url);
		return -EACCES;
	}
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", ep, role);
	if ((rc = imds_call(e, url, "GET", tok_hdr, &b, why, cap)) < 0)
		return rc;
	if (!json_str(b.buf, "AccessKeyId", cr->key_id, sizeof(cr->key_id)) ||
	    !json_str(b.buf, "SecretAccessKey", cr->secret, sizeof(cr->secret)) ||
	    !json_str(b.buf, "Token", cr->token, sizeof(cr->token))) {
		snprintf(why, cap, "%s: no AccessKeyId/SecretAccessKey/Token in the answer", url);
		return -EACCES;
	}
	cr->expires_unix = json_str(b.buf, "Expiration", exp, sizeof(exp)) ? iso8601_unix(exp) : 0;
	snprintf(cr->source, sizeof(cr->source), "instance role %s (IMDSv2 %s)", role, ep);
	return 0;
}

int objs_imds_fetch(const char *ep, struct objs_creds *cr, char *region, size_t region_cap,
		    struct objs_error *err)
{
	struct imds_body b;
	char url[OBJS_ENDPOINT_MAX_BYTES + 64], hdr[IMDS_BODY_MAX_BYTES + 64], why[512];
	CURL *e = curl_easy_init();
	int rc;

	if (!e)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s/latest/api/token", ep);
	snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token-ttl-seconds: %d", IMDS_TOKEN_TTL_S);
	rc = imds_call(e, url, "PUT", hdr, &b, why, sizeof(why));
	if (rc == 0) {
		snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %.*s",
			 (int)strcspn(b.buf, "\r\n"), b.buf);
		rc = imds_creds(e, ep, hdr, cr, why, sizeof(why));
	}
	if (rc == 0 && region && !region[0]) {
		snprintf(url, sizeof(url), "%s/latest/meta-data/placement/region", ep);
		if (imds_call(e, url, "GET", hdr, &b, why, sizeof(why)) == 0)
			snprintf(region, region_cap, "%.*s", (int)strcspn(b.buf, "\r\n"), b.buf);
	}
	curl_easy_cleanup(e);
	if (rc < 0)
		objs_error_set(err, OBJS_ERR_CONFIG, "instance role (IMDSv2): %s", why);
	return rc;
}

static int creds_from_env(struct objs_creds *cr, struct objs_error *err)
{
	bool id = copy_env("AWS_ACCESS_KEY_ID", cr->key_id, sizeof(cr->key_id));
	bool sec = copy_env("AWS_SECRET_ACCESS_KEY", cr->secret, sizeof(cr->secret));

	if (id != sec) {
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: only %s is set (set "
			       "both, or neither to use the credentials file or instance role)",
			       id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
		return -EINVAL;
	}
	if (!id)
		return -ENOENT;
	copy_env("AWS_SESSION_TOKEN", cr->token, sizeof(cr->token));
	snprintf(cr->source, sizeof(cr->source), "environment (AWS_ACCESS_KEY_ID)");
	return 0;
}

/* The file and its profile; -ENOENT to go on to the next source, tried[] says why. */
static int creds_from_shared(struct objs_creds *cr, char *tried, size_t cap, struct objs_error *err)
{
	char path[512];
	const char *home = getenv("HOME"), *profile = getenv("AWS_PROFILE");
	bool named = profile && *profile;

	if (!copy_env("AWS_SHARED_CREDENTIALS_FILE", path, sizeof(path)))
		snprintf(path, sizeof(path), "%s/.aws/credentials", home ? home : "");
	if (!named)
		profile = "default";
	int rc = creds_from_file(path, profile, cr);
	if (rc == 0) {
		snprintf(cr->source, sizeof(cr->source), "%s [%s]", path, profile);
		return 0;
	}
	if (rc == -EINVAL || (rc == -ESRCH && named) || (rc == -ENOENT && named)) {
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "profile [%s] of %s: %s (fix the file, or AWS_PROFILE)", profile,
			       path,
			       rc == -EINVAL  ? "no aws_access_key_id or aws_secret_access_key"
			       : rc == -ESRCH ? "no such profile"
					      : "no such file");
		return -EINVAL;
	}
	snprintf(tried, cap, "%s: %s", path,
		 rc == -ENOENT ? "no such file" : "no [default] profile");
	memset(cr, 0, sizeof(*cr));
	return -ENOENT;
}

static int creds_find(struct objs_config *c, struct objs_error *err)
{
	char tried_file[640], ep[OBJS_ENDPOINT_MAX_BYTES];
	int rc;

	if ((rc = creds_from_env(&c->creds, err)) != -ENOENT)
		return rc;
	if ((rc = creds_from_shared(&c->creds, tried_file, sizeof(tried_file), err)) != -ENOENT)
		return rc;
	const char *off = getenv("AWS_EC2_METADATA_DISABLED");
	if (off && strcasecmp(off, "true") == 0) {
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "no S3 credentials: AWS_ACCESS_KEY_ID not set; %s; instance role: "
			       "AWS_EC2_METADATA_DISABLED=true (fix: export AWS_ACCESS_KEY_ID and "
			       "AWS_SECRET_ACCESS_KEY, or write a [default] profile)",
			       tried_file);
		return -ENOENT;
	}
	if (!copy_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, sizeof(ep)))
		snprintf(ep, sizeof(ep), "%s", IMDS_DEFAULT);
	ep[strcspn(ep, "\n")] = 0;
	if (ep[0] && ep[strlen(ep) - 1] == '/')
		ep[strlen(ep) - 1] = 0;
	if (objs_imds_fetch(ep, &c->creds, c->region, sizeof(c->region), err) < 0) {
		char why[sizeof(err->text)];
		snprintf(why, sizeof(why), "%s", err->text);
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "no S3 credentials: AWS_ACCESS_KEY_ID not set; %s; %s (fix: export "
			       "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, write a [default] "
			       "profile, or attach an instance role)",
			       tried_file, why);
		return -ENOENT;
	}
	snprintf(c->imds_endpoint, sizeof(c->imds_endpoint), "%s", ep);
	return 0;
}

int objs_config_from_env(struct objs_config *c, struct objs_error *err)
{
	memset(c, 0, sizeof(*c));
	memset(err, 0, sizeof(*err));
	if (!copy_env("AWS_ENDPOINT_URL_S3", c->endpoint, sizeof(c->endpoint)))
		copy_env("AWS_ENDPOINT_URL", c->endpoint, sizeof(c->endpoint));
	size_t el = strlen(c->endpoint);
	if (el && c->endpoint[el - 1] == '/')
		c->endpoint[el - 1] = 0;
	c->path_style = c->endpoint[0] != 0;
	if (!copy_env("AWS_REGION", c->region, sizeof(c->region)))
		copy_env("AWS_DEFAULT_REGION", c->region, sizeof(c->region));
	int rc = creds_find(c, err);
	if (rc < 0)
		return rc;
	if (!c->region[0] && c->endpoint[0])
		snprintf(c->region, sizeof(c->region), "us-east-1");
	if (!c->region[0]) {
		objs_error_set(err, OBJS_ERR_CONFIG,
			       "no AWS region: AWS_REGION and AWS_DEFAULT_REGION are unset and the "
			       "instance metadata gave none (fix: export AWS_REGION=<the bucket's "
			       "region>)");
		return -EINVAL;
	}
	return 0;
}
