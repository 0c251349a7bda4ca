/*
 * watch.c: `mcwarm watch`, the numbers of a cache migration while it happens.
 *
 * Samples `stats` of every node of the old and the new cluster every --interval seconds
 * (one blocking connection per node, short timeouts: a node that does not answer is
 * reported down for that sample and tried again at the next) and prints, per cluster and
 * per node, the hit ratio and the get rate over a sliding --window, items and evictions.
 * Counters are differenced per node within the window; a node whose process restarted
 * (pid or start time changed) starts its window again instead of going negative.
 *
 * Two signals end the watch with a status an operator or a pipeline acts on:
 *  - roll back (exit 4): after cut-over (the new cluster serves more gets than the old,
 *    or --cutover now), the new cluster's hit ratio stayed below --min-hit-ratio for
 *    --for seconds;
 *  - drained (exit 0): the old cluster's get rate stayed below --drained for --for
 *    seconds: nothing reads it any more, it can be removed.
 * Nothing here writes to a server. Memory: a fixed table of nodes and samples.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "cli.h"
#include "core.h"
#include "json.h"
#include "mcproto.h"
#include "mcw_limits.h"
#include "net.h"
#include "server.h"

static const char watch_usage[] =
    "usage: mcwarm watch [--old LIST] [--new LIST] [options]\n"
    "\n"
    "Watches a cache migration: samples 'stats' of every node of the old and the new\n"
    "cluster and prints, per cluster and per node, the hit ratio and gets per second over\n"
    "a sliding window, items and new evictions. Reads only; sends nothing but 'stats'.\n"
    "\n"
    "      --old LIST           the cluster being replaced: HOST:PORT,HOST:PORT,...\n"
    "      --new LIST           the cluster being warmed or cut over to\n"
    "      --interval SECONDS   between samples (default 5)\n"
    "      --window SECONDS     hit ratio and rates over this much (default 60)\n"
    "      --duration SECONDS   stop after this long, exit 0 (default: until a signal\n"
    "                           below fires, or SIGINT/SIGTERM)\n"
    "      --min-hit-ratio R    roll-back signal: exit 4 when, after cut-over, the new\n"
    "                           cluster's hit ratio stays below R for --for seconds\n"
    "      --drained OPS        exit 0 when the old cluster's gets per second stay below\n"
    "                           OPS for --for seconds: it can be removed\n"
    "      --for SECONDS        how long a condition must hold (default 60)\n"
    "      --cutover auto|now   when the roll-back signal starts counting: auto, once the\n"
    "                           new cluster serves more gets per second than the old (or\n"
    "                           any, without --old); now, from the start (default auto)\n"
    "      --tls, --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name NAME,\n"
    "      --auth-file FILE     the old cluster's TLS (memcached -Z) and authentication\n"
    "                           (-Y), as mcwarm dump's source (with --new alone: the new\n"
    "                           cluster's)\n"
    "      --dest-tls, --dest-tls-ca FILE, ..., --dest-auth-file FILE\n"
    "                           the new cluster's, as populate's destination\n"
    "      --json               one JSON object per line: a line per cluster and per\n"
    "                           node at every sample, and a last line with the outcome\n"
    "  -q, --quiet              no per-node lines (human output)\n"
    "  -h, --help               this text\n"
    "\n"
    "exit codes: 0 ended (duration, signal, drained), 4 roll back (the new cluster's hit\n"
    "ratio stayed below --min-hit-ratio), 64 usage, 69 no node of a cluster answered at\n"
    "the first sample, 77 a cluster refused our certificate or password, or its own\n"
    "failed verification, at the first sample.\n";

enum {
	OPT_OLD = 256,
	OPT_NEW,
	OPT_INTERVAL,
	OPT_WINDOW,
	OPT_DURATION,
	OPT_MIN_HIT,
	OPT_DRAINED,
	OPT_FOR,
	OPT_CUTOVER
};

struct sample {
	int64_t t_ns; /* monotonic */
	uint64_t hits, misses, gets, items, evictions;
};

struct node {
	struct hostport hp;
	int cluster; /* 0 old, 1 new */
	int fd;
	bool up;
	int connect_ret; /* the last connect's and probe's: 0, or -errno (err says why) */
	char err[256];
	uint32_t pid;
	int64_t started_s;
	struct sample s[WATCH_SAMPLES_MAX]; /* ring: the window's samples */
	unsigned first, n;
};

/* Differences over a window, a node's or a cluster's sum. */
struct rates {
	unsigned nodes, down;
	uint64_t hits, misses, items, evictions;
	double gets_per_s;
	bool have; /* at least two samples of one node */
};

struct watch {
	unsigned interval_s, window_s, duration_s, for_s;
	double min_hit_ratio; /* < 0: off */
	double drained_ops;   /* < 0: off */
	bool cutover_now, json, quiet;
	struct cli_common co; /* --tls... (old), --dest-tls... (new) */
	struct node *nodes;
	unsigned nnodes;
	bool has[2];
	int64_t start_ns;
	int64_t low_since_ns, drained_since_ns; /* 0: the condition does not hold now */
	bool cut_over;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static const char *const cluster_name[2] = { "old", "new" };

static int add_nodes(struct watch *w, const char *list, int cluster)
{
	char buf[4096];
	if (strlen(list) >= sizeof(buf))
		return cli_usage_error("watch", "--%s: the list is longer than %zu characters",
				       cluster_name[cluster], sizeof(buf) - 1);
	strcpy(buf, list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (w->nnodes == WATCH_NODES_MAX)
			return cli_usage_error("watch", "more than %d nodes", WATCH_NODES_MAX);
		struct node *n = &w->nodes[w->nnodes];
		memset(n, 0, sizeof(*n));
		if (hostport_parse(t, &n->hp) < 0)
			return cli_usage_error("watch", "--%s: '%s' is not HOST:PORT",
					       cluster_name[cluster], t);
		n->cluster = cluster;
		n->fd = -1;
		w->nnodes++;
		w->has[cluster] = true;
	}
	return 0;
}

static int watch_option(struct watch *w, int ch, const char *arg)
{
	uint64_t v;
	char *end;
	switch (ch) {
	case OPT_OLD:
	case OPT_NEW:
		return add_nodes(w, arg, ch == OPT_NEW);
	case OPT_INTERVAL:
		if (!cli_uint("watch", "interval", arg, 1, 3600, &v))
			return MCW_EXIT_USAGE;
		w->interval_s = (unsigned)v;
		return 0;
	case OPT_WINDOW:
		if (!cli_uint("watch", "window", arg, 1, 86400, &v))
			return MCW_EXIT_USAGE;
		w->window_s = (unsigned)v;
		return 0;
	case OPT_DURATION:
		if (!cli_uint("watch", "duration", arg, 0, 365 * 86400, &v))
			return MCW_EXIT_USAGE;
		w->duration_s = (unsigned)v;
		return 0;
	case OPT_FOR:
		if (!cli_uint("watch", "for", arg, 0, 86400, &v))
			return MCW_EXIT_USAGE;
		w->for_s = (unsigned)v;
		return 0;
	case OPT_MIN_HIT:
		w->min_hit_ratio = strtod(arg, &end);
		if (*end != '\0' || w->min_hit_ratio < 0 || w->min_hit_ratio > 1)
			return cli_usage_error("watch", "--min-hit-ratio: a number from 0 to 1");
		return 0;
	case OPT_DRAINED:
		w->drained_ops = strtod(arg, &end);
		if (*end != '\0' || w->drained_ops < 0)
			return cli_usage_error("watch", "--drained: gets per second, 0 or more");
		return 0;
	case OPT_CUTOVER:
		if (strcmp(arg, "auto") != 0 && strcmp(arg, "now") != 0)
			return cli_usage_error("watch", "--cutover: auto or now, not '%s'", arg);
		w->cutover_now = arg[0] == 'n';
		return 0;
	case CLI_OPT_JSON:
		w->json = true;
		return 0;
	case 'q':
		w->quiet = true;
		return 0;
	case 'h':
		printf("%s", watch_usage);
		return -1;
	default:
		if (ch >= CLI_OPT_TLS && ch <= CLI_OPT_DEST_AUTH)
			return cli_common_option("watch", ch, arg, 0, &w->co);
		return cli_usage_error("watch", "unknown option");
	}
}

/* Each cluster's TLS and authentication, checked as a source's and a destination's, on
 * every node of the cluster. */
static int secure_clusters(struct watch *w)
{
	struct hostport *first[2] = { NULL, NULL };
	for (unsigned i = 0; i < w->nnodes; i++)
		if (first[w->nodes[i].cluster] == NULL)
			first[w->nodes[i].cluster] = &w->nodes[i].hp;
	int ret = cli_secure_finish("watch", &w->co, first[0], first[1]);
	for (unsigned i = 0; ret == 0 && i < w->nnodes; i++)
		w->nodes[i].hp.sec = first[w->nodes[i].cluster]->sec;
	return ret;
}

static int parse_opts(int argc, char **argv, struct watch *w)
{
	static const struct option longopts[] = {
		{ "old", required_argument, NULL, OPT_OLD },
		{ "new", required_argument, NULL, OPT_NEW },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "min-hit-ratio", required_argument, NULL, OPT_MIN_HIT },
		{ "drained", required_argument, NULL, OPT_DRAINED },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "cutover", required_argument, NULL, OPT_CUTOVER },
		{ "json", no_argument, NULL, CLI_OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_SECURE_LONGOPTS,
		{ 0 },
	};
	int ch;
	optind = 1;
	cli_common_defaults(&w->co);
	while ((ch = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		int ret = watch_option(w, ch, optarg);
		if (ret != 0)
			return ret;
	}
	if (optind < argc)
		return cli_usage_error("watch", "unexpected argument '%s'", argv[optind]);
	if (w->nnodes == 0)
		return cli_usage_error("watch", "give --old, --new or both");
	if (w->min_hit_ratio >= 0 && !w->has[1])
		return cli_usage_error("watch",
				       "--min-hit-ratio watches the new cluster: give --new");
	if (w->drained_ops >= 0 && !w->has[0])
		return cli_usage_error("watch", "--drained watches the old cluster: give --old");
	if (w->window_s / w->interval_s + 1 > WATCH_SAMPLES_MAX)
		return cli_usage_error("watch", "--window holds at most %d samples of --interval",
				       WATCH_SAMPLES_MAX - 1);
	return secure_clusters(w);
}

static bool stat_u64(const char *buf, size_t len, const char *name, uint64_t *out)
{
	const char *v;
	size_t vl;
	return mcp_stats_find(buf, len, name, &v, &vl) && mcp_parse_u64(v, vl, out);
}

/* One stats sample of a node; false (node down, connection closed) on any failure. */
static bool sample_node(struct node *n, int64_t now_ns)
{
	static char buf[WATCH_STATS_BYTES];
	if (n->fd < 0) {
		n->fd = net_connect(&n->hp, WATCH_CONNECT_TIMEOUT_MS, n->err, sizeof(n->err));
		n->connect_ret = n->fd < 0 ? n->fd : 0;
		if (n->fd < 0)
			return false;
		net_set_recv_timeout(n->fd, WATCH_IO_TIMEOUT_MS);
		struct server_info si; /* says why a TLS port or -Y refuses our plain 'stats' */
		n->connect_ret = server_probe(n->fd, n->hp.text, &si, n->err, sizeof(n->err));
		if (n->connect_ret < 0) {
			net_close(n->fd);
			n->fd = -1;
			return false;
		}
	}
	ssize_t len = net_exchange(n->fd, "stats\r\n", buf, sizeof(buf), mcp_stats_is_complete);
	struct sample s = { .t_ns = now_ns };
	uint64_t pid, uptime, time_s;
	if (len < 0 || !stat_u64(buf, (size_t)len, "get_hits", &s.hits) ||
	    !stat_u64(buf, (size_t)len, "get_misses", &s.misses) ||
	    !stat_u64(buf, (size_t)len, "cmd_get", &s.gets) ||
	    !stat_u64(buf, (size_t)len, "curr_items", &s.items) ||
	    !stat_u64(buf, (size_t)len, "evictions", &s.evictions) ||
	    !stat_u64(buf, (size_t)len, "pid", &pid) ||
	    !stat_u64(buf, (size_t)len, "uptime", &uptime) ||
	    !stat_u64(buf, (size_t)len, "time", &time_s)) {
		net_close(n->fd);
		n->fd = -1;
		return false;
	}
	int64_t started = (int64_t)time_s - (int64_t)uptime;
	if (n->n > 0 && (pid != n->pid || llabs(started - n->started_s) > 2))
		n->n = 0; /* a new process: its counters start again */
	n->pid = (uint32_t)pid;
	n->started_s = started;
	if (n->n == WATCH_SAMPLES_MAX) {
		n->first = (n->first + 1) % WATCH_SAMPLES_MAX;
		n->n--;
	}
	n->s[(n->first + n->n++) % WATCH_SAMPLES_MAX] = s;
	return true;
}

/* Drops samples older than the window, keeping the one that starts it. */
static void trim(struct node *n, int64_t now_ns, unsigned window_s)
{
	int64_t from = now_ns - (int64_t)window_s * 1000000000LL;
	while (n->n > 2 && n->s[(n->first + 1) % WATCH_SAMPLES_MAX].t_ns <= from) {
		n->first = (n->first + 1) % WATCH_SAMPLES_MAX;
		n->n--;
	}
}

static void node_rates(const struct node *n, struct rates *r)
{
	r->nodes++;
	if (!n->up) {
		r->down++;
		return;
	}
	const struct sample *a = &n->s[n->first];
	const struct sample *b = &n->s[(n->first + n->n - 1) % WATCH_SAMPLES_MAX];
	r->items += b->items;
	if (n->n < 2)
		return;
	r->have = true;
	r->hits += b->hits - a->hits;
	r->misses += b->misses - a->misses;
	r->evictions += b->evictions - a->evictions;
	r->gets_per_s += (double)(b->gets - a->gets) * 1e9 / (double)(b->t_ns - a->t_ns);
}

static double hit_ratio(const struct rates *r)
{
	return r->hits + r->misses > 0 ? (double)r->hits / (double)(r->hits + r->misses) : -1;
}

static void print_rates(const struct watch *w, const char *kind, const char *name,
			const struct rates *r, double t_s)
{
	double hr = hit_ratio(r);
	if (w->json) {
		struct json j;
		json_begin(&j, stdout);
		json_f64(&j, "t", t_s);
		json_str(&j, "kind", kind);
		json_str(&j, "name", name);
		if (hr >= 0)
			json_f64(&j, "hit_ratio", hr);
		json_f64(&j, "gets_per_s", r->gets_per_s);
		json_u64(&j, "items", r->items);
		json_u64(&j, "evictions", r->evictions);
		json_u64(&j, "nodes", r->nodes);
		json_u64(&j, "down", r->down);
		json_end(&j);
		return;
	}
	char ratio[16] = "-";
	if (hr >= 0)
		snprintf(ratio, sizeof(ratio), "%.4f", hr);
	bool node = strcmp(kind, "node") == 0;
	printf("%s%-*s hit %-6s  gets %10.0f/s  items %12llu  evictions +%llu%s\n",
	       node ? "    " : "", node ? 22 : 26, name, ratio, r->gets_per_s,
	       (unsigned long long)r->items, (unsigned long long)r->evictions,
	       r->down ? (r->nodes == 1 ? "  DOWN" : "  (nodes down)") : "");
}

/* Updates a condition's start time; true once it has held for --for seconds. */
static bool held(int64_t *since_ns, bool now_true, int64_t now_ns, unsigned for_s)
{
	if (!now_true) {
		*since_ns = 0;
		return false;
	}
	if (*since_ns == 0)
		*since_ns = now_ns;
	return now_ns - *since_ns >= (int64_t)for_s * 1000000000LL;
}

/* One round: sample, print, judge. Returns -1 to go on, else the exit code. */
static int round_once(struct watch *w, bool first)
{
	int64_t now = mono_ns();
	double t_s = (double)(now - w->start_ns) / 1e9;
	struct rates c[2] = { 0 };
	for (unsigned i = 0; i < w->nnodes; i++) {
		struct node *n = &w->nodes[i];
		n->up = sample_node(n, now);
		trim(n, now, w->window_s);
		node_rates(n, &c[n->cluster]);
	}
	for (int k = 0; k < 2; k++) {
		if (first && w->has[k] && c[k].down == c[k].nodes) {
			const struct node *n = &w->nodes[k == 0 ? 0 : w->nnodes - 1];
			if (n->connect_ret < 0) { /* why, and a refusal's own exit code (77) */
				log_error("no node of the %s cluster answers: %s", cluster_name[k],
					  n->err);
				return mcw_exit_code(net_connect_cause(n->connect_ret));
			}
			log_error(
			    "no node of the %s cluster answers 'stats' (first: %s): check the "
			    "addresses and that memcached runs there",
			    cluster_name[k], n->hp.text);
			return MCW_EXIT_UNAVAILABLE;
		}
	}
	if (!w->json)
		printf("-- %.0f s\n", t_s);
	bool per_node = w->json || !w->quiet;
	for (int k = 0; k < 2; k++) {
		if (!w->has[k])
			continue;
		print_rates(w, "cluster", cluster_name[k], &c[k], t_s);
		for (unsigned i = 0; i < w->nnodes && per_node; i++) {
			if (w->nodes[i].cluster != k)
				continue;
			struct rates r = { 0 };
			node_rates(&w->nodes[i], &r);
			print_rates(w, "node", w->nodes[i].hp.text, &r, t_s);
		}
	}
	fflush(stdout);
	if (!w->cut_over &&
	    (w->cutover_now || (c[1].have && c[1].gets_per_s > 0 &&
				(!w->has[0] || c[1].gets_per_s > c[0].gets_per_s)))) {
		w->cut_over = true;
		log_info("cut-over: the new cluster serves %.0f gets/s (the old %.0f)",
			 c[1].gets_per_s, c[0].gets_per_s);
	}
	double hr = hit_ratio(&c[1]);
	if (w->min_hit_ratio >= 0 && w->cut_over &&
	    held(&w->low_since_ns, hr >= 0 && hr < w->min_hit_ratio, now, w->for_s)) {
		log_error("roll back: the new cluster's hit ratio has been below %.4f for %u s "
			  "(now %.4f; the old cluster's %.4f)",
			  w->min_hit_ratio, w->for_s, hr, hit_ratio(&c[0]));
		return MCW_EXIT_ROLLBACK;
	}
	if (w->drained_ops >= 0 &&
	    held(&w->drained_since_ns, c[0].have && c[0].gets_per_s < w->drained_ops, now,
		 w->for_s)) {
		log_info("drained: the old cluster has served fewer than %.0f gets/s for %u s: it "
			 "can be removed",
			 w->drained_ops, w->for_s);
		return MCW_EXIT_OK;
	}
	return -1;
}

static void final_line(const struct watch *w, const char *outcome, int code)
{
	if (!w->json)
		return;
	struct json j;
	json_begin(&j, stdout);
	json_f64(&j, "t", (double)(mono_ns() - w->start_ns) / 1e9);
	json_str(&j, "kind", "end");
	json_str(&j, "outcome", outcome);
	json_bool(&j, "cut_over", w->cut_over);
	json_i64(&j, "exit", code);
	json_end(&j);
}

int mcw_cmd_watch(int argc, char **argv)
{
	static struct node nodes[WATCH_NODES_MAX];
	struct watch w = {
		.interval_s = 5,
		.window_s = 60,
		.for_s = 60,
		.min_hit_ratio = -1,
		.drained_ops = -1,
		.nodes = nodes,
	};
	int code = parse_opts(argc, argv, &w);
	if (code != 0)
		return code < 0 ? MCW_EXIT_OK : code;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	w.start_ns = mono_ns();
	const char *outcome = "stopped";
	for (bool first = true;; first = false) {
		code = round_once(&w, first);
		if (code >= 0) {
			outcome = code == MCW_EXIT_ROLLBACK ? "roll back"
				  : code == MCW_EXIT_OK	    ? "drained"
							    : "unavailable";
			break;
		}
		code = MCW_EXIT_OK;
		int64_t next = w.start_ns;
		while (next <= mono_ns())
			next += (int64_t)w.interval_s * 1000000000LL;
		if (w.duration_s > 0 && next - w.start_ns > (int64_t)w.duration_s * 1000000000LL) {
			outcome = "duration";
			break;
		}
		while (!stop_requested && mono_ns() < next) {
			struct timespec ts = { 0, 50 * 1000000L };
			nanosleep(&ts, NULL);
		}
		if (stop_requested)
			break;
	}
	final_line(&w, outcome, code);
	for (unsigned i = 0; i < w.nnodes; i++)
		if (nodes[i].fd >= 0)
			net_close(nodes[i].fd);
	net_secure_release(&w.co.src_sec);
	net_secure_release(&w.co.dst_sec);
	return code;
}
