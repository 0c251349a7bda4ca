#!/usr/bin/env bash
# The main job on one machine: installs what is missing, builds mcwarm, starts a source
# and a destination memcached on free loopback ports, fills the source with a demo
# dataset (300,000 items), and runs the whole warm-up with `mcwarm-ctl warm`: a loop
# volume (the dumper writes it mounted read-write, the populator reads it mounted
# read-only and remounts to see new files, as on EBS multi-attach), dump and populate at
# the same time, then `mcwarm verify`. Where this machine cannot use loop devices (not
# root, no loop module) it says so and uses a plain directory instead. Prints the verify
# result and the timings; removes everything it started or wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null

BIN=$PWD/build/release
work=$(mktemp -d /var/tmp/mcwarm-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# a warm-up interrupted here (Ctrl-C) leaves its volume: take it down
	if [ -f "$work/ctl.state" ]; then
		"$BIN/ctl/mcwarm-ctl" destroy --work "$work" --backend "${backend:-dir}" \
			--source "127.0.0.1:${src_port:-0}" --dest "127.0.0.1:${dst_port:-0}" \
			>/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start_memcached() {
	local user_args=()
	[ "$(id -u)" -eq 0 ] && user_args=(-u root)
	memcached -p "$1" -U 0 -l 127.0.0.1 -m 1024 -t 2 "${user_args[@]}" &
	pids+=($!)
	for _ in $(seq 50); do
		(echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "memcached on port $1 did not start" >&2
	return 1
}

# loop volumes need root, the loop module and a mountable filesystem: try them for real
backend=loop
probe="$work/probe"
if [ "$(id -u)" -ne 0 ]; then
	echo "== not root: loop devices and mounts are out of reach; using a plain directory"
	backend=dir
elif ! err=$("$BIN/ctl/mcwarm-ctl" create --work "$probe" --size 512M 2>&1 &&
	"$BIN/ctl/mcwarm-ctl" attach --work "$probe" 2>&1 &&
	"$BIN/ctl/mcwarm-ctl" mkfs --work "$probe" 2>&1 &&
	"$BIN/ctl/mcwarm-ctl" mount --work "$probe" 2>&1); then
	echo "== this machine cannot use loop volumes ($(echo "$err" | tail -1)): using a plain directory"
	backend=dir
fi
[ -d "$probe" ] && { "$BIN/ctl/mcwarm-ctl" destroy --work "$probe" >/dev/null 2>&1 || true; rm -rf "$probe"; }

src_port=$(free_port)
start_memcached "$src_port"
dst_port=$(free_port)
start_memcached "$dst_port"
echo "== source memcached on 127.0.0.1:$src_port, destination on 127.0.0.1:$dst_port"
echo "== loading the demo dataset into the source"
"$BIN/bench/mcw-load" --dest "127.0.0.1:$src_port" --dataset demo

echo "== mcwarm-ctl warm (backend: $backend)"
set +e
"$BIN/ctl/mcwarm-ctl" warm --source "127.0.0.1:$src_port" --dest "127.0.0.1:$dst_port" \
	--work "$work" --backend "$backend" --min-ratio 1 --json > "$work/warm.json"
code=$?
set -e
echo "== report"
cat "$work/warm.json"
python3 - "$work/warm.json" "$work/verify.json" <<'EOF'
import json, sys
w = json.load(open(sys.argv[1]))
try:
    v = json.loads(open(sys.argv[2]).read().splitlines()[-1])
except (OSError, ValueError, IndexError):
    v = {}
print("verify: %s items compared, %s equal, warm ratio %.6f" % (
    v.get("checked", "?"), v.get("equal", "?"), w["verify_ratio"]))
if v.get("equal") != v.get("checked"):
    # what the differences were, so that a failed demo says why before its files go
    print("verify differences: %s" % ", ".join("%s %s" % (k, v.get(k, "?")) for k in (
        "missing", "value_differs", "flags_differ", "ttl_differs", "expired")))
    for kind, keys in (v.get("mismatches") or {}).items():
        print("  %s, e.g.: %s" % (kind, str(keys)[:300]))
print("timings: dump %.2f s; populate overlapped the dump by %.2f s; whole warm-up "
      "(volume, dump, populate, verify, teardown) %.2f s" % (
          w["dump_seconds"], w["overlap_seconds"], w["total_seconds"]))
print("result: %s" % ("warm-up complete" if w["ok"] else "warm-up FAILED"))
EOF
exit "$code"
