#!/usr/bin/env python3
"""Fault run (issue 5): N records with a unique `seq` through kb-sink's faults; lost = dup = 0.

Run through bench/fault-run.sh (builds the release binaries). The sink fails 10 % of the
entries (ProvisionedThroughputExceededException / InternalFailure), answers 2 % of the requests
400 throttled and 1 % 500, and resets 1 % of the connections before answering; it counts every
accepted `seq`. The agent reads the records from a file with tail and retries without limit.
Prints produced, delivered, lost and duplicated; exits 1 unless lost = 0 and duplicated = 0.
--protocol cbor sends `protocol cbor` (kb-sink answers CBOR requests in CBOR, faults included)
and checks that every request was CBOR.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from kbbench import AGENT, json_parsers, poll_stats, start_sink, stop, write_seq_log


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--protocol", default="json", choices=["json", "cbor"])
    args = p.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory(prefix="kb-faults-") as work:
        log = os.path.join(work, "app.log")
        write_seq_log(log, n, lambda i: '{"seq":%d,"msg":"fault run record %d","pad":"%s"}\n'
                      % (i, i, "x" * 100))
        sink, endpoint = start_sink(
            "--threads", "1", "--id-field", "seq", "--seed", str(args.seed),
            "--fail-entries", "0.10", "--throttle", "0.02", "--error500", "0.01",
            "--drop", "0.01")
        conf = os.path.join(work, "kb.conf")
        with open(conf, "w") as f:
            f.write(f"""[SERVICE]
    Flush          1
    Grace          30
    scheduler.base 1
    scheduler.cap  4
[INPUT]
    Name           tail
    Path           {log}
    Read_from_Head on
    Parser         json
[OUTPUT]
    Name           kinesis_streams
    Match          *
    region         us-east-1
    stream         faults
    endpoint       {endpoint}
    retry_limit    no_limits
    protocol       {args.protocol}
""")
        parsers = json_parsers(work)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDFAULTRUN", AWS_SECRET_ACCESS_KEY="secret")
        t0 = time.monotonic()
        agent = subprocess.Popen([AGENT, "-q", "-c", conf, "-R", parsers], env=env)
        try:
            poll_stats(endpoint, agent, lambda st: st["unique_ids"] >= n, args.timeout)
            # A little longer, so a late duplicate would still be counted.
            time.sleep(2)
        finally:
            final = stop(agent, sink)
        took = time.monotonic() - t0
    delivered = final["unique_ids"]
    print(f"fault run: {n} records, protocol {args.protocol}, sink seed {args.seed}, "
          f"{took:.1f} s")
    cbor = final.get("cbor_requests", 0)
    print(f"  CBOR requests: {cbor} of {final['put_requests']}")
    print(f"  requests: {final['put_requests']} ({final['throttled']} throttled, "
          f"{final['error500']} answered 500, {final['dropped']} connections reset)")
    print(f"  entries:  {final['entries_received']} received, {final['entries_failed']} failed "
          f"one by one, {final['entries_accepted']} accepted")
    print(f"  produced {n}  delivered {delivered}  lost {n - delivered}  "
          f"duplicated {final['duplicate_entries']}")
    if delivered != n or final["duplicate_entries"] != 0:
        sys.exit(1)
    if cbor != (final["put_requests"] if args.protocol == "cbor" else 0):
        sys.exit(f"protocol {args.protocol}, but {cbor} of {final['put_requests']} requests were CBOR")


if __name__ == "__main__":
    main()
