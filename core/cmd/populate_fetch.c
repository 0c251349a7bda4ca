/*
 * populate_fetch.c: a populate worker's fetch thread for --from s3://. The worker's ring
 * loop drives the ms pipe and must never block in libcurl, so every object read (a
 * chunk's header and footer, a read window) is handed to this thread, which makes the
 * blocking ranged GETs straight into the worker's buffers and wakes the ring through an
 * eventfd whose read the worker keeps queued in its ring.
 *
 * The hand-off is bounded by POP_S3_FETCHES_MAX slots (the two read windows and one
 * header/footer fetch); a slot goes FREE -> QUEUED (worker) -> DONE (this thread) -> FREE
 * (worker, after taking the answer). A buffer named in a QUEUED or DONE slot belongs to
 * this thread until the worker takes the answer. The thread owns one S3 client (its own
 * connection); nothing here allocates after start-up beyond libcurl's own state.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base.h"
#include "populate_private.h"

/* An object's size (HEAD), header page and footer page: res and res2 are the bytes of
 * each (0 for a part the object is too short to hold), or -errno. */
static void fetch_ends(struct pop_fetch *f, struct pop_fetch_req *r)
{
	r->size = 0;
	r->res = objs_head(&f->cl, f->bucket, r->key, &r->size, NULL);
	if (r->res == 0 && r->size >= MCW_HEADER_BYTES)
		r->res = objs_get_range(&f->cl, f->bucket, r->key, 0, r->buf, MCW_HEADER_BYTES);
	if (r->res >= 0 && r->size >= 2 * MCW_ALIGN_BYTES)
		r->res2 = objs_get_range(&f->cl, f->bucket, r->key, r->size - MCW_FOOTER_BYTES,
					 r->foot, MCW_FOOTER_BYTES);
}

/* One request: an object's ends, or one byte range. */
static void fetch_one(struct pop_fetch *f, struct pop_fetch_req *r)
{
	const struct objs_error *e = objs_last_error(&f->cl);
	r->res2 = 0;
	if (r->kind == POP_FETCH_ENDS)
		fetch_ends(f, r);
	else
		r->res = objs_get_range(&f->cl, f->bucket, r->key, r->off, r->buf, r->len);
	if (r->res < 0 || r->res2 < 0) {
		r->cls = e->cls;
		snprintf(r->err, sizeof(r->err), "%s", e->text);
		if (r->res >= 0)
			r->res = r->res2;
	} else {
		r->cls = OBJS_OK;
		r->err[0] = '\0';
	}
}

/* The oldest request in state st (any free one for FREE), or NULL; under f->mu. */
static struct pop_fetch_req *oldest(struct pop_fetch *f, enum pop_fetch_state st)
{
	struct pop_fetch_req *r = NULL;
	for (unsigned i = 0; i < POP_S3_FETCHES_MAX; i++)
		if (f->req[i].state == st && (r == NULL || f->req[i].seq < r->seq))
			r = &f->req[i];
	return r;
}

static void *fetch_main(void *arg)
{
	struct pop_fetch *f = arg;
	pthread_mutex_lock(&f->mu);
	while (!f->stop) { /* on a stop, requests not yet made are dropped */
		struct pop_fetch_req *r = oldest(f, POP_FETCH_QUEUED);
		if (r == NULL) {
			pthread_cond_wait(&f->cv, &f->mu);
			continue;
		}
		r->state = POP_FETCH_RUNNING;
		pthread_mutex_unlock(&f->mu);
		fetch_one(f, r);
		pthread_mutex_lock(&f->mu);
		r->state = POP_FETCH_DONE;
		uint64_t one = 1;
		/* an eventfd write of 1 only fails when the counter would overflow */
		ssize_t n = write(f->efd, &one, sizeof(one));
		ASSERT(n == (ssize_t)sizeof(one));
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int pop_fetch_start(struct pop_fetch *f, const struct objs_config *cfg, const char *bucket,
		    void *scratch, size_t scratch_bytes)
{
	memset(f, 0, sizeof(*f));
	f->bucket = bucket;
	f->efd = eventfd(0, EFD_CLOEXEC);
	if (f->efd < 0)
		return -errno;
	int ret = objs_client_init(&f->cl, cfg, scratch, scratch_bytes);
	if (ret < 0) {
		close(f->efd);
		f->efd = -1;
		return ret;
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	ret = -pthread_create(&f->thread, NULL, fetch_main, f);
	if (ret < 0) {
		objs_client_fini(&f->cl);
		close(f->efd);
		f->efd = -1;
		return ret;
	}
	f->running = true;
	return 0;
}

struct pop_fetch_req *pop_fetch_find(struct pop_fetch *f, enum pop_fetch_state st)
{
	ASSERT(st == POP_FETCH_FREE || st == POP_FETCH_DONE);
	pthread_mutex_lock(&f->mu);
	struct pop_fetch_req *r = oldest(f, st);
	pthread_mutex_unlock(&f->mu);
	return r;
}

void pop_fetch_move(struct pop_fetch *f, struct pop_fetch_req *r, enum pop_fetch_state to)
{
	pthread_mutex_lock(&f->mu);
	ASSERT(to == POP_FETCH_QUEUED ? r->state == POP_FETCH_FREE
				      : to == POP_FETCH_FREE && r->state == POP_FETCH_DONE);
	r->state = to;
	if (to == POP_FETCH_QUEUED) {
		r->seq = ++f->seq;
		pthread_cond_signal(&f->cv);
	}
	pthread_mutex_unlock(&f->mu);
}

void pop_fetch_stop(struct pop_fetch *f)
{
	if (!f->running)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	/* a request under way ends within the client's own timeouts and retries */
	pthread_join(f->thread, NULL);
	f->running = false;
	objs_client_fini(&f->cl);
	close(f->efd);
	f->efd = -1;
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
}
