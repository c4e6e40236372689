#!/usr/bin/env bash
# The main job: ship logs to a local Kinesis-compatible stream and show them arriving.
# Installs the peers, builds kinesis-bit, starts ferrokinesis on a free loopback port, creates a
# stream, runs the seed's command line (CPU usage every second) for DEMO_SECONDS (default 5),
# then reads the stream back with GetRecords and prints every record.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-peers.sh
PEERS="${PEERS:-${KB_PEERS:-$HOME/.cache/kinesis-bit-peers}}"
cargo build --release --locked -p kinesis-bit
KB=./target/release/kinesis-bit

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PEERS/ferrokinesis/bin/ferrokinesis" --port "$PORT" --create-stream-ms 50 --log-level warn \
  >"$WORK/ferrokinesis.log" 2>&1 &
FERRO=$!
trap 'kill $FERRO 2>/dev/null || true; rm -rf "$WORK"' EXIT
until curl -sf "http://127.0.0.1:$PORT/_health/ready" >/dev/null; do sleep 0.05; done
ENDPOINT="http://127.0.0.1:$PORT"

# Kinesis JSON API by hand: the emulator does not check signatures, only their presence.
kds() {
  curl -s "$ENDPOINT/" -H 'Content-Type: application/x-amz-json-1.1' \
    -H "X-Amz-Target: Kinesis_20131202.$1" -H 'X-Amz-Date: 20260101T000000Z' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=AKIDDEMO/20260101/us-west-2/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00' \
    -d "$2"
}
kds CreateStream '{"StreamName":"my-stream","ShardCount":1}' >/dev/null
until kds DescribeStreamSummary '{"StreamName":"my-stream"}' | grep -q '"ACTIVE"'; do sleep 0.05; done
echo "== stream my-stream is ACTIVE on $ENDPOINT"

echo "== running: kinesis-bit -i cpu -o kinesis_streams -p stream=my-stream -p region=us-west-2 -p endpoint=$ENDPOINT -m '*' -f 1"
AWS_ACCESS_KEY_ID=AKIDDEMO AWS_SECRET_ACCESS_KEY=demo \
  $KB -i cpu -o kinesis_streams -p stream=my-stream -p region=us-west-2 -p "endpoint=$ENDPOINT" -m '*' -f 1 &
AGENT=$!
sleep "${DEMO_SECONDS:-5}"
kill -TERM $AGENT
wait $AGENT

echo "== records read back from my-stream with GetRecords:"
ITER=$(kds GetShardIterator '{"StreamName":"my-stream","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["ShardIterator"])')
kds GetRecords "{\"ShardIterator\":\"$ITER\"}" | python3 -c '
import base64, json, sys
recs = json.load(sys.stdin)["Records"]
for r in recs:
    print(r["PartitionKey"], base64.b64decode(r["Data"]).decode(), end="")
print(f"== {len(recs)} records")
'
