/*
 * warm.c: `mcwarm-ctl warm` and `release`: a whole warm-up, or one host's half of it, or
 * the rest of either that a killed controller left behind; made of the writer's pieces
 * (dumper.c) and the reader's (reader.c), one way each.
 *
 *   both: NEW --volume--> VOLUME --ctl_dump_ensure--> DUMPING --ctl_read_cycles-->
 *         POPULATED --ctl_verify--> VERIFIED --teardown--> DONE
 *   rw:   NEW --volume (rw)--> VOLUME --ctl_dump_ensure--> DUMPING --DONE--> DUMPED
 *         --ctl_release (no reader left)--> DONE
 *   ro:   NEW --wait, volume (ro)--> VOLUME --ctl_read_cycles--> POPULATED --ctl_verify-->
 *         VERIFIED --detach ro--> DONE
 *   any failure: FAILED (both: torn down; rw: the volume stays for a run again and for
 *   its readers; ro: its own attachment detached, its journal kept)
 *
 * --backend s3: the same phases without a volume (VOLUME only records that the store
 * answered); the reader half marks itself reading, then done, in the store (s3.c), and
 * teardown (both) and release (rw) delete the pair's prefix unless kept.
 *
 * Run again, a half continues where it stopped (a finished one returns at once); a
 * whole warm-up that ended (done or failed) starts a new one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "ctl_private.h"

static double span_s(int64_t from_ns, int64_t to_ns)
{
	return from_ns && to_ns && to_ns > from_ns ? (double)(to_ns - from_ns) / 1e9 : 0;
}

static void report_json(const struct ctl_plan *p, const struct ctl_state *s, int code)
{
	char esc[2 * sizeof(s->error)];
	double total = span_s(s->started_ns, s->finished_ns ? s->finished_ns : ctl_wall_ns());
	char dump_json[CTL_PATH_MAX + 32]; /* the dumper's own summary: what it wrote */
	char where[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES];
	ctl_path(dump_json, sizeof(dump_json), p, "dump-%u.json", s->dump_n);
	if (p->s3)
		ctl_s3_pair_url(where, sizeof(where), p, "");
	else
		snprintf(where, sizeof(where), "%s", s->volume_id[0] ? s->volume_id : p->vol.path);
	bool ours = p->side != SIDE_RO;
	printf("{\"command\":\"warm\",\"side\":\"%s\",\"ok\":%s,\"exit_code\":%d,\"phase\":\"%s\","
	       "\"backend\":\"%s\",\"volume\":\"%s\",\"verify_ratio\":%.6f,\"verify_exit\":%d,"
	       "\"dump_items\":%.0f,\"dump_bytes\":%.0f,\"items_sent\":%llu,"
	       "\"bytes_sent\":%llu,\"already_present\":%llu,\"files_applied\":%llu,"
	       "\"cycles\":%u,\"volume_seconds\":%.3f,\"dump_seconds\":%.3f,"
	       "\"overlap_seconds\":%.3f,\"populated_seconds\":%.3f,\"verify_seconds\":%.3f,"
	       "\"total_seconds\":%.3f,\"dump_attempt\":%u,\"evictions\":%llu,"
	       "\"error\":\"%s\"}\n",
	       ctl_side_name(p->side), code == 0 ? "true" : "false", code, ctl_phase_name(s->phase),
	       ctl_backend_name(p), where, s->verify_ratio, s->verify_exit,
	       ours ? ctl_json_num(dump_json, "items") : 0,
	       ours ? ctl_json_num(dump_json, "value_bytes") : 0, (unsigned long long)s->items_sent,
	       (unsigned long long)s->bytes_sent, (unsigned long long)s->already_present,
	       (unsigned long long)s->files_applied, s->cycles, span_s(s->started_ns, s->volume_ns),
	       span_s(s->dump_started_ns, s->dump_done_ns),
	       span_s(s->first_apply_ns, s->dump_done_ns), span_s(s->started_ns, s->populated_ns),
	       span_s(s->populated_ns, s->verified_ns), total, s->dump_n,
	       (unsigned long long)s->evictions, ctl_json_escape(esc, sizeof(esc), s->error));
}

static void report(const struct ctl_plan *p, const struct ctl_state *s, int code, bool json)
{
	double total = span_s(s->started_ns, s->finished_ns);
	double volume = span_s(s->started_ns, s->volume_ns);
	double dump = span_s(s->dump_started_ns, s->dump_done_ns);
	double populated = span_s(s->started_ns, s->populated_ns); /* the transfer itself */
	double verify = span_s(s->populated_ns, s->verified_ns);
	/* how long populate passes applied files while the dump still ran */
	double overlap = span_s(s->first_apply_ns, s->dump_done_ns);
	char how[160];
	if (s->first_apply_ns == 0)
		snprintf(how, sizeof(how), "nothing applied");
	else if (overlap > 0)
		snprintf(how, sizeof(how), "populate applied files during its last %.1f s",
			 overlap);
	else
		snprintf(how, sizeof(how), "the dump ended before the first populate pass");
	if (p->side == SIDE_RW)
		fprintf(stderr,
			"mcwarm-ctl: warm --side rw %s: dump attempt %u %s in %.1f s "
			"(volume ready in %.1f s)%s%s\n",
			code == 0 ? "complete" : "FAILED", s->dump_n,
			s->dump_exit != 0 ? "did not finish"
			: p->s3		  ? "is DONE in the store"
					  : "is DONE on the volume",
			dump, volume, s->error[0] ? "; error: " : "", s->error);
	else
		fprintf(stderr,
			"mcwarm-ctl: warm%s %s: verify warm ratio %.6f; %llu items sent (%llu "
			"already present) in %u populate passes; volume ready in %.1f s, dump %.1f "
			"s (%s), populated at %.1f s, verify %.1f s, total %.1f s; destination "
			"evictions %llu%s%s\n",
			p->side == SIDE_RO ? " --side ro" : "",
			code == 0		 ? "complete"
			: s->phase == PHASE_DONE ? "complete, but the destination evicted items "
						   "(exit 3)"
						 : "FAILED",
			s->verify_ratio, (unsigned long long)s->items_sent,
			(unsigned long long)s->already_present, s->cycles, volume, dump, how,
			populated, verify, total, (unsigned long long)s->evictions,
			s->error[0] ? "; error: " : "", s->error);
	if (json)
		report_json(p, s, code);
	ctl_metrics_final(p, s, code);
}

/* What a failed half leaves behind, so that running it again continues. */
static int fail_cleanup(const struct ctl_plan *p, struct ctl_state *s, char *terr, size_t cap)
{
	if (p->side == SIDE_RW) /* readers may still be attached: release tears down */
		return 0;
	if (p->side == SIDE_RO) /* s3: no longer reading, so release may go on */
		return p->s3 ? ctl_s3_reader_mark(p, NULL, terr, cap)
			     : ctl_step_detach(p, s, SIDE_RO, terr, cap);
	return ctl_step_teardown(p, s, true, terr, cap);
}

/* A failure: record it, clean up what this side may, say what is left. */
static int fail(const struct ctl_plan *p, struct ctl_state *s, int code, const char *err, bool json)
{
	char terr[512] = "";
	snprintf(s->error, sizeof(s->error), "%s", err);
	fprintf(stderr, "\nmcwarm-ctl: error: %s\n", err);
	ctl_dump_stop(p, s);
	s->phase = PHASE_FAILED;
	s->finished_ns = ctl_wall_ns();
	if (fail_cleanup(p, s, terr, sizeof(terr)) != 0)
		fprintf(stderr,
			"mcwarm-ctl: could not clean up everything: %s; left behind: %s%s%s\n",
			terr, s->rw_device[0] ? s->rw_device : "", s->ro_device[0] ? " " : "",
			s->ro_device);
	else if (p->side == SIDE_RW)
		fprintf(stderr,
			"mcwarm-ctl: the %s stays as it is (%s): run this again to "
			"continue the dump, or mcwarm-ctl release --work %s to let it go\n",
			p->s3 ? "dump" : "volume",
			p->s3 || p->vol.kind == EBS_DIR ? p->vol.path : "attached and mounted here",
			p->work);
	else if (p->side == SIDE_RO)
		fprintf(stderr,
			"mcwarm-ctl: %s; the populate journal in %s is kept: run this again "
			"to continue\n",
			p->s3 ? "this reader's mark in the store is removed"
			      : "detached this host's read-only attachment",
			p->work);
	else
		fprintf(stderr, "mcwarm-ctl: cleaned up: nothing mounted or attached; %s\n",
			p->s3 ? "the dump's prefix was deleted; logs are kept in the work directory"
			: s->volume_id[0] || p->vol.kind == EBS_DIR
			    ? "the volume and the dump's logs are kept in the work directory"
			    : "the volume was removed; logs are kept in the work directory");
	ctl_state_save(p->work, s);
	report(p, s, code, json);
	return code;
}

/* A new warm-up in this work directory: the volume an ended one created and kept stays
 * ours, and the attempt numbers go on, so no directory of an earlier warm-up is mistaken
 * for this one's. */
static void state_new(const struct ctl_plan *p, struct ctl_state *s, bool had)
{
	struct ctl_state prev = *s;
	memset(s, 0, sizeof(*s));
	if (had) {
		s->created_volume = prev.created_volume;
		snprintf(s->volume_id, sizeof(s->volume_id), "%s", prev.volume_id);
		s->volume_bytes = prev.volume_bytes;
		s->dump_n = prev.dump_n;
	}
	if (p->side != SIDE_RO) /* the reader follows the writer's numbers */
		s->dump_n++;
	s->dump_exit = s->verify_exit = -1;
	s->plan_crc = ctl_plan_crc(p);
	s->side = p->side;
	s->started_ns = ctl_wall_ns();
}

/* A half that failed goes on from where it stopped: its volume, attempt and journal. */
static void state_retry(struct ctl_state *s)
{
	s->phase = s->rw_device[0] || s->ro_device[0] ? PHASE_VOLUME : PHASE_NEW;
	s->error[0] = '\0';
	s->dump_exit = s->verify_exit = -1;
	s->finished_ns = 0;
}

/* The state of this work directory: continued, or a new warm-up. 0 or an exit code. */
static int begin(const struct ctl_plan *p, struct ctl_state *s)
{
	char err[512] = "";
	int ret = ctl_state_load(p->work, s, err, sizeof(err));
	if (ret == -EBADMSG) {
		fprintf(stderr, "mcwarm-ctl: %s\n", err);
		return MCW_EXIT_DATA;
	}
	if (ret == 0 && s->plan_crc != ctl_plan_crc(p)) {
		fprintf(stderr,
			"mcwarm-ctl: %s holds the state of another warm-up (other servers, "
			"volume, side or filters): use another --work directory\n",
			p->work);
		return MCW_EXIT_USAGE;
	}
	bool half = p->side != SIDE_BOTH, fresh = true;
	if (ret < 0 || (s->phase == PHASE_DONE && p->side != SIDE_RO) ||
	    (s->phase == PHASE_FAILED && !half))
		state_new(p, s, ret == 0);
	else if (s->phase == PHASE_FAILED)
		state_retry(s);
	else
		fresh = false;
	if (!fresh && s->phase != PHASE_DONE)
		fprintf(stderr,
			"mcwarm-ctl: continuing the warm-up recorded in %s/ctl.state "
			"(phase %s)\n",
			p->work, ctl_phase_name(s->phase));
	ret = ctl_plan_save(p);
	if (ret == 0 && fresh)
		ret = ctl_state_save(p->work, s);
	if (ret < 0) {
		fprintf(stderr, "mcwarm-ctl: cannot write the plan and state into %s: %s\n",
			p->work, strerror(-ret));
		return MCW_EXIT_IO;
	}
	if (s->dump_n > 0) { /* a populate pass a killed controller left running */
		char st[CTL_PATH_MAX + 32];
		ctl_path(st, sizeof(st), p, "pop-%u", s->dump_n);
		ctl_stop_pid(ctl_find_mcwarm("populate", "--state", st));
	}
	return 0;
}

static void mark(const struct ctl_plan *p, struct ctl_state *s, enum ctl_phase phase,
		 int64_t *at_ns)
{
	s->phase = phase;
	if (at_ns != NULL && *at_ns == 0)
		*at_ns = ctl_wall_ns();
	ctl_state_save(p->work, s);
}

/* The writer's volume, or both sides', ready. */
static int volume(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	int code = ctl_step_volume(p, s, p->side, err, cap);
	if (code == 0 && s->volume_ns == 0)
		mark(p, s, s->phase, &s->volume_ns);
	return code;
}

/* The reader on its own host: the volume, once the writer has made it and its
 * filesystem (bounded by plan->wait_volume_s). */
static int reader_volume(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	int64_t deadline_ns = ctl_wall_ns() + (int64_t)p->wait_volume_s * 1000000000LL;
	bool said = false;
	for (;;) {
		int code = volume(p, s, err, cap);
		if (code != MCW_EXIT_TEMPFAIL)
			return code;
		if (ctl_wall_ns() > deadline_ns) {
			size_t n = strlen(err);
			snprintf(err + n, cap - n, "; gave up after --wait-volume %u s",
				 p->wait_volume_s);
			return code;
		}
		if (!said)
			fprintf(stderr, "mcwarm-ctl: waiting for the source host: %s\n", err);
		said = true;
		ctl_wait_ms(p, s, CTL_VOLUME_POLL_MS);
	}
}

/* The dump on this host, until DONE is on the volume. */
static int writer(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	int code = ctl_dump_ensure(p, s, err, cap);
	while (code == 0 && s->dump_exit != 0) {
		ctl_wait_ms(p, s, p->cycle_ms);
		code = ctl_dump_check(p, s, err, cap);
	}
	if (code == 0)
		mark(p, s, PHASE_DUMPED, &s->dump_done_ns);
	return code;
}

/* Populate cycles until the dump is applied, then verify. */
static int reader(const struct ctl_plan *p, struct ctl_state *s, bool tty, char *err, size_t cap)
{
	int code = 0;
	if (p->side == SIDE_RO && s->phase < PHASE_DUMPING) /* reading while it dumps */
		mark(p, s, PHASE_DUMPING, NULL);
	if (s->phase < PHASE_POPULATED) {
		code = ctl_read_cycles(p, s, tty, err, cap);
		if (tty)
			fputc('\n', stderr);
		if (code == 0)
			mark(p, s, PHASE_POPULATED, &s->populated_ns);
	}
	if (code == 0 && s->phase < PHASE_VERIFIED) {
		code = ctl_verify(p, s);
		if (code != 0)
			snprintf(err, cap,
				 "verify: warm ratio %.6f is below %g (exit %d): see "
				 "%s/verify.json",
				 s->verify_ratio, p->min_ratio, code, p->work);
	}
	return code;
}

/* The end of a good run: what this side takes down. */
static int finish(const struct ctl_plan *p, struct ctl_state *s, char *err, size_t cap)
{
	if (p->side == SIDE_RW)
		return 0; /* the volume stays for its readers until release */
	int code = p->side != SIDE_RO ? ctl_step_teardown(p, s, !p->keep, err, cap)
		   : p->s3	      ? ctl_s3_reader_mark(p, "done", err, cap)
				      : ctl_step_detach(p, s, SIDE_RO, err, cap);
	if (code == 0) {
		s->finished_ns = ctl_wall_ns();
		mark(p, s, PHASE_DONE, NULL);
	}
	return code;
}

int ctl_warm(const struct ctl_plan *p, bool json)
{
	struct ctl_state s;
	char err[1024] = "";
	bool tty = isatty(STDERR_FILENO);
	int code = begin(p, &s);
	if (code != 0)
		return code;
	bool finished = p->side == SIDE_RO ? s.phase == PHASE_DONE
					   : p->side == SIDE_RW && s.phase == PHASE_DUMPED;
	if (finished) { /* a half run again after it ended well: nothing to do */
		fprintf(stderr, "mcwarm-ctl: this half is finished already (phase %s)\n",
			ctl_phase_name(s.phase));
		report(p, &s, 0, json);
		return 0;
	}
	code = p->side == SIDE_RO ? reader_volume(p, &s, err, sizeof(err))
				  : volume(p, &s, err, sizeof(err));
	if (code == 0 && p->side != SIDE_RO && s.phase < PHASE_DUMPED)
		code = p->side == SIDE_RW ? writer(p, &s, err, sizeof(err))
					  : ctl_dump_ensure(p, &s, err, sizeof(err));
	if (code == 0 && p->side != SIDE_RW)
		code = reader(p, &s, tty, err, sizeof(err));
	if (code == 0)
		code = finish(p, &s, err, sizeof(err));
	if (code != 0)
		return fail(p, &s, code, err, json);
	/* a shrinking resize (--allow-shrink) finishes, and says the destination evicted */
	code = s.evictions > 0 ? MCW_EXIT_TOO_SMALL : 0;
	report(p, &s, code, json);
	return code;
}

/* Is anyone but the writer still attached? MCW_EXIT_TEMPFAIL naming it, or 0. */
static int readers_gone(const struct ctl_plan *p, const struct ctl_state *s, char *err, size_t cap)
{
	struct ebs_volume v = p->vol;
	struct ebs_status st;
	if (p->s3) /* the readers' marks in the store */
		return ctl_s3_readers_gone(p, err, cap);
	if (v.volume_id[0] == '\0')
		snprintf(v.volume_id, sizeof(v.volume_id), "%s", s->volume_id);
	if (v.kind == EBS_DIR)
		return 0; /* nothing to attach, nothing to check */
	if (ebs_describe(&v, &st, err, cap) < 0)
		return MCW_EXIT_UNAVAILABLE;
	if (st.others == 0)
		return 0;
	return snprintf(err, cap,
			"%u reader%s still attached to %.255s (%.255s): release it "
			"after every mcwarm-ctl warm --side ro has finished; try later",
			st.others, st.others == 1 ? " is" : "s are",
			v.kind == EBS_EC2 ? v.volume_id : v.path, st.other),
	       MCW_EXIT_TEMPFAIL;
}

int ctl_release(const struct ctl_plan *p, bool keep, bool json)
{
	char esc[2048];
	struct ctl_state s;
	char err[1024] = "";
	int code = ctl_state_load(p->work, &s, err, sizeof(err));
	if (code == -ENOENT) {
		fprintf(stderr, "mcwarm-ctl release: no warm-up recorded in %s: nothing to do\n",
			p->work);
		return 0;
	}
	if (code < 0)
		return fprintf(stderr, "mcwarm-ctl release: %s\n", err), MCW_EXIT_DATA;
	if (s.side != SIDE_RW)
		return fprintf(stderr,
			       "mcwarm-ctl release: %s holds a warm-up of side %s: release "
			       "is for the source host's side (warm --side rw)\n",
			       p->work, ctl_side_name(s.side)),
		       MCW_EXIT_USAGE;
	code = s.phase == PHASE_DONE ? 0 : readers_gone(p, &s, err, sizeof(err));
	if (code == 0 && s.phase != PHASE_DONE) {
		ctl_dump_stop(p, &s); /* released before DONE: the dump is abandoned */
		code = ctl_step_detach(p, &s, SIDE_RW, err, sizeof(err));
		if (code == 0 && !keep && p->s3)
			code = ctl_s3_delete(p, err, sizeof(err));
		else if (code == 0 && !keep && s.created_volume)
			code = ctl_step_destroy(p, &s, err, sizeof(err));
		if (code == 0) {
			s.finished_ns = ctl_wall_ns();
			mark(p, &s, PHASE_DONE, NULL);
		}
	}
	if (code != 0)
		fprintf(stderr, "mcwarm-ctl release: %s\n", err);
	else
		fprintf(stderr, "mcwarm-ctl release: nothing mounted or attached here; the %s\n",
			p->s3 ? (keep ? "dump's prefix is kept" : "dump's prefix is deleted")
			: keep || !s.created_volume ? "volume is kept"
						    : "volume is deleted");
	if (json)
		printf("{\"command\":\"release\",\"ok\":%s,\"exit_code\":%d,\"error\":\"%s\"}\n",
		       code == 0 ? "true" : "false", code,
		       ctl_json_escape(esc, sizeof(esc), code ? err : ""));
	return code;
}

int ctl_status(const struct ctl_plan *p, bool json)
{
	char esc[2048];
	struct ctl_state s;
	char err[512], dir[CTL_PATH_MAX + 32 + CTL_GROUP_MAX];
	int ret = ctl_state_load(p->work, &s, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "mcwarm-ctl: %s\n",
			ret == -ENOENT ? "no warm-up recorded in this work directory" : err);
		return ret == -ENOENT ? MCW_EXIT_USAGE : MCW_EXIT_DATA;
	}
	char to[CTL_PATH_MAX + OBJS_KEY_MAX_BYTES];
	uint64_t listed, backlog; /* populate's own view (STATE/backlog), for an autoscaler */
	bool has_backlog = ctl_backlog(p, &s, &listed, &backlog);
	ctl_dump_dir(dir, sizeof(dir), p, s.side == SIDE_RO ? EBS_RO : EBS_RW, s.dump_n);
	ctl_dump_out(to, sizeof(to), p, s.dump_n);
	/* s3: what populate listed; the writer's side counts its objects in the store */
	unsigned written = p->s3 ? (unsigned)listed : ctl_count_chunks(dir);
	char chunks[48];
	snprintf(chunks, sizeof(chunks), "dump-%u/chunk-", s.dump_n);
	if (p->s3 && s.side == SIDE_RW && ctl_s3_count(p, chunks, &written, err, sizeof(err)))
		fprintf(stderr, "mcwarm-ctl: cannot count the dump's chunk files: %s\n", err);
	/* files written but not applied yet; the reader's mount may be gone (done) */
	long long lag = p->s3			    ? (long long)backlog
			: written > s.files_applied ? (long long)(written - s.files_applied)
						    : 0;
	double secs =
	    s.started_ns == 0
		? 0
		: (double)((s.finished_ns ? s.finished_ns : ctl_wall_ns()) - s.started_ns) / 1e9;
	double rate = secs > 0 ? (double)s.items_sent / secs : 0;
	bool dumper_alive =
	    s.side != SIDE_RO && s.dump_exit == -1 && ctl_find_mcwarm("dump", "--out", to) > 0;
	if (json) {
		printf("{\"backend\":\"%s\",\"backlog_known\":%s,\"backlog_chunks\":%llu,"
		       "\"chunks_listed\":%llu,",
		       ctl_backend_name(p), has_backlog ? "true" : "false",
		       (unsigned long long)backlog, (unsigned long long)listed);
		printf("\"side\":\"%s\",\"phase\":\"%s\",\"dump_attempt\":%u,\"dump_running\":%s,"
		       "\"dump_exit\":%d,\"chunk_files_written\":%u,\"chunk_files_applied\":%llu,"
		       "\"lag_files\":%lld,\"items_sent\":%llu,\"bytes_sent\":%llu,"
		       "\"already_present\":%llu,"
		       "\"items_per_second\":%.0f,\"cycles\":%u,\"verify_ratio\":%.6f,"
		       "\"verify_exit\":%d,\"elapsed_seconds\":%.1f,\"evictions\":%llu,"
		       "\"error\":\"%s\"}\n",
		       ctl_side_name(s.side), ctl_phase_name(s.phase), s.dump_n,
		       dumper_alive ? "true" : "false", s.dump_exit, written,
		       (unsigned long long)s.files_applied, lag, (unsigned long long)s.items_sent,
		       (unsigned long long)s.bytes_sent, (unsigned long long)s.already_present,
		       rate, s.cycles, s.verify_ratio, s.verify_exit, secs,
		       (unsigned long long)s.evictions, ctl_json_escape(esc, sizeof(esc), s.error));
		return 0;
	}
	printf("side %s; phase %s; dump attempt %u %s; chunk files written %u, applied %llu (lag "
	       "%lld); items sent %llu (%.0f/s); %u passes; verify ratio %.6f; %.1f s%s%s\n",
	       ctl_side_name(s.side), ctl_phase_name(s.phase), s.dump_n,
	       dumper_alive	  ? "running"
	       : s.dump_exit == 0 ? "done"
				  : "not running",
	       written, (unsigned long long)s.files_applied, lag, (unsigned long long)s.items_sent,
	       rate, s.cycles, s.verify_ratio, secs, s.error[0] ? "; error: " : "", s.error);
	return 0;
}
