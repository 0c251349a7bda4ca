"""Filters for warm-replica.yml: the pairs of a replica file, and the report.

A replica file names source nodes, destination nodes and a shape; this turns it into
*volumes* (one per source node: the source host writes it with `mcwarm-ctl warm --side rw`;
with backend s3, the prefix <s3.url>/<name>/<source host_port>/ in an object store)
and *pairs* (one per reader of a volume: a populator host runs `mcwarm-ctl warm --side ro`
into one destination). Every path, tag and option of both halves is decided here, from
the file alone, so a run started again computes the same work directories and finds its
earlier state: that is what makes the playbook converge.

    replica  N -> N   source i  -> destination i, the whole cache
    replace  N -> 1   every source dumps with --ring KIND --nodes RING --keep NEW; the new
                      node's populator reads every source volume
    resize   N -> M   every source dumps with --ring-from OLD --ring-to NEW (one group per
                      new owner); each new owner's populator reads its group <host>_<port>
                      from every source volume (several read-only halves on one host) but
                      its own
"""
import json
import re

SHAPES = ("replica", "replace", "resize")
BACKENDS = ("loop", "dir", "ec2", "s3")
S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")


class ReplicaError(Exception):
    pass


def _slug(addr):
    """A memcached address (or ring name) as a file name: what mcwarm calls a group
    directory (host and port, '/' and ':' made '_', weight dropped)."""
    return re.sub(r"[/:]", "_", str(addr).split("=")[0])


def _node(entry, what, i):
    if not isinstance(entry, dict) or not entry.get("host") or not entry.get("memcached"):
        raise ReplicaError("%s[%d]: needs host (an inventory host) and memcached "
                           "(HOST:PORT)" % (what, i))
    if not re.match(r"^[^\s:/]+:\d+$", str(entry["memcached"])):
        raise ReplicaError("%s[%d]: memcached '%s' is not HOST:PORT" %
                           (what, i, entry["memcached"]))
    return entry


def _ring_list(value, what):
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not value or not isinstance(value, list):
        raise ReplicaError("%s: a list of ring nodes, in the clients' order" % what)
    return [str(v) for v in value]


def _common_args(r):
    args = []
    for key, opt in (("size", "--size"), ("memory", "--memory"), ("threads", "--threads")):
        if r.get(key) is not None:
            args += [opt, str(r[key])]
    return args


def _volume_args(r, src_slug):
    """--backend/--volume (and ec2 options) naming source's volume on both sides."""
    backend = r.get("backend", "loop")
    name = "%s-%s" % (r["name"], src_slug)
    if backend == "s3":
        # mcwarm-ctl puts the dump of source S under <--volume>/<S's host_port>/
        base = "%s/%s" % (_s3_url(r), r["name"])
        return ["--backend", "s3", "--volume", base], "%s/%s" % (base, src_slug)
    if backend == "ec2":
        ec2 = r.get("ec2") or {}
        args = ["--backend", "ec2", "--tag", name]
        for key in ("region", "zone", "iops"):
            if ec2.get(key) is not None:
                args += ["--" + key, str(ec2[key])]
        return args, name
    where = r.get("volume_dir")
    if not where:
        raise ReplicaError("backend %s: volume_dir (where the volumes live, seen by the "
                           "source and every populator host) is missing" % backend)
    path = "%s/%s%s" % (where.rstrip("/"), name, ".img" if backend == "loop" else "")
    return ["--backend", backend, "--volume", path], path


def _s3_url(r):
    """backend s3: s3: {url: s3://BUCKET/PREFIX}, nothing else. Credentials and the
    endpoint come from each host's environment the AWS way (the role passes
    mcwarm_environment through), never from the replica file."""
    s3 = r.get("s3")
    if not isinstance(s3, dict) or not s3.get("url"):
        raise ReplicaError("backend s3: s3: {url: s3://BUCKET/PREFIX} is missing")
    extra = sorted(k for k in s3 if k != "url")
    if extra:
        raise ReplicaError("s3: only url, not %s (credentials, region and endpoint come "
                           "from each host's environment the AWS way: the instance role, "
                           "~/.aws, or the playbook's mcwarm_environment; a secret never "
                           "goes in the replica file)" % ", ".join(extra))
    url = str(s3["url"]).rstrip("/")
    if not S3_URL.match(url):
        raise ReplicaError("s3.url: '%s' is not s3://BUCKET/PREFIX" % url)
    return url


SECURITY_KEYS = (("ca", "tls-ca"), ("cert", "tls-cert"), ("key", "tls-key"),
                 ("server_name", "tls-server-name"), ("auth_file", "auth-file"))


def _security_args(r, key, prefix):
    """source_security / dest_security: TLS (memcached -Z) and authentication (-Y) of one
    side, as mcwarm-ctl's --tls... --auth-file (prefix "") or --dest-tls... --dest-auth-file
    (prefix "dest-"). Files are named, never their contents: they must be on every host
    that runs a half of that side (and auth_file readable by its user only)."""
    sec = r.get(key)
    if sec is None:
        return []
    known = ("tls",) + tuple(k for k, _ in SECURITY_KEYS)
    if not isinstance(sec, dict) or any(k not in known for k in sec):
        raise ReplicaError("%s: a mapping of %s (a password goes in the file auth_file "
                           "names, never in the replica file)" % (key, ", ".join(known)))
    args = ["--%stls" % prefix] if sec.get("tls") else []
    for k, opt in SECURITY_KEYS:
        if sec.get(k):
            if k != "server_name" and not str(sec[k]).startswith("/"):
                raise ReplicaError("%s.%s: an absolute path on the hosts, not '%s'" %
                                   (key, k, sec[k]))
            args += ["--%s%s" % (prefix, opt), str(sec[k])]
    if not sec.get("tls") and len(args) > (2 if sec.get("auth_file") else 0):
        raise ReplicaError("%s: ca, cert, key and server_name need tls: true" % key)
    return args


def _instance(entry, key, opt):
    """ec2: the instance the volume attaches to on this side (mcwarm-ctl --instance-rw or
    --instance-ro), when the replica file gives it."""
    return [opt, str(entry[key])] if entry.get(key) else []


def _filters(r, shape, sources, dests):
    """(filter args for dump and verify, ring name of each destination or None)."""
    if shape == "replica":
        if len(sources) != len(dests):
            raise ReplicaError("shape replica: %d sources but %d destinations (pair by pair)"
                               % (len(sources), len(dests)))
        return [], [None] * len(dests)
    kind = r.get("ring")
    if not kind:
        raise ReplicaError("shape %s: ring (the clients' ring kind, as mcwarm dump --ring) "
                           "is missing" % shape)
    names = [str(d.get("ring_name") or d["memcached"]) for d in dests]
    if shape == "replace":
        if len(dests) != 1:
            raise ReplicaError("shape replace: one destination (the new node), not %d"
                               % len(dests))
        nodes = _ring_list(r.get("ring_nodes"), "ring_nodes")
        if names[0] not in nodes:
            raise ReplicaError("shape replace: the new node %s is not in ring_nodes"
                               % names[0])
        return ["--ring", kind, "--nodes", ",".join(nodes), "--keep", names[0]], names
    ring_from = _ring_list(r.get("ring_from") or [s.get("ring_name") or s["memcached"]
                                                  for s in sources], "ring_from")
    ring_to = _ring_list(r.get("ring_to") or names, "ring_to")
    missing = [n for n in names if n not in ring_to]
    if missing:
        raise ReplicaError("shape resize: destinations %s are not in ring_to"
                           % ", ".join(missing))
    return ["--ring", kind, "--ring-from", ",".join(ring_from), "--ring-to",
            ",".join(ring_to)], names


def mcwarm_plan(r):
    """The replica file r (a dict) as {volumes: [...], pairs: [...], hosts: [...]}.
    Raises ReplicaError (shown by Ansible as the task's failure) when the file is wrong."""
    if not isinstance(r, dict):
        raise ReplicaError("the replica file is not a YAML mapping")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", str(r.get("name", ""))):
        raise ReplicaError("name: letters, digits, '.', '_' and '-' (it names volumes and "
                           "work directories)")
    shape = r.get("shape", "replica")
    if shape not in SHAPES:
        raise ReplicaError("shape: one of %s, not '%s'" % (", ".join(SHAPES), shape))
    if r.get("backend", "loop") not in BACKENDS:
        raise ReplicaError("backend: one of %s" % ", ".join(BACKENDS))
    sources = [_node(s, "sources", i) for i, s in enumerate(r.get("sources") or [])]
    dests = [_node(d, "destinations", i) for i, d in enumerate(r.get("destinations") or [])]
    if not sources or not dests:
        raise ReplicaError("sources and destinations: at least one each")
    addrs = [s["memcached"] for s in sources]
    if len(set(addrs)) != len(addrs):
        raise ReplicaError("sources: a memcached address is listed twice")
    filters, ring_names = _filters(r, shape, sources, dests)
    work = str(r.get("work_dir", "/var/lib/mcwarm")).rstrip("/") + "/" + r["name"]
    common = _common_args(r)
    extra_ro = ["--min-ratio", str(r["min_ratio"])] if r.get("min_ratio") is not None else []
    src_sec = _security_args(r, "source_security", "")
    dst_sec = _security_args(r, "dest_security", "dest-")
    rw_extra = [str(a) for a in r.get("rw_options") or []]
    ro_extra = [str(a) for a in r.get("ro_options") or []]
    volumes, pairs = [], []
    for i, s in enumerate(sources):
        sslug = _slug(s["memcached"])
        vargs, vname = _volume_args(r, sslug)
        rw_work = "%s/rw-%s" % (work, sslug)
        vol = dict(id=sslug, volume=vname, source=s["memcached"], host=s["host"],
                   work=rw_work, readers=[], vol_argv=vargs,
                   release_argv=["release", "--work", rw_work] +
                   (["--keep"] if r.get("keep") else []),
                   rw_argv=["warm", "--side", "rw", "--source", s["memcached"], "--work",
                            rw_work] + vargs + _instance(s, "instance", "--instance-rw") +
                   common + filters + src_sec + rw_extra + ["--json"])
        targets = [(i, dests[i])] if shape == "replica" else list(enumerate(dests))
        if shape == "resize":  # a node's own group of its own dump is empty: the keys
            # that stay with it are not dumped
            targets = [(j, d) for j, d in targets if d["memcached"] != s["memcached"]]
        for j, d in targets:
            dslug = _slug(d["memcached"])
            ro_work = "%s/ro-%s-to-%s" % (work, sslug, dslug)
            group = ["--group", _slug(ring_names[j])] if shape == "resize" else []
            pair = dict(id="%s>%s" % (s["memcached"], d["memcached"]), volume=vname,
                        volume_id=sslug, source=s["memcached"], source_host=s["host"],
                        dest=d["memcached"], populator=d.get("populator") or d["host"],
                        work=ro_work, rw_work=rw_work, vol_argv=vargs,
                        ro_argv=["warm", "--side", "ro", "--source", s["memcached"],
                                 "--dest", d["memcached"], "--work", ro_work] + vargs +
                        _instance(d, "populator_instance" if d.get("populator") else "instance",
                                  "--instance-ro") + common + group + filters + extra_ro +
                        src_sec + dst_sec + ro_extra + ["--json"])
            pairs.append(pair)
            vol["readers"].append(pair["id"])
        volumes.append(vol)
    hosts = sorted({v["host"] for v in volumes} | {p["populator"] for p in pairs})
    return dict(name=r["name"], shape=shape, volumes=volumes, pairs=pairs, hosts=hosts)


def mcwarm_halves_to_start(items, argv_key, ctl, extra, metrics_dir=""):
    """What halves.py start takes: each volume's or pair's work and its command line; with
    metrics_dir, each half writes METRICS_DIR/mcwarm-<its work directory's name>.prom."""
    def metrics(work):
        if not metrics_dir:
            return []
        return ["--metrics-file", "%s/mcwarm-%s.prom" % (str(metrics_dir).rstrip("/"),
                                                        work.rstrip("/").rsplit("/", 1)[-1])]
    return [dict(work=i["work"], argv=list(ctl) + i[argv_key] + list(extra) + metrics(i["work"]))
            for i in items]


def mcwarm_halves_to_stop(pairs, ctl, extra):
    """What halves.py stop takes: each reader, and then the same half once more with
    nothing to wait for, so that it ends through its own failure path, which unmounts and
    detaches this host's read-only attachment and keeps its journal for a later run."""
    return [dict(work=p["work"], after=[ctl] + p["ro_argv"] + list(extra) +
                 ["--wait-volume", "1", "--idle-timeout", "1"]) for p in pairs]


def _states(result):
    """{work: state} from one halves.py wait task result ({} when it did not answer)."""
    try:
        return json.loads(result.get("stdout") or "{}").get("halves", {})
    except (AttributeError, ValueError):
        return {}


def _trouble(result, where):
    """Why a halves.py task on a host gave no answer, or None."""
    if not result:
        return "%s: no answer (its host was unreachable or the play stopped)" % where
    if result.get("unreachable"):
        return "%s: unreachable: %s" % (where, result.get("msg", ""))
    if result.get("rc") not in (0, None) or result.get("failed"):
        err = (result.get("stderr") or result.get("msg") or "").strip().splitlines()
        return "%s: %s" % (where, err[-1] if err else "failed")
    return None


def mcwarm_failed_sources(pairs, rw_wait):
    """The pairs whose source half ended without success (or never reported)."""
    states = _states(rw_wait)
    return [p for p in pairs if (states.get(p["rw_work"]) or {}).get("rc") != 0]


def mcwarm_collect(volumes, pairs, rw_wait, ro_started, ro_wait, released):
    """One source host's results, {volume id: {rw: half, ro: {pair id: half}, release:
    {rc, stderr}}}; a half is halves.py's state of it, or {error} when nobody could
    say."""
    out = {}
    rw_states, rw_trouble = _states(rw_wait), _trouble(rw_wait, "source host")
    ro_states, ro_trouble = {}, {}
    for results in (ro_started, ro_wait):
        for r in (results or {}).get("results", []):
            host = r["item"][0]
            trouble = _trouble(r, "populator host %s" % host)
            if trouble:
                ro_trouble.setdefault(host, trouble)
            ro_states.update(_states(r))
    rel = {r["item"]["id"]: r for r in (released or {}).get("results", [])}
    for v in volumes:
        out[v["id"]] = dict(rw=rw_states.get(v["work"]) or dict(error=rw_trouble), ro={},
                            release=rel.get(v["id"]))
    for p in pairs:
        out[p["volume_id"]]["ro"][p["id"]] = ro_states.get(p["work"]) or dict(
            error=ro_trouble.get(p["populator"]) or "no answer from populator host %s" %
            p["populator"])
    return out


def _why(half, what):
    """The failing half's own words: its report's error, else its last line on stderr."""
    if not half:
        return "%s half: no result (its host was unreachable or the play stopped)" % what
    if half.get("error"):
        return "%s half: %s" % (what, half["error"])
    if half.get("running"):
        return "%s half: still running when the wait gave up (mcwarm_timeout_s)" % what
    report = half.get("report") or {}
    words = report.get("error") or (half.get("stderr") or [""])[-1].strip()
    if half.get("rc") is None:
        return "%s half: ended without an exit status (killed?) %s" % (what, words)
    return "%s half (exit %s): %s" % (what, half.get("rc"), words)


def _release_error(rel):
    if not rel:
        return "release: not run"
    err = (rel.get("stderr") or rel.get("msg") or "").strip().splitlines()
    return "release (exit %s): %s" % (rel.get("rc"), err[-1] if err else "")


def mcwarm_rows(plan, results):
    """One report row per pair. results: a list of what mcwarm_collect returned on each
    source host."""
    merged = {}
    for r in results or []:
        merged.update(r or {})
    rows = []
    for p in plan["pairs"]:
        got = merged.get(p["volume_id"]) or {}
        rw, ro = got.get("rw"), (got.get("ro") or {}).get(p["id"])
        release = got.get("release")
        row = dict(pair=p["id"], source=p["source"], dest=p["dest"],
                   populator=p["populator"], volume=p["volume"], ok=False, items=None,
                   bytes=None, seconds=None, verify_ratio=None, exit_code=None, error="")
        rj, sj = (ro or {}).get("report") or {}, (rw or {}).get("report") or {}
        row.update(items=rj.get("items_sent", rj.get("items")),
                   bytes=rj.get("bytes_sent", rj.get("bytes")),
                   seconds=rj.get("total_seconds", rj.get("seconds")),
                   verify_ratio=rj.get("verify_ratio"), exit_code=(ro or {}).get("rc"),
                   already_present=rj.get("already_present"),
                   dump_seconds=sj.get("dump_seconds"), dump_attempt=sj.get("dump_attempt"))
        if not rw or rw.get("rc") != 0:
            row["error"] = _why(rw, "source")
        elif not ro or ro.get("rc") != 0:
            row["error"] = _why(ro, "populator")
        elif not release or release.get("rc") != 0:
            row["error"] = _release_error(release)
        else:
            row["ok"] = True
        rows.append(row)
    return rows


def mcwarm_table(rows):
    """The rows as a fixed-width text table, failures last, with a closing count."""
    head = ("pair", "items", "bytes", "seconds", "verify", "error")

    def cell(v, fmt="%s"):
        return "-" if v is None else fmt % v
    lines = [(r["pair"], cell(r["items"]), cell(r["bytes"]), cell(r["seconds"], "%.1f"),
              cell(r["verify_ratio"], "%.4f"), r["error"] or "ok")
             for r in sorted(rows, key=lambda r: (not r["ok"], r["pair"]))]
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head) - 1)]
    out = []
    for x in [head] + lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(x, widths)) + "  " + x[-1])
    good = sum(1 for r in rows if r["ok"])
    out.append("%d of %d pairs warmed%s" % (good, len(rows), "" if good == len(rows)
                                           else ": the run is NOT whole"))
    return out


class FilterModule:
    def filters(self):
        return dict(mcwarm_plan=mcwarm_plan, mcwarm_halves_to_start=mcwarm_halves_to_start,
                    mcwarm_halves_to_stop=mcwarm_halves_to_stop,
                    mcwarm_failed_sources=mcwarm_failed_sources, mcwarm_collect=mcwarm_collect,
                    mcwarm_rows=mcwarm_rows, mcwarm_table=mcwarm_table)
