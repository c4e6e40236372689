#!/usr/bin/env bash
# Stalled-sink run (issue 5): builds the release agent and kb-sink, then runs bench/stall-run.py.
# Usage: bash bench/stall-run.sh [--records N] [--stall SECONDS] [--limits MIB,MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kinesis-bit -p kb-testkit --bin kinesis-bit --bin kb-sink
exec python3 bench/stall-run.py "$@"
