#!/usr/bin/env bash
# Crash run (issue 5): builds the release agent and kb-sink, then runs bench/crash-run.py.
# Usage: bash bench/crash-run.sh [--records N] [--kills K] [--seed S]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kinesis-bit -p kb-testkit --bin kinesis-bit --bin kb-sink
exec python3 bench/crash-run.py "$@"
