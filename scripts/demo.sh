#!/usr/bin/env bash
# The main job: build kinesis-bit and run a pipeline that collects CPU usage every second and
# prints it. Stops after DEMO_SECONDS (default 10) or on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked -p kinesis-bit
./target/release/kinesis-bit -i cpu -t cpu.local -o stdout -m '*' -f 1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
sleep "${DEMO_SECONDS:-10}" || true
kill -TERM $pid 2>/dev/null || true
wait $pid
