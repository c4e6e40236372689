#!/usr/bin/env bash
# The seed's command line. Only `endpoint` is added, to reach a local Kinesis instead of AWS:
#   KINESIS_ENDPOINT=http://127.0.0.1:4567 bash examples/cli.sh
set -euo pipefail
exec "${KINESIS_BIT:-kinesis-bit}" -i cpu -o kinesis_streams -p stream=my-stream -p region=us-west-2 \
  -p "endpoint=${KINESIS_ENDPOINT}" -m '*' -f 1
