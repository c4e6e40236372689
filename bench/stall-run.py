#!/usr/bin/env python3
"""Stalled-sink run (issue 5): kb-sink stops answering for 60 s while tail ships a big file.

Run through bench/stall-run.sh (builds the release binaries). For each Mem_Buf_Limit given, the
agent tails N records of 1 KiB (each with a unique `seq`; `log_key log` sends the line as it
is) to kb-sink, which holds every PutRecords answer from 2 s after start for --stall seconds.
The agent's RSS is sampled every 100 ms. Prints the peak during the stall against the bound
  24 MiB (binary, runtime, TLS, one worker's formatted copy and body) + 2 × Mem_Buf_Limit
and then checks that every record was delivered after the stall (duplicates are printed: a
request held past the agent's 60 s request deadline is sent again).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = os.path.join(ROOT, "target", "release", "kinesis-bit")
SINK = os.path.join(ROOT, "target", "release", "kb-sink")
MIB = 1 << 20


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(args, log, limit_mib):
    sink = subprocess.Popen(
        [SINK, "--threads", "1", "--id-field", "seq", "--stall-after-secs", "2",
         "--stall-secs", str(args.stall)], stdout=subprocess.PIPE, text=True)
    endpoint = sink.stdout.readline().strip()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDSTALLRUN", AWS_SECRET_ACCESS_KEY="secret")
    agent = subprocess.Popen(
        [AGENT, "-q", "-i", "tail", "-p", f"path={log}", "-p", "read_from_head=on",
         "-p", f"mem_buf_limit={limit_mib}M", "-o", "kinesis_streams", "-m", "*",
         "-p", "region=us-east-1", "-p", "stream=stall", "-p", f"endpoint={endpoint}",
         "-p", "log_key=log", "-p", "retry_limit=no_limits"], env=env)
    t0 = time.monotonic()
    peak_stall = peak = 0.0
    stats = {}
    try:
        while time.monotonic() - t0 < args.stall + args.timeout:
            r = rss_mib(agent.pid)
            peak = max(peak, r)
            if 2.5 < time.monotonic() - t0 < 2 + args.stall:
                peak_stall = max(peak_stall, r)
            with urllib.request.urlopen(endpoint + "/stats", timeout=120) as resp:
                stats = json.load(resp)
            if stats["unique_ids"] >= args.records:
                break
            if agent.poll() is not None:
                sys.exit(f"the agent exited early with {agent.returncode}")
            time.sleep(0.1)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        sink.send_signal(signal.SIGTERM)
        out, _ = sink.communicate(timeout=30)
    final = json.loads(out.strip().splitlines()[-1])
    took = time.monotonic() - t0
    bound = 24 + 2 * limit_mib
    # A request held past the agent's 60 s request deadline is re-sent, and the sink still
    # accepts the held one when the stall ends: such duplicates are at-least-once, not loss.
    ok = peak_stall <= bound and final["unique_ids"] == args.records
    print(f"Mem_Buf_Limit {limit_mib:3d} MiB: peak RSS during the {args.stall:.0f} s stall "
          f"{peak_stall:6.1f} MiB (bound {bound} MiB), peak overall {peak:6.1f} MiB; "
          f"delivered {final['unique_ids']} of {args.records}, duplicated "
          f"{final['duplicate_entries']}, {took:.0f} s  {'ok' if ok else 'FAILED'}")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=400_000)
    p.add_argument("--stall", type=float, default=60)
    p.add_argument("--limits", default="8,32", help="Mem_Buf_Limit values in MiB")
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-stall-") as work:
        log = os.path.join(work, "app.log")
        with open(log, "w") as f:
            for start in range(0, args.records, 10000):
                f.write("".join(
                    '{"seq":%d,"msg":"%s"}\n' % (i, "x" * (1000 - len(str(i))))
                    for i in range(start, min(args.records, start + 10000))))
        size = os.path.getsize(log) / MIB
        print(f"stalled-sink run: {args.records} records ({size:.0f} MiB) by tail, sink silent "
              f"for {args.stall:.0f} s from 2 s after start")
        results = [run(args, log, int(m)) for m in args.limits.split(",")]
    if not all(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
