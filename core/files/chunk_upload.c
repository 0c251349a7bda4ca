/*
 * chunk_upload.c: one worker's uploader: part buffers filled by the worker, uploaded by
 * the uploader's thread (chunk_upload.h says why a thread and what the objects are named).
 *
 * Invariants:
 *  1. A part buffer is the worker's (free or filling) or the thread's (buf_busy, a CU_PART
 *     job queued or running); it changes hands only through the two queues.
 *  2. The thread runs its jobs in the order given: a file's CREATE, its PARTs in order,
 *     its FINISH; so part numbers are the order of the bytes in the file.
 *  3. Queues never overflow: at most MCW_S3_PART_BUFS parts plus a CREATE and a FINISH
 *     per slot are outstanding (static_assert in mcw_limits.h, ASSERT here).
 *  4. After the first failure the thread runs no more jobs but answers them (failed), so
 *     every buffer comes back and the worker sees the failure.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "chunk_upload.h"
#include "crc.h"
#include "crcline.h"

static_assert(MCW_S3_PART_BYTES >= OBJS_PART_MIN_BYTES, "every part but the last is big enough");
static_assert(MCW_S3_FILE_PARTS_MAX <= OBJS_PARTS_MAX, "a file fits S3's part count");
static_assert(MCW_S3_SCRATCH_BYTES >= OBJS_SCRATCH_MIN_BYTES, "objstore takes the scratch");
static_assert(MCW_S3_LIST_SCRATCH_BYTES >= OBJS_SCRATCH_MIN_BYTES, "objstore takes the scratch");

static uint8_t *buf_mem(const struct chunk_upload *u, unsigned b)
{
	return u->o.part_mem + (size_t)b * MCW_S3_PART_BYTES;
}

/* ---- queues ------------------------------------------------------------------------ */

static void push(struct cu_job *q, unsigned head, unsigned *n, const struct cu_job *j)
{
	ASSERT(*n < MCW_S3_JOBS_MAX); /* invariant 3 */
	q[(head + *n) % MCW_S3_JOBS_MAX] = *j;
	(*n)++;
}

static struct cu_job pop(struct cu_job *q, unsigned *head, unsigned *n)
{
	ASSERT(*n > 0);
	struct cu_job j = q[*head];
	*head = (*head + 1) % MCW_S3_JOBS_MAX;
	(*n)--;
	return j;
}

static void hand_off(struct chunk_upload *u, const struct cu_job *j)
{
	pthread_mutex_lock(&u->mu);
	push(u->todo, u->todo_head, &u->todo_n, j);
	pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

static void answer(struct chunk_upload *u, const struct cu_job *j)
{
	uint64_t one = 1;
	pthread_mutex_lock(&u->mu);
	push(u->done, u->done_head, &u->done_n, j);
	pthread_mutex_unlock(&u->mu);
	if (write(u->efd, &one, sizeof(one)) < 0)
		log_warn("uploader %u: cannot wake its worker: %s", u->o.id, strerror(errno));
}

/* ---- the thread -------------------------------------------------------------------- */

static int failed(struct chunk_upload *u, int rc)
{
	const struct objs_error *e = objs_last_error(&u->client);
	pthread_mutex_lock(&u->mu);
	if (u->err_cls == OBJS_OK) {
		u->err_cls = e->cls == OBJS_OK ? OBJS_ERR_PROTOCOL : e->cls;
		snprintf(u->err_text, sizeof(u->err_text), "%s", e->text);
	}
	pthread_mutex_unlock(&u->mu);
	return rc;
}

static void journal_fail(struct chunk_upload *u, int rc, const char *what)
{
	pthread_mutex_lock(&u->mu);
	if (u->err_cls == OBJS_OK) {
		u->err_cls = OBJS_ERR_TOO_LARGE; /* not the store's: err_local says so */
		u->err_local = true;
		snprintf(u->err_text, sizeof(u->err_text),
			 "cannot write the upload journal (%s): %s", what, strerror(-rc));
	}
	pthread_mutex_unlock(&u->mu);
}

/* Waits until --max-bytes lets len more bytes go up (the worker's own bucket). */
static void pace(struct chunk_upload *u, size_t len)
{
	if (u->o.limits == NULL)
		return;
	int64_t wait_ns;
	while ((wait_ns = rate_bucket_take(&u->bucket, 0, len, mono_ns())) > 0) {
		struct timespec ts = { wait_ns / 1000000000, wait_ns % 1000000000 };
		nanosleep(&ts, NULL);
		atomic_fetch_add_explicit(&u->st.rate_wait_ns, (uint64_t)wait_ns,
					  memory_order_relaxed);
	}
}

static int run_create(struct chunk_upload *u, struct cu_slot *s, const char *temp_name)
{
	snprintf(s->key, sizeof(s->key), "%s.mcwarm/tmp/%s", u->o.prefix, temp_name);
	s->nparts = 0;
	int rc = objs_mpu_create(&u->client, u->o.bucket, s->key, s->upload_id);
	if (rc < 0)
		return failed(u, rc);
	s->open = true;
	rc = crcline_append(u->o.journal_fd, "upload %s %s", s->upload_id, s->key);
	if (rc < 0)
		journal_fail(u, rc, "upload");
	return rc;
}

static int run_part(struct chunk_upload *u, struct cu_slot *s, unsigned b, size_t len)
{
	ASSERT(s->open && s->nparts < MCW_S3_FILE_PARTS_MAX);
	struct objs_part *p = &s->parts[s->nparts];
	const uint8_t *mem = buf_mem(u, b);
	p->number = s->nparts + 1;
	p->crc32c = mcw_crc32c(0, mem, len);
	pace(u, len);
	int rc = objs_mpu_upload_part(&u->client, u->o.bucket, s->key, s->upload_id, p, mem, len);
	if (rc < 0)
		return failed(u, rc);
	s->nparts++;
	atomic_fetch_add(&u->st.parts, 1);
	atomic_fetch_add(&u->st.bytes, len);
	return 0;
}

static int run_finish(struct chunk_upload *u, struct cu_slot *s, const char *final_name)
{
	char final_key[OBJS_KEY_MAX_BYTES + 1];
	snprintf(final_key, sizeof(final_key), "%s%s", u->o.prefix, final_name);
	int rc =
	    objs_mpu_complete(&u->client, u->o.bucket, s->key, s->upload_id, s->parts, s->nparts);
	if (rc < 0)
		return failed(u, rc);
	s->open = false;
	rc = crcline_append(u->o.journal_fd, "done %s", s->upload_id);
	if (rc < 0) {
		journal_fail(u, rc, "done");
		return rc;
	}
	if ((rc = objs_copy(&u->client, u->o.bucket, s->key, final_key)) < 0 ||
	    (rc = objs_delete(&u->client, u->o.bucket, s->key)) < 0)
		return failed(u, rc);
	return 0;
}

static int run_job(struct chunk_upload *u, const struct cu_job *j)
{
	struct cu_slot *s = &u->slots[j->slot];
	switch (j->kind) {
	case CU_CREATE:
		return run_create(u, s, j->name);
	case CU_PART:
		return run_part(u, s, j->buf, j->len);
	case CU_FINISH:
		return run_finish(u, s, j->name);
	}
	ASSERT(!"unknown upload job");
	return -EINVAL;
}

static void discard_open(struct chunk_upload *u)
{
	for (unsigned i = 0; i < CHUNK_UPLOAD_SLOTS; i++) {
		struct cu_slot *s = &u->slots[i];
		if (!s->open)
			continue;
		if (chunk_upload_discard(&u->client, u->o.bucket, s->key, s->upload_id) == 0)
			(void)crcline_append(u->o.journal_fd, "done %s", s->upload_id);
		else
			log_warn("could not end the unfinished upload of s3://%s/%s (the next run "
				 "of the same dump ends it): %s",
				 u->o.bucket, s->key, objs_last_error(&u->client)->text);
		s->open = false;
	}
}

static void *uploader_main(void *arg)
{
	struct chunk_upload *u = arg;
	char name[16];
	snprintf(name, sizeof(name), "mcw-upload-%u", u->o.id);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&u->mu);
	for (;;) {
		while (u->todo_n == 0 && !u->stop)
			pthread_cond_wait(&u->cv, &u->mu);
		if (u->stop)
			break;
		struct cu_job j = pop(u->todo, &u->todo_head, &u->todo_n);
		bool healthy = u->err_cls == OBJS_OK;
		pthread_mutex_unlock(&u->mu);
		uint64_t retries = u->client.stats.retries;
		j.res = healthy ? run_job(u, &j) : -ECANCELED; /* invariant 4 */
		atomic_fetch_add(&u->st.retries, u->client.stats.retries - retries);
		answer(u, &j);
		pthread_mutex_lock(&u->mu);
	}
	bool discard = u->discard;
	pthread_mutex_unlock(&u->mu);
	if (discard)
		discard_open(u);
	return NULL;
}

/* ---- the worker's side --------------------------------------------------------------- */

int chunk_upload_start(struct chunk_upload *u, const struct chunk_upload_opts *o)
{
	memset(u, 0, sizeof(*u));
	u->o = *o;
	u->fill = -1;
	u->efd = eventfd(0, EFD_CLOEXEC); /* blocking: io_uring polls it, never -EAGAIN */
	if (u->efd < 0)
		return -errno;
	u->scratch = malloc(MCW_S3_SCRATCH_BYTES); /* start-up only */
	if (u->scratch == NULL)
		return -ENOMEM;
	int rc = objs_client_init(&u->client, o->cfg, u->scratch, MCW_S3_SCRATCH_BYTES);
	if (rc < 0)
		return rc;
	if (o->limits != NULL)
		rate_bucket_init(&u->bucket, o->limits);
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	rc = -pthread_create(&u->thread, NULL, uploader_main, u);
	u->started = rc == 0;
	return rc;
}

int chunk_upload_fd(const struct chunk_upload *u)
{
	return u->efd;
}

void chunk_upload_open(struct chunk_upload *u, unsigned slot, const char *temp_name)
{
	struct cu_job j = { .kind = CU_CREATE, .slot = slot };
	ASSERT(slot < CHUNK_UPLOAD_SLOTS);
	snprintf(j.name, sizeof(j.name), "%s", temp_name);
	hand_off(u, &j);
}

static void send_fill(struct chunk_upload *u)
{
	ASSERT(u->fill >= 0 && u->fill_len > 0);
	struct cu_job j = {
		.kind = CU_PART, .slot = u->fill_slot, .buf = (unsigned)u->fill, .len = u->fill_len
	};
	u->buf_busy[u->fill] = true;
	u->fill = -1;
	u->fill_len = 0;
	hand_off(u, &j);
}

size_t chunk_upload_write(struct chunk_upload *u, unsigned slot, const void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		if (u->fill < 0) {
			for (unsigned b = 0; b < MCW_S3_PART_BUFS && u->fill < 0; b++)
				if (!u->buf_busy[b])
					u->fill = (int)b;
			if (u->fill < 0)
				break; /* both on their way up */
			u->fill_slot = slot;
		}
		ASSERT(u->fill_slot == slot);
		size_t piece = MIN(n - done, (size_t)MCW_S3_PART_BYTES - u->fill_len);
		memcpy(buf_mem(u, (unsigned)u->fill) + u->fill_len, (const uint8_t *)p + done,
		       piece);
		u->fill_len += piece;
		done += piece;
		if (u->fill_len == MCW_S3_PART_BYTES)
			send_fill(u);
	}
	return done;
}

void chunk_upload_close(struct chunk_upload *u, unsigned slot, const char *final_name)
{
	if (u->fill >= 0) {
		ASSERT(u->fill_slot == slot);
		send_fill(u);
	}
	struct cu_job j = { .kind = CU_FINISH, .slot = slot };
	snprintf(j.name, sizeof(j.name), "%s", final_name);
	hand_off(u, &j);
}

unsigned chunk_upload_reap(struct chunk_upload *u, struct chunk_upload_event *ev, unsigned max)
{
	unsigned n = 0;
	pthread_mutex_lock(&u->mu);
	while (u->done_n > 0 && n < max) {
		struct cu_job j = pop(u->done, &u->done_head, &u->done_n);
		if (j.kind == CU_PART) {
			ASSERT(u->buf_busy[j.buf]); /* invariant 1 */
			u->buf_busy[j.buf] = false;
		}
		if (j.kind == CU_FINISH || j.res < 0)
			ev[n++] = (struct chunk_upload_event){ j.slot, j.res };
	}
	pthread_mutex_unlock(&u->mu);
	return n;
}

enum objs_class chunk_upload_error(struct chunk_upload *u, char *text, size_t cap, bool *local)
{
	pthread_mutex_lock(&u->mu);
	enum objs_class c = u->err_cls;
	if (local != NULL)
		*local = u->err_local;
	snprintf(text, cap, "%s", u->err_text);
	pthread_mutex_unlock(&u->mu);
	return c;
}

void chunk_upload_stop(struct chunk_upload *u, bool discard)
{
	if (u->started) {
		pthread_mutex_lock(&u->mu);
		u->stop = true;
		u->discard = discard;
		pthread_cond_signal(&u->cv);
		pthread_mutex_unlock(&u->mu);
		pthread_join(u->thread, NULL);
		pthread_mutex_destroy(&u->mu);
		pthread_cond_destroy(&u->cv);
		u->started = false;
	}
	if (u->scratch != NULL) {
		objs_client_fini(&u->client);
		free(u->scratch);
		u->scratch = NULL;
	}
	if (u->efd > 0)
		close(u->efd);
	u->efd = -1;
}

int chunk_upload_discard(struct objs_client *c, const char *bucket, const char *key,
			 const char *upload_id)
{
	int rc = objs_mpu_abort(c, bucket, key, upload_id);
	if (rc == 0 || rc == -ENOENT)
		return 0;
	if (objs_last_error(c)->cls != OBJS_ERR_UNSUPPORTED)
		return rc;
	/* no abort here: complete with one empty part, then delete what that made */
	struct objs_part p = { .number = 1, .crc32c = 0 };
	rc = objs_mpu_upload_part(c, bucket, key, upload_id, &p, "", 0);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0 || (rc = objs_mpu_complete(c, bucket, key, upload_id, &p, 1)) < 0)
		return rc;
	rc = objs_delete(c, bucket, key);
	return rc == -ENOENT ? 0 : rc;
}
