#!/usr/bin/env bash
# The main job on one machine: installs what is missing, builds mcwarm, starts a source
# memcached on a free loopback port, fills it with a demo dataset, dumps it with
# `mcwarm dump`, checks the chunk files with `mcwarm inspect`, and prints what it did.
# Everything it starts or writes is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null

BIN=build/release
work=$(mktemp -d /tmp/mcwarm-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
user_args=()
[ "$(id -u)" -eq 0 ] && user_args=(-u root)

src_port=$(free_port)
memcached -p "$src_port" -U 0 -l 127.0.0.1 -m 1024 -t 2 "${user_args[@]}" &
pids+=($!)
for _ in $(seq 50); do
	(echo > "/dev/tcp/127.0.0.1/$src_port") 2>/dev/null && break
	sleep 0.1
done

echo "== source memcached on 127.0.0.1:$src_port; loading the demo dataset"
"$BIN/bench/mcw-load" --dest "127.0.0.1:$src_port" --dataset demo

echo "== mcwarm dump"
"$BIN/core/mcwarm" dump --source "127.0.0.1:$src_port" --out "$work/dump" --json > "$work/dump.json"
cat "$work/dump.json"

echo "== mcwarm inspect (every block and checksum of every chunk file)"
"$BIN/core/mcwarm" inspect "$work"/dump/*.mcw > "$work/inspect.txt"
grep -c "crc ok" "$work/inspect.txt" | sed 's/^/blocks verified: /'
grep "result:" "$work/inspect.txt" | sort | uniq -c | sed 's/^/files: /'
echo "== the dump's manifest"
head -9 "$work/dump/MANIFEST"
echo "== done: $(ls "$work"/dump/*.mcw | wc -l) chunk files, DONE marker present: $([ -f "$work/dump/DONE" ] && echo yes)"
