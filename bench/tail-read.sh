#!/usr/bin/env bash
# How fast the tail input reads a big file, next to `cat` of the same file (page cache warm):
# generates SIZE_MIB (default 1024) of ~1 KiB JSON lines, runs `tail → null` with a DB and
# times it until the DB offset reaches the end of the file. Prints MiB/s and the agent's CPU
# seconds. Usage: bash bench/tail-read.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
KB=./target/release/kinesis-bit
[ -x "$KB" ] || cargo build --release --locked -p kinesis-bit
WORK=$(mktemp -d)
AGENT=
trap '[ -n "$AGENT" ] && kill $AGENT 2>/dev/null; rm -rf "$WORK"' EXIT
python3 - "$WORK/big.log" "$SIZE_MIB" <<'PY'
import json, sys
path, mib = sys.argv[1], int(sys.argv[2])
base = {"kubernetes": {"pod_name": "web-7d9f8b-x2k4l", "namespace_name": "prod",
        "container_name": "web", "labels": {"app": "web", "tier": "frontend"}},
        "stream": "stdout", "time": "2026-11-27T23:50:00.123456789Z"}
size, n, target = 0, 0, mib << 20
with open(path, "w") as f:
    while size < target:
        rec = dict(base, seq=n, log="GET /api/v1/items/%d 200 " % n + "a" * 700)
        s = json.dumps(rec, separators=(",", ":")) + "\n"
        f.write(s); size += len(s); n += 1
PY
BYTES=$(stat -c %s "$WORK/big.log")
cat "$WORK/big.log" > /dev/null   # warm the page cache for both runs
T0=$(date +%s.%N); cat "$WORK/big.log" > /dev/null; T1=$(date +%s.%N)
CAT_T0=$T0; CAT_T1=$T1

T0=$(date +%s.%N)
$KB -q -i tail -p "path=$WORK/big.log" -p read_from_head=on -p "db=$WORK/tail.db" -o null -m '*' &
AGENT=$!
python3 - "$WORK/tail.db" "$BYTES" <<'PY'
import sqlite3, sys, time
db, want = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 600
while time.time() < deadline:
    try:
        row = sqlite3.connect(db).execute("select max(offset) from in_tail_files").fetchone()
        if row and row[0] is not None and row[0] >= want:
            sys.exit(0)
    except sqlite3.Error:
        pass
    time.sleep(0.02)
sys.exit("tail did not reach the end of the file in 600 s")
PY
T1=$(date +%s.%N)
read -r UT ST < <(awk '{print $14, $15}' /proc/$AGENT/stat)
TICKS=$(getconf CLK_TCK)
kill -TERM $AGENT; wait $AGENT || true
python3 - "$BYTES" "$CAT_T0" "$CAT_T1" "$T0" "$T1" "$UT" "$ST" "$TICKS" <<'PY'
import sys
b, c0, c1, t0, t1, ut, st, hz = map(float, sys.argv[1:])
mib = b / 1048576
print(f"file: {mib:.0f} MiB of ~1 KiB lines")
print(f"cat:          {c1 - c0:6.2f} s  {mib / (c1 - c0):8.1f} MiB/s")
cpu = (ut + st) / hz
print(f"tail -> null: {t1 - t0:6.2f} s  {mib / (t1 - t0):8.1f} MiB/s  "
      f"({cpu:.2f} CPU-s: user {ut / hz:.2f} + sys {st / hz:.2f}; {cpu / (mib / 1024):.2f} CPU-s per GiB)")
PY
