#!/usr/bin/env bash
# Runs one of the configuration examples against a local Kinesis:
#   KINESIS_ENDPOINT=http://127.0.0.1:4567 bash examples/run.sh examples/kinesis.conf
#   KINESIS_ENDPOINT=http://127.0.0.1:4567 bash examples/run.sh examples/kinesis.yaml
# Extra options are passed on (e.g. --dry-run to only check it). See agent.sh for which
# kinesis-bit runs.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: KINESIS_ENDPOINT=URL bash examples/run.sh FILE [OPTION...]" >&2
  echo "  FILE: examples/kinesis.conf or examples/kinesis.yaml" >&2
  exit 1
fi
. "$(dirname "$0")/agent.sh"
file=$1
shift
exec "$KB" -c "$file" "$@"
