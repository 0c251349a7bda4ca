/*
 * ebs_private.h: the backend table and helpers shared by the ebs sources.
 */
#ifndef EBS_PRIVATE_H
#define EBS_PRIVATE_H

#include <stdarg.h>
#include <stdio.h>

#include "ebs.h"

struct ebs_ops {
	int (*find)(struct ebs_volume *v, char *err, size_t cap); /* NULL: nothing to find */
	int (*create)(struct ebs_volume *v, char *err, size_t cap);
	int (*attach)(const struct ebs_volume *v, enum ebs_access a, struct ebs_attachment *at,
		      char *err, size_t cap);
	int (*detach)(const struct ebs_volume *v, struct ebs_attachment *at, char *err, size_t cap);
	int (*destroy)(struct ebs_volume *v, char *err, size_t cap);
	int (*describe)(const struct ebs_volume *v, struct ebs_status *st, char *err, size_t cap);
	int (*check)(struct ebs_volume *v, bool rw, bool ro, char *err, size_t cap); /* NULL: ok */
};

extern const struct ebs_ops ebs_dir_ops, ebs_loop_ops, ebs_ec2_ops;

/* Formats err and returns ret (a negative errno). */
int ebs_error(char *err, size_t cap, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs argv (no shell), waits at most timeout_ms; stdout (trimmed) into out, stderr into
 * errout. Returns the exit status, 127 if it could not run, -ETIME on timeout. */
int ebs_run(char *const argv[], char *out, size_t out_cap, char *errout, size_t err_cap,
	    int timeout_ms);

#endif
