#!/usr/bin/env bash
# The whole test suite: format, lints, unit, integration and end-to-end tests against the real
# Kinesis-compatible peers (installed first; see docs/test-peers.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
# One clean build: incremental caches would only add gigabytes that are never reused.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | sed 's/^/disk before build: /'
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
df -h . | sed 's/^/disk after tests: /'
