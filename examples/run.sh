#!/usr/bin/env bash
# Runs one of the configuration examples against a local Kinesis:
#   KINESIS_ENDPOINT=http://127.0.0.1:4567 bash examples/run.sh examples/kinesis.conf
#   KINESIS_ENDPOINT=http://127.0.0.1:4567 bash examples/run.sh examples/kinesis.yaml
#   FIREHOSE_ENDPOINT=http://127.0.0.1:5000 bash examples/run.sh examples/firehose.conf
#   (also examples/kinesis-go.conf and examples/firehose-go.conf, the Go plugins' configurations)
# Extra options are passed on (e.g. --dry-run to only check it). See agent.sh for which
# kinesis-bit runs.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: KINESIS_ENDPOINT=URL bash examples/run.sh FILE [OPTION...]" >&2
  echo "  FILE: examples/kinesis.conf, kinesis.yaml, firehose.conf, kinesis-go.conf or firehose-go.conf" >  echo "  FILE: examples/kinesis.conf or examples/kinesis.yaml" >&22
  exit 1
fi
. "$(dirname "$0")/agent.sh"
file=$1
shift
exec "$KB" -c "$file" "$@"
