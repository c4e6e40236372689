#!/usr/bin/env bash
# The seed's command line. Only `endpoint` is added, to reach a local Kinesis instead of AWS:
#   KINESIS_ENDPOINT=http://127.0.0.1:4567 bash examples/cli.sh
# Extra options are passed on (e.g. --dry-run to only check it). See agent.sh for which
# kinesis-bit runs.
set -euo pipefail
. "$(dirname "$0")/agent.sh"
exec "$KB" -i cpu -o kinesis_streams -p stream=my-stream -p region=us-west-2 \
  -p "endpoint=${KINESIS_ENDPOINT}" -m '*' -f 1 "$@"
