#!/usr/bin/env bash
# Fault run (issue 5): builds the release agent and kb-sink, then runs bench/fault-run.py.
# Usage: bash bench/fault-run.sh [--records N] [--seed S] [--protocol json|cbor]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kinesis-bit -p kb-testkit --bin kinesis-bit --bin kb-sink
exec python3 bench/fault-run.py "$@"
