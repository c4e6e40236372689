#!/usr/bin/env bash
# End-to-end benchmark (issue 6): builds the release agent and kb-sink, then runs bench/e2e.py.
# Usage: bash bench/e2e.sh [--output kinesis_streams|kinesis_firehose|kinesis|firehose]
#        [--protocol json,cbor] [--filters] [--records N] [--size B] [--workers W] [--reps R] [--scaling]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { echo "needs openssl (apt-get install openssl)" >&2; exit 1; }
cargo build --release --locked -p kinesis-bit -p kb-testkit --bin kinesis-bit --bin kb-sink
exec python3 bench/e2e.py "$@"
