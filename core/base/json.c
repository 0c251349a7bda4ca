/*
 * json.c: see json.h. Nesting is bounded by the need_comma array.
 */
#include "base.h"
#include "json.h"

static void put_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void key(struct json *j, const char *k)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
	put_escaped(j->f, k);
	fputc(':', j->f);
}

void json_begin(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->need_comma[0] = false;
	fputc('{', f);
}

void json_end(struct json *j)
{
	ASSERT(j->depth == 0);
	fputs("}\n", j->f);
	fflush(j->f);
}

void json_obj(struct json *j, const char *k)
{
	ASSERT(j->depth + 1 < (int)ARRAY_LEN(j->need_comma));
	key(j, k);
	fputc('{', j->f);
	j->need_comma[++j->depth] = false;
}

void json_obj_end(struct json *j)
{
	ASSERT(j->depth > 0);
	j->depth--;
	fputc('}', j->f);
}

void json_str(struct json *j, const char *k, const char *val)
{
	key(j, k);
	put_escaped(j->f, val);
}

void json_u64(struct json *j, const char *k, uint64_t val)
{
	key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)val);
}

void json_i64(struct json *j, const char *k, int64_t val)
{
	key(j, k);
	fprintf(j->f, "%lld", (long long)val);
}

void json_f64(struct json *j, const char *k, double val)
{
	key(j, k);
	fprintf(j->f, "%.6g", val);
}

void json_bool(struct json *j, const char *k, bool val)
{
	key(j, k);
	fputs(val ? "true" : "false", j->f);
}
