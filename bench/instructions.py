#!/usr/bin/env python3
"""Instructions per record: the e2e tail run under valgrind's callgrind, for A/B comparisons.

CPU seconds on this shared machine move by ±15 % between identical runs; instruction counts do
not. Each agent build given ships the same N lines through bench/e2e.py (TLS + SigV4 to
kb-sink) under callgrind, and the script prints instructions per record in the agent (user
space only: the kernel's share is not counted) and the functions that execute most of them.

valgrind hides SHA-NI from the program, so aws-lc hashes in software and SHA-256 counts far
more here than it costs on the CPU: compare totals between builds, and look at the other rows.
Run through bench/instructions.sh, which builds the agent with symbols (--profile profiling).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(agent, records, input_name, work, tag):
    out = os.path.join(work, f"callgrind.{tag}.out")
    wrapper = os.path.join(work, f"agent-{tag}.sh")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out} '
                f'"{agent}" "$@"\n')
    os.chmod(wrapper, 0o755)
    env = dict(os.environ, KB_AGENT=wrapper)
    cmd = [sys.executable, os.path.join(ROOT, "bench", "e2e.py"), "--records", str(records),
           "--reps", "1", "--inputs", input_name, "--work", work, "--timeout", "1800"]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=99", out], check=True,
                          capture_output=True, text=True).stdout
    total = None
    functions = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in m.group(2):
            total = ir
        else:
            # "file:function [binary]" → the function.
            name = m.group(2).rsplit(" [", 1)[0].split(":", 1)[-1]
            # Inlined code is listed once per source file: one row per function.
            functions[name] = functions.get(name, 0) + ir
    if total is None:
        sys.exit(f"no totals in {out}")
    return total, sorted(((ir, name) for name, ir in functions.items()), reverse=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--top", type=int, default=12, help="functions listed per build")
    p.add_argument("--input", default="tail", choices=["tail", "dummy", "tail+filters"])
    p.add_argument("--keep", metavar="DIR",
                   help="keep the callgrind.N.out files in DIR (callgrind_annotate --inclusive=yes)")
    p.add_argument("agents", nargs="+", help="agent binaries to compare")
    args = p.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind (apt-get install valgrind)")
    work = tempfile.mkdtemp(prefix="kb-instr-", dir=args.keep)
    try:
        results = []
        for i, agent in enumerate(args.agents):
            total, functions = run(agent, args.records, args.input, work, str(i))
            results.append((agent, total, functions))
        print(f"instructions per record, {args.input} → kinesis_streams, {args.records} × 1 KiB records "
              f"(callgrind; user space of the agent)")
        sha = lambda functions: sum(ir for ir, name in functions if "sha256_block" in name)
        base, base_rest = results[0][1], results[0][1] - sha(results[0][2])
        for agent, total, functions in results:
            rest = total - sha(functions)
            print(f"\n{agent}: {total / args.records:,.0f} per record"
                  f" ({total / base:.3f}× the first); without SHA-256:"
                  f" {rest / args.records:,.0f} ({rest / base_rest:.3f}×)")
            for ir, name in functions[:args.top]:
                print(f"  {ir / args.records:10,.0f}  {name[:110]}")
    finally:
        if args.keep:
            print(f"\ncallgrind files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
