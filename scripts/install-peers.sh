#!/usr/bin/env bash
# Installs the Kinesis-compatible test peers of docs/test-peers.md into $PEERS
# (default ~/.cache/kinesis-bit-peers; kb-testkit finds them there, or under $KB_PEERS):
#   ferrokinesis 0.7.0 (crates.io, built from source), kinesis-local 0.6.2 (npm),
#   moto[server] 5.2.5 (PyPI, in a venv); and two Python clients the tests check against:
#   fluent-logger 0.11.1 (Forward protocol), prometheus_client 0.21.1 (Prometheus text parser).
# Idempotent: every step is skipped when its result is already present. Cache $PEERS in CI.
# Runs as root, or as a normal user with sudo for the apt step.
set -euo pipefail

PEERS="${PEERS:-${KB_PEERS:-$HOME/.cache/kinesis-bit-peers}}"
FERRO_VERSION=0.7.0
KINESIS_LOCAL_VERSION=0.6.2
MOTO_VERSION=5.2.5
FLUENT_LOGGER_VERSION=0.11.1
PROMETHEUS_CLIENT_VERSION=0.21.1

log() { echo "install-peers: $*" >&2; }

# --- system packages (only the missing ones; apt-get update only when something is missing) ---
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
[ -e /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
# node/npm may come from NodeSource (its nodejs bundles npm; Debian's npm package would conflict)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3)
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
# the systemd input's tests: journald's export-to-journal converter, and libsystemd (dlopen'ed)
[ -x /lib/systemd/systemd-journal-remote ] || [ -x /usr/lib/systemd/systemd-journal-remote ] ||
  need+=(systemd-journal-remote)
[ -n "$(/sbin/ldconfig -p 2>/dev/null | grep 'libsystemd\.so\.0 ')" ] || need+=(libsystemd0)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "install-peers: cargo not found: install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi

mkdir -p "$PEERS"

# --- ferrokinesis: compiles from source (~6-7 min on 2 cores) ---
# Not --quiet: cargo's progress (a bar on a terminal, one line per crate in CI logs) shows that
# the minutes of compiling are not a hang.
if [ ! -x "$PEERS/ferrokinesis/bin/ferrokinesis" ]; then
  log "building ferrokinesis $FERRO_VERSION from source, once: about 7 minutes on 2 cores"
  started=$SECONDS
  CARGO_TARGET_DIR="$PEERS/ferrokinesis-target" \
    cargo install --locked "ferrokinesis@$FERRO_VERSION" --root "$PEERS/ferrokinesis"
  took=$((SECONDS - started))
  log "ferrokinesis built in $((took / 60)) min $((took % 60)) s"
fi
# the build directory is only a cache (~450 MB): drop it once the binary is installed
rm -rf "$PEERS/ferrokinesis-target"

# --- kinesis-local (kinesis-mock, Scala.js build): one package, no dependencies ---
KL="$PEERS/kinesis-local/node_modules/kinesis-local"
if [ ! -f "$KL/main.js" ] || ! grep -q "\"version\" *: *\"$KINESIS_LOCAL_VERSION\"" "$KL/package.json" 2>/dev/null; then
  log "installing kinesis-local $KINESIS_LOCAL_VERSION"
  mkdir -p "$PEERS/kinesis-local"
  (cd "$PEERS/kinesis-local" &&
    npm install --silent --no-audit --no-fund --no-update-notifier "kinesis-local@$KINESIS_LOCAL_VERSION" >/dev/null)
fi

# --- moto server, in its own venv ---
if [ ! -x "$PEERS/moto/bin/moto_server" ]; then
  log "installing moto[server] $MOTO_VERSION (about a minute)"
  rm -rf "$PEERS/moto"
  python3 -m venv "$PEERS/moto"
  "$PEERS/moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# --- fluent-logger: an independent Forward-protocol client for the forward input's tests ---
if [ ! -x "$PEERS/fluent/bin/python" ] || ! "$PEERS/fluent/bin/python" -c 'import fluent.sender' 2>/dev/null; then
  log "installing fluent-logger $FLUENT_LOGGER_VERSION"
  rm -rf "$PEERS/fluent"
  python3 -m venv "$PEERS/fluent"
  "$PEERS/fluent/bin/pip" install --quiet --disable-pip-version-check "fluent-logger==$FLUENT_LOGGER_VERSION"
fi

# --- prometheus_client: the reference parser of the Prometheus text format, for the tests of
# the monitoring server's /api/v1/metrics/prometheus ---
if [ ! -x "$PEERS/prometheus/bin/python" ] ||
  ! "$PEERS/prometheus/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('prometheus_client') != '$PROMETHEUS_CLIENT_VERSION')" 2>/dev/null; then
  log "installing prometheus_client $PROMETHEUS_CLIENT_VERSION"
  rm -rf "$PEERS/prometheus"
  python3 -m venv "$PEERS/prometheus"
  "$PEERS/prometheus/bin/pip" install --quiet --disable-pip-version-check "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
fi

log "peers ready in $PEERS"
