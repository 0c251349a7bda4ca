/*
 * json.h: a minimal streaming JSON writer for summaries (--json). Flat objects with
 * nested objects; strings are escaped; no allocation.
 */
#ifndef MCW_JSON_H
#define MCW_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	bool need_comma[8];
};

void json_begin(struct json *j, FILE *f);
void json_end(struct json *j); /* closes the top object and ends the line */
void json_obj(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t val);
void json_i64(struct json *j, const char *key, int64_t val);
void json_f64(struct json *j, const char *key, double val);
void json_bool(struct json *j, const char *key, bool val);

#endif
