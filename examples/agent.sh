# Sourced by the examples (not run on its own): finds the agent and checks what they need.
#
# The agent is $KINESIS_BIT when set, else this repository's release build
# (target/release/kinesis-bit), else kinesis-bit on PATH; it is put in $KB.

examples_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$examples_dir")
if [ -n "${KINESIS_BIT:-}" ]; then
  KB=$KINESIS_BIT
elif [ -x "$repo_dir/target/release/kinesis-bit" ]; then
  KB=$repo_dir/target/release/kinesis-bit
elif command -v kinesis-bit >/dev/null; then
  KB=kinesis-bit
else
  echo "examples: kinesis-bit not found. Build it with:" >&2
  echo "  (cd $repo_dir && cargo build --release)" >&2
  echo "or point KINESIS_BIT at a kinesis-bit binary." >&2
  exit 1
fi

# The Firehose examples read FIREHOSE_ENDPOINT, the others KINESIS_ENDPOINT.
endpoint=${KINESIS_ENDPOINT:-${FIREHOSE_ENDPOINT:-}}
if [ -z "$endpoint" ]; then
  echo "examples: KINESIS_ENDPOINT is not set: set it to the endpoint of a local Kinesis, e.g." >&2
  echo "  KINESIS_ENDPOINT=http://127.0.0.1:4567 bash $0 $*" >&2
  echo "(the Firehose examples take FIREHOSE_ENDPOINT instead)" >&2
  exit 1
fi

# A local emulator checks no signature, but the agent signs every request and needs some
# credentials for that: any will do. Real credentials, when set, are left alone.
case "$endpoint" in
  http://* | *://127.* | *://localhost* | *://\[::1\]*)
    if [ -z "${AWS_ACCESS_KEY_ID:-}" ] && [ -z "${AWS_PROFILE:-}" ]; then
      echo "examples: no AWS credentials set; using placeholders, which a local emulator accepts" >&2
      export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
    fi
    ;;
esac
