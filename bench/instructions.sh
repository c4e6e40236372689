#!/usr/bin/env bash
# Instructions per record under callgrind (issue 6): builds the agent with symbols and kb-sink,
# then runs bench/instructions.py on the given agents (default: the profiling build).
# Usage: bash bench/instructions.sh [--records N] [--input tail|dummy] [AGENT...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl (apt-get install openssl)" >&2; exit 1; }
cargo build --profile profiling --locked -p kinesis-bit --bin kinesis-bit
cargo build --release --locked -p kb-testkit --bin kb-sink
agents=()
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --records|--top|--input) opts+=("$1" "$2"); shift 2 ;;
    *) agents+=("$1"); shift ;;
  esac
done
[ ${#agents[@]} -gt 0 ] || agents=(target/profiling/kinesis-bit)
exec python3 bench/instructions.py "${opts[@]}" "${agents[@]}"
