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
import os
import subprocess
import sys
import tempfile
import time

from kbbench import AGENT, memory_mib, poll_stats, start_sink, stop, write_seq_log

MIB = 1 << 20


def run(args, log, limit_mib):
    sink, endpoint = start_sink(
        "--threads", "1", "--id-field", "seq", "--stall-after-secs", "2",
        "--stall-secs", str(args.stall))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDSTALLRUN", AWS_SECRET_ACCESS_KEY="secret")
    agent = subprocess.Popen(
        [AGENT, "-q", "-i", "tail", "-p", f"path={log}", "-p", "read_from_head=on",
         "-p", f"mem_buf_limit={limit_mib}M", "-o", "kinesis_streams", "-m", "*",
         "-p", "region=us-east-1", "-p", "stream=stall", "-p", f"endpoint={endpoint}",
         "-p", "log_key=log", "-p", "retry_limit=no_limits"], env=env)
    t0 = time.monotonic()
    peak = {"stall": 0.0, "all": 0.0}

    def sample_rss():
        r = memory_mib(agent.pid, "VmRSS")
        peak["all"] = max(peak["all"], r)
        if 2.5 < time.monotonic() - t0 < 2 + args.stall:
            peak["stall"] = max(peak["stall"], r)

    try:
        poll_stats(endpoint, agent, lambda st: st["unique_ids"] >= args.records,
                   args.stall + args.timeout, each=sample_rss)
    finally:
        final = stop(agent, sink)
    peak_stall, peak = peak["stall"], peak["all"]
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
        write_seq_log(log, args.records,
                      lambda i: '{"seq":%d,"msg":"%s"}\n' % (i, "x" * (1000 - len(str(i)))))
        size = os.path.getsize(log) / MIB
        print(f"stalled-sink run: {args.records} records ({size:.0f} MiB) by tail, sink silent "
              f"for {args.stall:.0f} s from 2 s after start")
        results = [run(args, log, int(m)) for m in args.limits.split(",")]
    if not all(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
