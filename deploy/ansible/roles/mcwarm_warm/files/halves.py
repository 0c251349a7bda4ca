"""Starts, watches and stops mcwarm-ctl halves on one host, for warm-replica.yml (run by
the role with the host's python, as `python3 -c <this file> COMMAND JSON`).

A half runs detached from the SSH session that started it (its own session, output to
files), so it goes on when the control host goes away, and a later run finds it again.
Next to its work directory WORK it keeps:
    WORK.pid  the running half (a shell that runs mcwarm-ctl, then writes WORK.rc),
              written by start before anyone can look
    WORK.out  mcwarm-ctl's stdout (its JSON report), WORK.err its stderr
    WORK.rc   its exit status, written when it ends

    start [{"work": W, "argv": [...]}, ...]   start each half unless it is running
    wait  {"seconds": S, "works": [W, ...]}   block up to S seconds until every half has
                                              ended; print each one's state as JSON
    stop  [{"work": W, "after": [...]}, ...]  end each half (its process group), record
                                              exit 143, then run `after` (its cleanup)
"""
import json
import os
import signal
import subprocess
import sys
import time

RUNNER = '"$@"; echo $? >"$0.rc.tmp" && mv "$0.rc.tmp" "$0.rc"'
TAIL_LINES = 3


def running(work):
    """The pid of the half running in work, or None (a pid file can outlive its process,
    and a pid can be reused: the command line must name the same work directory)."""
    try:
        with open(work + ".pid") as f:
            pid = int(f.read().strip() or 0)
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return None  # ended, not reaped yet
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    if argv == [b""]:  # still in execve (the kernel shows no arguments until it is done)
        return pid
    return pid if b"--work" in argv and work.encode() in argv else None


def start(halves):
    out = {}
    for h in halves:
        work, pid = h["work"], running(h["work"])
        if pid:
            out[work] = dict(state="running", pid=pid)
            continue
        os.makedirs(os.path.dirname(work) or "/", exist_ok=True)
        for suffix in (".rc", ".rc.tmp"):
            if os.path.exists(work + suffix):
                os.unlink(work + suffix)
        with open(work + ".out", "wb") as o, open(work + ".err", "wb") as e:
            p = subprocess.Popen(["/bin/sh", "-c", RUNNER, work] + h["argv"],
                                 stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                 start_new_session=True, close_fds=True)
        with open(work + ".pid.tmp", "w") as f:  # whole or not at all for a reader
            f.write("%d\n" % p.pid)
        os.rename(work + ".pid.tmp", work + ".pid")
        out[work] = dict(state="started", pid=p.pid)
    return out


def tail(path, lines):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
            return f.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def state(work):
    try:
        with open(work + ".rc") as f:
            rc = int(f.read().strip())
    except (OSError, ValueError):
        rc = None
    alive = rc is None and running(work) is not None
    report = None
    for line in reversed(tail(work + ".out", 20)):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                pass
            break
    return dict(rc=rc, running=alive, ended=not alive, report=report,
                stderr=[l for l in tail(work + ".err", 20) if l.strip()][-TAIL_LINES:])


def wait(seconds, works):
    deadline = time.monotonic() + seconds
    while True:
        states = {w: state(w) for w in works}
        if all(s["ended"] for s in states.values()) or time.monotonic() >= deadline:
            return dict(done=all(s["ended"] for s in states.values()), halves=states)
        time.sleep(0.5)


def stop(halves):
    out = {}
    for h in halves:
        work, pid = h["work"], running(h["work"])
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(100):
                if running(work) is None:
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
            with open(work + ".rc", "w") as f:
                f.write("143\n")
            with open(work + ".err", "a") as f:
                f.write("stopped by the playbook: its source half failed\n")
        after = None
        if h.get("after") and os.path.isdir(work):
            p = subprocess.run(h["after"], capture_output=True, text=True)
            after = dict(rc=p.returncode, stderr=p.stderr[-2000:])
        out[work] = dict(stopped=bool(pid), after=after)
    return out


def main(argv):
    cmd, arg = argv[1], json.loads(argv[2])
    if cmd == "start":
        result = start(arg)
    elif cmd == "wait":
        result = wait(float(arg["seconds"]), arg["works"])
    elif cmd == "stop":
        result = stop(arg)
    else:
        print("halves: unknown command %s" % cmd, file=sys.stderr)
        return 64
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
