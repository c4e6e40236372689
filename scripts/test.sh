#!/usr/bin/env bash
# The whole test suite: format, lints, unit, integration and end-to-end tests against the real
# Kinesis-compatible peers (installed first; see shared/spec/test-peers.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
