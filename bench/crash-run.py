#!/usr/bin/env python3
"""Crash run (issue 5): SIGKILL the agent at random points while it ships; lost = 0.

Run through bench/crash-run.sh (builds the release binaries). tail reads N records with a
unique `seq` (DB offsets, Read_from_Head) into filesystem storage; kinesis_streams ships them
to kb-sink, which counts every accepted `seq`. The agent is killed with SIGKILL K times at
random moments (seeded) and started again each time; a last run delivers the rest.

Prints produced, delivered, lost and duplicated, and the duplicate bound: at each kill, the
records of the requests in flight (workers x 500) plus the lines of the one tail block whose
offset may not have reached the DB (128 KiB). Exits 1 on loss or when duplicates pass it.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from kbbench import AGENT, json_parsers, start_sink, stop, write_seq_log

BLOCK = 128 * 1024
BATCH = 500


def stats(endpoint):
    with urllib.request.urlopen(endpoint + "/stats", timeout=60) as r:
        return json.load(r)


def chunk_files(storage):
    n = 0
    for root, _, files in os.walk(storage):
        n += sum(1 for f in files if f.endswith(".kbc"))
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=2_000_000)
    p.add_argument("--kills", type=int, default=8)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    n = args.records
    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kb-crash-") as work:
        log = os.path.join(work, "app.log")
        line_len = write_seq_log(log, n, lambda i: '{"seq":%d,"msg":"crash run record %d","pad":"%s"}\n'
                                 % (i, i, "x" * 80))
        storage = os.path.join(work, "storage")
        sink, endpoint = start_sink("--threads", "1", "--id-field", "seq")
        conf = os.path.join(work, "kb.conf")
        with open(conf, "w") as f:
            f.write(f"""[SERVICE]
    Flush          0.5
    Grace          5
    storage.path   {storage}
    storage.checksum on
[INPUT]
    Name           tail
    Path           {log}
    DB             {work}/tail.db
    Read_from_Head on
    Parser         json
    storage.type   filesystem
[OUTPUT]
    Name           kinesis_streams
    Match          *
    region         us-east-1
    stream         crash
    endpoint       {endpoint}
    workers        {args.workers}
    retry_limit    no_limits
""")
        parsers = json_parsers(work)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDCRASHRUN", AWS_SECRET_ACCESS_KEY="secret")
        cmd = [AGENT, "-q", "-c", conf, "-R", parsers]
        t0 = time.monotonic()
        kills = []
        agent = None
        try:
            for k in range(args.kills):
                agent = subprocess.Popen(cmd, env=env)
                time.sleep(rnd.uniform(0.2, 0.9))
                before = stats(endpoint)
                agent.send_signal(signal.SIGKILL)
                agent.wait()
                kills.append((before["unique_ids"], chunk_files(storage)))
            agent = subprocess.Popen(cmd, env=env)
            deadline = time.monotonic() + args.timeout
            while stats(endpoint)["unique_ids"] < n:
                if agent.poll() is not None:
                    sys.exit(f"the agent exited early with {agent.returncode}")
                if time.monotonic() > deadline:
                    sys.exit(f"timeout; the sink's counters: {stats(endpoint)}")
                time.sleep(0.1)
            time.sleep(2)  # a late duplicate would still be counted
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=60)
            left = chunk_files(storage)
            agent = None
        finally:
            final = stop(agent, sink)
        took = time.monotonic() - t0
    delivered = final["unique_ids"]
    dup = final["duplicate_entries"]
    per_kill = args.workers * BATCH + BLOCK // max(line_len, 1) + 1
    bound = len(kills) * per_kill
    print(f"crash run: {n} records of {line_len}+ bytes, {len(kills)} SIGKILLs, seed {args.seed}, {took:.1f} s")
    for i, (seen, files) in enumerate(kills):
        print(f"  kill {i + 1}: {seen} records delivered so far, {files} chunk files on disk")
    print(f"  requests: {final['put_requests']}, entries accepted {final['entries_accepted']}")
    print(f"  chunk files left after the last run: {left}")
    print(f"  produced {n}  delivered {delivered}  lost {n - delivered}  duplicated {dup}  "
          f"(bound {bound}: {len(kills)} kills x ({args.workers} x {BATCH} in flight + "
          f"{per_kill - args.workers * BATCH} lines of one tail block))")
    if delivered != n or dup > bound or left != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
