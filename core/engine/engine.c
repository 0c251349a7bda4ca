/*
 * engine.c: the run of the engine that dump, verify and stream share (engine.h): options
 * every command takes, the probe of the source, the memory plan (every worker's layout,
 * cut once), the key spool, the threads, progress and metrics.
 *
 * Owns: the struct engine of a run and its budget. Does not touch data (the threads do)
 * and does not know the command: the sink's operations do the command's part.
 * Order of a run (engine_run):
 *   probe source -> sink prepare (its checks, directory) -> plan budget -> identity
 *   -> sink start -> connect -> threads -> progress until every thread ended -> the first
 *   failure's cause (-errno), which the command turns into its exit code (mcw_exit_code)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "engine.h"
#include "mcw_limits.h"

#define SPOOL_DIR ".mcwarm"

/* ---- options ----------------------------------------------------------------------- */

int crawl_option(const char *cmd, const char *arg, enum key_dump_kind *out)
{
	if (strcmp(arg, "hash") != 0 && strcmp(arg, "all") != 0)
		return cli_usage_error(cmd, "--crawl: use hash or all");
	*out = strcmp(arg, "all") == 0 ? KEYS_ALL : KEYS_HASH;
	return 0;
}

int engine_shared_option(const char *cmd, int ch, const char *arg, struct engine_opts *o)
{
	int ret = keyfilter_option(cmd, ch, arg, &o->filter);
	return ret != 1 ? ret : cli_common_option(cmd, ch, arg, 4 * MIB, &o->co);
}

/* ---- memory plan ------------------------------------------------------------------- */

static size_t key_off_bytes(void)
{
	return ROUND_UP(MCW_KEYCHUNK_KEYS_MAX * sizeof(uint32_t), MCW_ALIGN_BYTES);
}

static size_t sink_min_bytes(const struct engine_sink_need *need)
{
	size_t sum = 0;
	for (unsigned i = 0; i < need->nparts; i++)
		sum += need->part[i].min_bytes;
	return sum;
}

/* Cuts both buffers of a worker of per_buf bytes each (per_buf holds every minimum). */
static void layout_cut(const struct engine_sink_need *need, size_t per_buf, struct engine_layout *l)
{
	size_t slots = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES;
	l->net_bytes = l->disk_bytes = per_buf;
	l->send_slots = (struct engine_slice){ 0, slots };
	l->recv = (struct engine_slice){ slots, per_buf - slots };
	l->key_off = (struct engine_slice){ 0, key_off_bytes() };
	l->key_in = (struct engine_slice){ key_off_bytes(), MCW_KEYCHUNK_BYTES };
	size_t off = l->key_in.off + l->key_in.bytes;
	size_t extra = per_buf - off - sink_min_bytes(need);
	unsigned ngrow = 0;
	for (unsigned i = 0; i < need->nparts; i++)
		ngrow += need->part[i].grow ? 1 : 0;
	size_t share = ngrow ? extra / ngrow / MCW_ALIGN_BYTES * MCW_ALIGN_BYTES : 0;
	l->nsink = need->nparts;
	for (unsigned i = 0; i < need->nparts; i++) {
		size_t bytes = need->part[i].min_bytes + (need->part[i].grow ? share : 0);
		l->sink[i] = (struct engine_slice){ off, bytes };
		off += bytes;
	}
	/* a last part that grows takes what rounding left */
	if (need->nparts > 0 && need->part[need->nparts - 1].grow)
		l->sink[need->nparts - 1].bytes += per_buf - off;
}

int engine_plan_compute(const struct engine_plan_in *in, struct engine_plan *p, char *err,
			size_t cap)
{
	size_t reply_max = (size_t)in->item_size_max + MCW_REPLY_OVERHEAD_MAX;
	size_t net_min = MCW_BATCHES_INFLIGHT * MCW_BATCH_REQ_BYTES +
			 ROUND_UP(reply_max, 64 * KIB) + (in->tls ? MCW_TLS_PIPE_BYTES : 0);
	size_t keyin = key_off_bytes() + MCW_KEYCHUNK_BYTES;
	size_t disk_min = keyin + sink_min_bytes(&in->sink);
	size_t buf_min = ROUND_UP(MAX(net_min, disk_min), 64 * KIB);
	unsigned threads = in->threads;
	/* receive and two write slots (one group builds right in them); with several groups,
	 * a chunk being built per group */
	size_t group_bytes = in->groups > 1 ? MCW_GROUP_KEYCHUNK_BYTES : 0;
	size_t kr = 3 * MCW_KEYCHUNK_BYTES + in->groups * group_bytes;
	size_t fixed = kr + ROUND_UP(in->filter_bytes, MCW_ALIGN_BYTES) +
		       (in->dedupe ? MCW_DEDUPE_MIN_BYTES : 0);
	char s1[32], s2[32], s3[32];

	ASSERT(in->sink.nparts <= ENGINE_SINK_PARTS_MAX);
	memset(p, 0, sizeof(*p));
	uint64_t budget_bytes = in->budget_bytes;
	size_t per_buf = budget_bytes > fixed ? (size_t)(budget_bytes - fixed) / (2 * threads) : 0;
	/* more than MCW_WORKER_BUF_MAX_BYTES does not go faster, but a buffer always holds the
	 * largest item (memcached -I goes to 1024m) */
	size_t buf_cap = MAX((size_t)MCW_WORKER_BUF_MAX_BYTES, buf_min);
	per_buf = MIN(per_buf, buf_cap) / (64 * KIB) * (64 * KIB);
	if (per_buf < buf_min) {
		uint64_t need = fixed + 2ull * threads * buf_min;
		char parts[160] = "";
		for (unsigned i = 0, n = 0; i < in->sink.nparts; i++) {
			char sz[32];
			n += (unsigned)snprintf(
			    parts + n, n < sizeof(parts) ? sizeof(parts) - n : 0, "%s%s %s",
			    i ? ", " : " (of which ", in->sink.part[i].name,
			    size_format(sz, sizeof(sz), in->sink.part[i].min_bytes));
			if (i + 1 == in->sink.nparts && n + 2 < sizeof(parts))
				strcat(parts, ")");
		}
		snprintf(
		    err, cap,
		    "memory budget %s is too small for %u worker(s) with item_size_max %s%s: "
		    "each worker needs 2 x %s%s; use --memory %lluM or more, or fewer --threads",
		    size_format(s1, sizeof(s1), budget_bytes), threads,
		    size_format(s2, sizeof(s2), in->item_size_max),
		    in->filter_bytes ? " and the key filter's rings" : "",
		    size_format(s3, sizeof(s3), buf_min), parts,
		    (unsigned long long)((need + MIB - 1) / MIB));
		return -ENOMEM;
	}
	layout_cut(&in->sink, per_buf, &p->worker);
	p->kr_recv_bytes = MCW_KEYCHUNK_BYTES;
	p->kr_group_bytes = group_bytes;
	size_t filter = ROUND_UP(in->filter_bytes, MCW_ALIGN_BYTES);
	if (in->dedupe) {
		p->dedupe_bytes = (size_t)budget_bytes - kr - filter - 2 * threads * per_buf;
		p->dedupe_bytes = p->dedupe_bytes / MCW_ALIGN_BYTES * MCW_ALIGN_BYTES;
	}
	p->total_bytes = kr + filter + p->dedupe_bytes + 2 * threads * per_buf;
	ASSERT(p->total_bytes <= budget_bytes);
	return 0;
}

/* A worker takes its slices of its two buffers. */
static void worker_slices(struct engine_worker *w, const struct engine_layout *l)
{
	w->key_off = (uint32_t *)(w->disk_buf + l->key_off.off);
	w->key_in = w->disk_buf + l->key_in.off;
	for (unsigned i = 0; i < l->nsink; i++) {
		w->sink_part[i] = w->disk_buf + l->sink[i].off;
		w->sink_part_bytes[i] = l->sink[i].bytes;
	}
}

static void take_worker_buffers(struct engine *e)
{
	static char owners[MCW_THREADS_MAX][24];
	const struct engine_layout *l = &e->plan.worker;
	long ncpu = MAX(sysconf(_SC_NPROCESSORS_ONLN), 1L);
	for (unsigned i = 0; i < e->o.co.threads; i++) {
		struct engine_worker *w = &e->workers[i];
		snprintf(owners[i], sizeof(owners[i]), "worker %u", i);
		w->cpu = (int)(i % (unsigned)ncpu);
		int node = budget_numa_node_of_cpu(w->cpu);
		w->net_buf = budget_take(&e->budget, l->net_bytes, owners[i], "network", node);
		w->disk_buf = budget_take(&e->budget, l->disk_bytes, owners[i], "disk", node);
		worker_slices(w, l);
	}
}

static void take_key_reader_buffers(struct engine *e, uint8_t **rings, uint8_t **dd)
{
	const struct engine_plan *p = &e->plan;
	e->kr_recv = budget_take(&e->budget, p->kr_recv_bytes, "key reader", "receive", -1);
	e->kr_recv_bytes = p->kr_recv_bytes;
	e->kr_stage[0] = budget_take(&e->budget, MCW_KEYCHUNK_BYTES, "key reader", "chunk A", -1);
	e->kr_stage[1] = budget_take(&e->budget, MCW_KEYCHUNK_BYTES, "key reader", "chunk B", -1);
	e->kr_group_bytes = p->kr_group_bytes;
	if (e->kf.ngroups > 1) {
		uint8_t *groups = budget_take(&e->budget, e->kf.ngroups * p->kr_group_bytes,
					      "key reader", "group chunks", -1);
		for (unsigned g = 0; g < e->kf.ngroups; g++)
			e->kr_group[g] = groups + g * p->kr_group_bytes;
	}
	*rings = e->filter_bytes
		     ? budget_take(&e->budget, e->filter_bytes, "key reader", "ring", -1)
		     : NULL;
	*dd = p->dedupe_bytes ? budget_take(&e->budget, p->dedupe_bytes, "key reader", "dedupe", -1)
			      : NULL;
}

static void print_budget(const struct engine *e, const struct engine_sink_need *need)
{
	char parts[160] = "";
	size_t n = 0;
	for (unsigned i = 0; i < need->nparts && n < sizeof(parts); i++)
		n += (size_t)snprintf(parts + n, sizeof(parts) - n, " + %s", need->part[i].name);
	budget_print(&e->budget, stderr);
	char dd[80] = "no dedupe table: the hash walk lists each key once";
	if (e->dedupe_on)
		snprintf(dd, sizeof(dd), "dedupe table holds %llu keys",
			 (unsigned long long)dedupe_capacity(&e->dedupe));
	fprintf(stderr, "  (%s; network: send slots + receive; disk: key input%s)\n", dd, parts);
}

/*
 * Can the key walk list a key twice? `lru_crawler metadump|mgdump hash` walks memcached's
 * hash table with its iterator, which holds the table's maintenance lock for the whole
 * walk (no expansion moves items meanwhile) and each bucket's lock while in it: every
 * item is listed at most once. The LRU walk (--crawl all) moves with the LRUs and can list
 * a key twice; a resumed listing must skip the keys its finished jobs hold. Only those
 * two check every key against the dedupe table (the profile of a hash-walk dump put 15%
 * of its CPU in the table's probes and the zeroing of its pages).
 */
bool engine_needs_dedupe(const struct engine *e)
{
	return e->o.crawl == KEYS_ALL || e->resuming;
}

static int budget_setup(struct engine *e)
{
	char err[512];
	struct engine_plan_in in = {
		.budget_bytes = e->o.co.memory_bytes,
		.threads = e->o.co.threads,
		.item_size_max = e->item_size_max,
		.groups = e->kf.ngroups,
		.filter_bytes = e->filter_bytes,
		.tls = e->o.source.sec && e->o.source.sec->tls,
		.dedupe = engine_needs_dedupe(e),
	};
	e->sink->need(e, e->item_size_max, &in.sink);
	int ret = engine_plan_compute(&in, &e->plan, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	ret = budget_map(&e->budget, e->o.co.memory_bytes);
	if (ret < 0) {
		log_error("cannot reserve the memory budget: %s", strerror(-ret));
		return -MCW_EBUG; /* --memory was checked: the address space should have it */
	}
	uint8_t *rings, *dd;
	take_worker_buffers(e);
	take_key_reader_buffers(e, &rings, &dd);
	budget_commit(&e->budget);
	e->dedupe_on = in.dedupe;
	if (e->dedupe_on)
		dedupe_init(&e->dedupe, dd, e->plan.dedupe_bytes);
	if (keyfilter_build(&e->kf, rings, e->filter_bytes, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	if (!e->o.co.quiet)
		print_budget(e, &in.sink);
	return 0;
}

/* ---- source and spool ----------------------------------------------------------------- */

int engine_probe(struct engine *e, const struct hostport *hp, struct server_info *si,
		 bool needs_dumps)
{
	char err[512];
	int fd = net_connect(hp, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
	if (fd < 0) {
		log_error("%s", err);
		return net_connect_cause(fd);
	}
	net_set_recv_timeout(fd, e->o.co.io_timeout_ms);
	int ret = server_probe(fd, hp->text, si, err, sizeof(err));
	if (ret < 0) {
		log_error("%s", err);
		net_close(fd);
		return net_connect_cause(ret);
	}
	const char *why = server_unsuitable(si, needs_dumps);
	if (why != NULL) {
		log_error("%s (memcached %s) %s", hp->text, si->version, why);
		net_close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

int engine_probe_dest(struct engine *e, const struct hostport *hp, struct server_info *si)
{
	int fd = engine_probe(e, hp, si, false);
	if (fd < 0)
		return fd;
	net_close(fd); /* the workers open their own */
	e->item_size_max = MAX(e->src.item_size_max, si->item_size_max);
	e->target = hp->text;
	return 0;
}

int engine_connect(const struct hostport *hp, int *fd)
{
	char err[512];
	*fd = net_connect(hp, MCW_CONNECT_TIMEOUT_MS, err, sizeof(err));
	if (*fd < 0) {
		log_error("%s", err);
		return net_connect_cause(*fd);
	}
	return 0;
}

int engine_make_spool(struct engine *e, bool resuming)
{
	const char *dir = e->o.dir;
	if (strlen(dir) + sizeof("/" SPOOL_DIR) > sizeof(e->spool_path)) {
		log_error("the output directory's path is too long: %s", dir);
		return -EINVAL;
	}
	snprintf(e->spool_path, sizeof(e->spool_path), "%.4000s/" SPOOL_DIR, dir);
	if (e->dir_fd < 0 ||
	    (mkdirat(e->dir_fd, SPOOL_DIR, 0755) < 0 && !(resuming && errno == EEXIST))) {
		int ret = -errno; /* of mkdirat, or of the open that left dir_fd < 0 */
		log_error("cannot prepare %s: %s", e->spool_path, strerror(-ret));
		return ret;
	}
	e->spool_fd = openat(e->dir_fd, SPOOL_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return e->spool_fd < 0 ? -errno : 0;
}

void engine_remove_spool(struct engine *e)
{
	char name[32];
	checkpoint_close(&e->ckpt);
	unlinkat(e->spool_fd, CHECKPOINT_NAME, 0);
	for (uint32_t seq = 0; seq < e->chunks_ready; seq++) {
		keychunk_name(name, seq);
		unlinkat(e->spool_fd, name, 0);
	}
	if (unlinkat(e->dir_fd, SPOOL_DIR, AT_REMOVEDIR) < 0)
		log_warn("could not remove %s: %s", e->spool_path, strerror(errno));
}

int engine_make_work_dir(struct engine *e)
{
	static char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.4000s/mcwarm-%s-XXXXXX", e->o.dir, e->sink->name);
	if (mkdtemp(dir) == NULL) {
		int ret = -errno; /* before the log line, which may change errno */
		log_error("cannot create a work directory under %s: %s (set --work)", e->o.dir,
			  strerror(-ret));
		return ret;
	}
	e->o.dir = dir;
	e->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return engine_make_spool(e, false);
}

void engine_remove_work_dir(struct engine *e)
{
	if (e->spool_fd < 0)
		return;
	engine_remove_spool(e);
	if (rmdir(e->o.dir) < 0)
		log_warn("could not remove %s: %s", e->o.dir, strerror(errno));
}

/* ---- running ------------------------------------------------------------------------ */

static void identity_init(struct engine *e)
{
	if (e->resuming) { /* the files kept and those to come belong to one run */
		for (unsigned i = 0; i < sizeof(e->id.dump_id); i++) {
			unsigned v;
			sscanf(e->ckpt.dump_id_hex + 2 * i, "%2x", &v);
			e->id.dump_id[i] = (uint8_t)v;
		}
	} else {
		random_bytes(e->id.dump_id, sizeof(e->id.dump_id));
	}
	hex_encode(e->dump_id_hex, e->id.dump_id, sizeof(e->id.dump_id));
	e->id.dump_started_unix_ns = wall_ns();
	e->id.source_time_s = e->src.time_s;
	e->id.source_started_s = e->src.time_s - e->src.uptime_s;
	e->id.source_pid = e->src.pid;
	snprintf(e->id.source_addr, sizeof(e->id.source_addr), "%.63s", e->o.source.text);
	snprintf(e->id.source_version, sizeof(e->id.source_version), "%s", e->src.version);
}

static int connect_workers(struct engine *e)
{
	for (unsigned i = 0; i < e->o.co.threads; i++) {
		struct engine_worker *w = &e->workers[i];
		w->id = i;
		w->e = e;
		int ret = engine_connect(&e->o.source, &w->fd);
		if (ret == 0 && e->sink->worker_open)
			ret = e->sink->worker_open(e, w);
		if (ret != 0)
			return ret;
	}
	return 0;
}

static int start_threads(struct engine *e)
{
	int ret = connect_workers(e);
	if (ret != 0)
		return ret;
	e->start_mono_ns = mono_ns();
	bool list = !e->keys_done; /* a resumed run whose listing had ended lists nothing */
	e->run.threads_running = e->o.co.threads + (list ? 1 : 0);
	e->nworkers = e->o.co.threads;
	if (list)
		pthread_create(&e->keys_thread, NULL, keyreader_main, e);
	else
		e->keys_listed_before = true;
	for (unsigned i = 0; i < e->o.co.threads; i++)
		pthread_create(&e->workers[i].thread, NULL, engine_worker_main, &e->workers[i]);
	return 0;
}

static void show_progress(struct engine *e, struct progress *pg)
{
	double secs = (double)(mono_ns() - e->start_mono_ns) / 1e9;
	uint64_t items = atomic_load(&e->st.items);
	uint64_t fetched = atomic_load(&e->st.keys_fetched);
	uint64_t queued = atomic_load(&e->st.keys_queued);
	uint64_t bytes = atomic_load(&e->st.value_bytes);
	double rate = secs > 0 ? (double)fetched / secs : 0;
	uint64_t total = e->keys_done ? queued : MAX(queued, e->src.curr_items);
	char eta[32] = "?";
	if (rate > 0 && total > fetched)
		snprintf(eta, sizeof(eta), "%.0fs", (double)(total - fetched) / rate);
	else if (total <= fetched)
		snprintf(eta, sizeof(eta), "0s");
	progress_draw(pg, "%s: keys %llu%s, items %llu, %.1f MiB, %.0f items/s, %.1f MiB/s, ETA %s",
		      e->sink->name, (unsigned long long)queued, e->keys_done ? "" : "+",
		      (unsigned long long)items, (double)bytes / (double)MIB,
		      secs > 0 ? (double)items / secs : 0,
		      secs > 0 ? (double)bytes / (double)MIB / secs : 0, eta);
}

static void wait_threads(struct engine *e)
{
	struct progress pg;
	progress_init(&pg, e->o.co.quiet);
	pthread_mutex_lock(&e->run.mu);
	while (e->run.threads_running > 0) {
		run_wait_ms(&e->run, MCW_PROGRESS_INTERVAL_MS);
		pthread_mutex_unlock(&e->run.mu);
		show_progress(e, &pg);
		rate_limits_poll_log(&e->limits);
		if (e->sink->poll)
			e->sink->poll(e);
		if (metrics_due(&e->metrics))
			engine_metrics(e, "running");
		pthread_mutex_lock(&e->run.mu);
	}
	pthread_mutex_unlock(&e->run.mu);
	progress_done(&pg);
	if (!e->keys_listed_before)
		pthread_join(e->keys_thread, NULL);
	for (unsigned i = 0; i < e->nworkers; i++)
		pthread_join(e->workers[i].thread, NULL);
}

/* Filters, metrics, limits and the probes: what comes before the budget. */
static int engine_prepare(struct engine *e)
{
	char err[512];
	if (keyfilter_prepare(&e->kf, &e->o.filter, &e->filter_bytes, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	e->filter_on = keyfilter_active(&e->kf);
	metrics_init(&e->metrics, e->o.co.metrics_file, e->sink->name);
	rate_limits_init(&e->limits, e->o.co.max_ops, e->o.co.max_bytes, e->o.co.threads,
			 e->o.co.limits_file);
	rate_limits_poll_log(&e->limits);
	int fd = engine_probe(e, &e->o.source, &e->src, true);
	if (fd < 0)
		return fd;
	e->keys_fd = fd;
	e->item_size_max = e->src.item_size_max;
	return e->sink->prepare(e);
}

int engine_run(struct engine *e)
{
	int ret = engine_prepare(e);
	if (ret != 0 || e->nothing_to_do)
		return ret;
	ret = budget_setup(e);
	if (ret != 0)
		return ret;
	identity_init(e);
	ret = e->sink->start ? e->sink->start(e) : 0;
	if (ret != 0)
		return ret;
	if (!e->o.co.quiet)
		log_info("%s %s (memcached %s, %llu items, item_size_max %llu) %s %s",
			 e->sink->verb, e->o.source.text, e->src.version,
			 (unsigned long long)e->src.curr_items,
			 (unsigned long long)e->src.item_size_max, e->sink->onto, e->target);
	ret = start_threads(e);
	if (ret != 0)
		return ret;
	wait_threads(e);
	if (e->run.fault.err) {
		log_error("%s", e->run.fault.msg);
		return e->run.fault.err;
	}
	return 0;
}

void engine_metrics(struct engine *e, const char *phase)
{
	struct metrics *m = &e->metrics;
	struct engine_stats *st = &e->st;
	if (!metrics_on(m))
		return;
	double secs = e->start_mono_ns ? (double)(mono_ns() - e->start_mono_ns) / 1e9 : 0;
	uint64_t items = e->sink->metric_items ? e->sink->metric_items(e) : atomic_load(&st->items);
	uint64_t fetched = atomic_load(&st->keys_fetched);
	uint64_t queued = atomic_load(&st->keys_queued);
	metrics_begin(m, phase);
	metrics_add(m, METRICS_COUNTER, "mcwarm_keys_listed_total",
		    "keys the source's key dump listed", "", (double)atomic_load(&st->keys_listed));
	metrics_add(m, METRICS_COUNTER, "mcwarm_keys_fetched_total",
		    "keys asked for with mg and answered", "", (double)fetched);
	metrics_add(m, METRICS_GAUGE, "mcwarm_lag_keys", "keys listed and not fetched yet", "",
		    (double)(queued > fetched ? queued - fetched : 0));
	metrics_add(m, METRICS_COUNTER, "mcwarm_items_total",
		    "items written (dump), sent (stream) or found equal (verify)", "",
		    (double)items);
	metrics_add(m, METRICS_COUNTER, "mcwarm_value_bytes_total", "value bytes moved", "",
		    (double)atomic_load(&st->value_bytes));
	metrics_add(m, METRICS_GAUGE, "mcwarm_items_per_second", "items per second since the start",
		    "", secs > 0 ? (double)items / secs : 0);
	static const char *const kinds[] = { "miss", "server_error", "busy_retry" };
	uint64_t counts[] = { atomic_load(&st->misses), atomic_load(&st->server_errors),
			      atomic_load(&st->busy_retries) };
	metrics_add_kinds(m, "mcwarm_events_total",
			  "keys gone since listed, error answers, waits for a busy crawler", "kind",
			  kinds, counts, ARRAY_LEN(kinds));
	if (e->sink->metrics)
		e->sink->metrics(e, m);
	metrics_commit(m);
}

void engine_init(struct engine *e, const struct engine_sink_ops *sink, void *sink_ctx)
{
	memset(e, 0, sizeof(*e));
	e->sink = sink;
	e->sink_ctx = sink_ctx;
	run_init(&e->run);
	e->keys_fd = e->dir_fd = e->spool_fd = e->ckpt.fd = -1;
	for (unsigned i = 0; i < MCW_THREADS_MAX; i++)
		e->workers[i].fd = -1;
}

void engine_release(struct engine *e)
{
	if (e->sink != NULL && e->sink->fini)
		e->sink->fini(e);
	if (e->dir_fd >= 0)
		close(e->dir_fd);
	checkpoint_close(&e->ckpt);
	if (e->spool_fd >= 0)
		close(e->spool_fd);
	if (e->keys_fd >= 0)
		close(e->keys_fd);
	budget_unmap(&e->budget);
}
