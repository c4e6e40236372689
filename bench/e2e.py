#!/usr/bin/env python3
"""End-to-end benchmark: kinesis-bit (release) ships N log lines over TLS to kb-sink.

--output picks the output plugin (kinesis_streams, kinesis_firehose, kinesis or firehose);
kb-sink answers PutRecords and PutRecordBatch alike, so the figures compare the plugins.
--protocol json,cbor runs every configuration with `protocol json` and `protocol cbor`
(kinesis_streams only) in the same session, one row each.

The floor column is what the bytes the agent sent cost at the least: SHA-256 (the SigV4
payload hash) plus AES-128-GCM (TLS) of every request body byte the sink received, at the
rates `openssl speed` measures on this machine at the start, per GiB of log lines.

Run through bench/e2e.sh, which builds the release binaries first. For every configuration
it starts the project's own Kinesis-compatible sink (kb-sink: TLS with a self-signed
certificate, SigV4 verified, one thread), runs the agent until the sink has accepted every
record, and reads the agent's CPU time (user + sys) and peak RSS (VmHWM) from /proc at that
moment. MiB/s is end to end (agent start to last record accepted); steady MiB/s is the rate
between 10 % and 90 % of the records accepted. Each configuration runs --reps times; the table shows medians.

Figures are ratios of one run on a shared machine: compare rows, not sessions.
"""

import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

from kbbench import AGENT, SINK, cpu_seconds, memory_mib, start_sink, stop

KEY_ID, SECRET = "AKIDBENCHMARK0000000", "bench/secret/key/0000000000000000000000"
MIB = 1 << 20
GIB = 1 << 30


def k8s_line(seq, size):
    """One Kubernetes-like JSON log line of exactly `size` bytes, newline included."""
    if size >= 400:
        head = (
            '{"time":"2026-11-27T23:50:00.%09dZ","stream":"stdout","_p":"F",'
            '"kubernetes":{"pod_name":"web-7d9f8b-x2k4l","namespace_name":"prod",'
            '"container_name":"web","host":"ip-10-0-1-17.ec2.internal",'
            '"labels":{"app":"web","tier":"frontend"}},"seq":%d,'
            '"log":"GET /api/v1/items/%d HTTP/1.1 200 ' % (seq % 1000000000, seq, seq)
        )
    else:
        head = '{"stream":"stdout","seq":%d,"log":"GET /i/%d ' % (seq, seq)
    tail = '"}\n'
    pad = size - len(head) - len(tail)
    if pad < 0:
        sys.exit(f"record size {size} is too small for the record layout")
    return head + "a" * pad + tail


def make_log(path, n, size):
    if os.path.exists(path):
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        batch = []
        for i in range(n):
            batch.append(k8s_line(i, size))
            if len(batch) == 10000:
                f.write("".join(batch))
                batch.clear()
        f.write("".join(batch))
    os.rename(tmp, path)


def cert(work):
    crt, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    if not os.path.exists(crt):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
             "-out", crt, "-days", "30", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:FALSE"],
            check=True, capture_output=True)
    return crt, key


class SinkProc:
    def __init__(self, crt, key):
        self.proc, self.endpoint = start_sink(
            "--threads", "1", "--tls-cert", crt, "--tls-key", key,
            "--verify-sigv4", f"{KEY_ID}:{SECRET}")
        # One kept-alive connection for the polls: a TLS handshake per poll (RSA signing in
        # the sink) showed up as 8 % of the sink's CPU in a profile.
        host, port = self.endpoint.removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=crt)
        self.conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)

    def stats(self):
        self.conn.request("GET", "/stats")
        return json.load(self.conn.getresponse())

    def stop(self, agent):
        """Stop the agent, then this sink."""
        self.conn.close()
        stop(agent, self.proc)


DESTINATION_KEY = {"kinesis_streams": "stream", "kinesis": "stream",
                   "kinesis_firehose": "delivery_stream", "firehose": "delivery_stream"}


def filter_chain(work):
    """The issue's filtered pipeline: parser (json, Reserve_Data) → grep → modify →
    record_modifier → nest (lift), as -R / -F options. Every record passes every filter."""
    parsers = os.path.join(work, "parsers.conf")
    with open(parsers, "w") as f:
        f.write("[PARSER]\n    Name json\n    Format json\n")
    return ["-R", parsers,
            "-F", "parser", "-m", "*", "-p", "key_name=log", "-p", "parser=json",
            "-p", "reserve_data=on",
            "-F", "grep", "-m", "*", "-p", "regex=stream ^stdout$",
            "-F", "modify", "-m", "*", "-p", "rename=seq sequence", "-p", "add=env prod",
            "-F", "record_modifier", "-m", "*", "-p", "record=node ip-10-0-1-17",
            "-F", "nest", "-m", "*", "-p", "operation=lift", "-p", "nested_under=kubernetes",
            "-p", "add_prefix=k8s_"]


def openssl_rate(alg):
    """Bytes per CPU second of `openssl speed -evp alg` on 16 KiB blocks."""
    out = subprocess.run(["openssl", "speed", "-mr", "-seconds", "1", "-bytes", "16384",
                          "-evp", alg], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        # +F:<n>:<name>:<bytes per second for each block size> (the last is 16 KiB)
        if line.startswith("+F:"):
            return float(line.split(":")[-1])
    sys.exit(f"cannot read openssl speed for {alg}: {out!r}")


RATES = {}


def floor_cpu_s(body_bytes):
    """CPU seconds SHA-256 + AES-128-GCM take over `body_bytes` at the measured rates."""
    if not RATES:
        RATES["sha256"] = openssl_rate("sha256")
        RATES["aes-128-gcm"] = openssl_rate("aes-128-gcm")
    return body_bytes * (1 / RATES["sha256"] + 1 / RATES["aes-128-gcm"])


def run_once(args, work, crt, key, input_name, n, size, workers, protocol="json"):
    sink = SinkProc(crt, key)
    dest = DESTINATION_KEY[args.output]
    common = ["-o", args.output, "-m", "*", "-p", "region=us-east-1",
              "-p", f"{dest}=bench", "-p", f"endpoint={sink.endpoint}",
              "-p", f"tls.ca_file={crt}", "-p", f"workers={workers}"]
    if protocol != "json":
        common += ["-p", f"protocol={protocol}"]
    for prop in args.output_prop:
        common += ["-p", prop]
    if input_name in ("tail", "tail+filters"):
        log = os.path.join(work, f"k8s-{n}x{size}.log")
        make_log(log, n, size)
        subprocess.run(["cat", log], stdout=subprocess.DEVNULL, check=True)  # page cache
        cmd = [AGENT, "-q", "-i", "tail", "-p", f"path={log}", "-p", "read_from_head=on"]
        if input_name == "tail+filters":
            cmd += filter_chain(work)
    else:
        record = k8s_line(0, size).rstrip("\n")
        per_tick = 1000
        cmd = [AGENT, "-q", "-i", "dummy", "-p", f"dummy={record}", "-p", "rate=1000",
               "-p", f"copies={per_tick}", "-p", f"samples={-(-n // per_tick)}",
               "-p", "start_time_sec=1764287400"]
        n = -(-n // per_tick) * per_tick
    for prop in args.input_prop:
        cmd += ["-p", prop]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    env.pop("AWS_SESSION_TOKEN", None)
    sink_cpu0 = cpu_seconds(sink.proc.pid)
    t0 = time.monotonic()
    agent = subprocess.Popen(cmd + common, env=env, stderr=subprocess.PIPE)
    deadline = t0 + args.timeout
    # The steady rate is measured between 10 % and 90 % accepted: it leaves out the start
    # (process, TLS handshake) and the last partial chunk, which waits for the next Flush tick
    # and makes the end-to-end time jump in whole seconds.
    t10 = t90 = None
    try:
        while True:
            st = sink.stats()
            now = time.monotonic()
            if t10 is None and st["entries_accepted"] >= n // 10:
                t10 = now
            if t90 is None and st["entries_accepted"] >= n * 9 // 10:
                t90 = now
            if st["entries_accepted"] >= n:
                break
            if agent.poll() is not None:
                sys.exit(f"agent exited early ({agent.returncode}): {agent.stderr.read()!r}")
            if time.monotonic() > deadline:
                sys.exit(f"timeout: sink accepted {st['entries_accepted']} of {n}")
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(agent.pid)
        rss = memory_mib(agent.pid, "VmHWM")
        sink_cpu = cpu_seconds(sink.proc.pid) - sink_cpu0
    finally:
        sink.stop(agent)
    raw = n * size
    if protocol == "cbor" and st.get("cbor_requests") != st["put_requests"]:
        sys.exit(f"protocol cbor, but not every request was CBOR: {st}")
    floor = floor_cpu_s(st.get("request_bytes", 0))
    return {
        "input": input_name, "protocol": protocol, "floor_s_per_gib": floor / (raw / GIB),
        "records": n, "size": size, "workers": workers,
        "seconds": elapsed, "records_s": n / elapsed, "mib_s": raw / MIB / elapsed,
        "steady_mib_s": 0.8 * raw / MIB / max(t90 - t10, 1e-3),
        "cpu_s": cpu, "cpu_s_per_gib": cpu / (raw / GIB), "cpu_us_per_record": cpu / n * 1e6,
        "rss_mib": rss, "requests": st["put_requests"], "sent": st["entries_received"],
        "accepted": st["entries_accepted"], "duplicates": st["entries_accepted"] - n,
        "sink_records_per_cpu_s": n / sink_cpu if sink_cpu > 0 else float("inf"),
    }


def median_run(args, work, crt, key, input_name, n, size, workers, protocol="json"):
    runs = [run_once(args, work, crt, key, input_name, n, size, workers, protocol)
            for _ in range(args.reps)]
    med = dict(runs[0])
    for k in ("seconds", "records_s", "mib_s", "steady_mib_s", "cpu_s", "cpu_s_per_gib",
              "floor_s_per_gib",
              "cpu_us_per_record", "rss_mib", "requests", "sent", "sink_records_per_cpu_s"):
        med[k] = statistics.median(r[k] for r in runs)
    med["duplicates"] = max(r["duplicates"] for r in runs)
    return med


HEADER = ("input", "protocol", "records", "size B", "workers", "rec/s", "MiB/s", "steady MiB/s",
          "CPU-s/GiB", "floor CPU-s/GiB", "µs/rec", "peak RSS MiB", "requests", "sent",
          "sink rec/CPU-s")


def row(r):
    return (r["input"], r.get("protocol", "json"), f"{r['records']}", f"{r['size']}",
            f"{r['workers']}",
            f"{r['records_s']:,.0f}", f"{r['mib_s']:.1f}", f"{r['steady_mib_s']:.1f}",
            f"{r['cpu_s_per_gib']:.2f}", f"{r['floor_s_per_gib']:.2f}",
            f"{r['cpu_us_per_record']:.2f}", f"{r['rss_mib']:.1f}", f"{r['requests']:.0f}",
            f"{r['sent']:.0f}", f"{r['sink_records_per_cpu_s']:,.0f}")


def print_table(title, rows):
    cells = [HEADER] + [row(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    print(f"\n{title}")
    for i, c in enumerate(cells):
        print("  ".join(v.rjust(w) for v, w in zip(c, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=1024, help="bytes per log line, newline included")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--inputs", default="tail,dummy")
    p.add_argument("--filters", action="store_true",
                   help="also tail with five filters next to tail without, and the CPU ratio")
    p.add_argument("--output", default="kinesis_streams", choices=sorted(DESTINATION_KEY),
                   help="the output plugin to measure")
    p.add_argument("--scaling", action="store_true",
                   help="also workers 1/2/4, sizes 100 B/1 KiB/10 KiB, and 1M vs 4M records")
    p.add_argument("--input-prop", action="append", default=[], metavar="KEY=VALUE",
                   help="extra property of the input (repeatable), e.g. mem_buf_limit=8M")
    p.add_argument("--output-prop", action="append", default=[], metavar="KEY=VALUE",
                   help="extra property of the output (repeatable), e.g. "
                        "tls.ciphers=TLS_AES_256_GCM_SHA384")
    p.add_argument("--protocol", default="json",
                   help="comma-separated wire protocols to run: json, cbor or json,cbor "
                        "(cbor: kinesis_streams only)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--work", help="directory for generated logs (kept); default: a temp dir")
    args = p.parse_args()
    protocols = args.protocol.split(",")
    if any(x not in ("json", "cbor") for x in protocols):
        sys.exit(f"--protocol: json, cbor or json,cbor, not {args.protocol!r}")
    if "cbor" in protocols and args.output != "kinesis_streams":
        sys.exit("--protocol cbor needs --output kinesis_streams")
    for b in (AGENT, SINK):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is missing: run bench/e2e.sh (it builds the release binaries)")
    work = args.work or tempfile.mkdtemp(prefix="kb-bench-")
    os.makedirs(work, exist_ok=True)
    try:
        crt, key = cert(work)
        print(f"kinesis-bit e2e: output {args.output}, {args.records} × {args.size} B lines, "
              f"TLS + SigV4 to kb-sink, "
              f"median of {args.reps}; machine: {os.cpu_count()} CPUs")
        main_rows = [median_run(args, work, crt, key, i, args.records, args.size, args.workers,
                                proto)
                     for i in args.inputs.split(",") for proto in protocols]
        print_table("main runs", main_rows)
        print(f"floor rates (openssl speed, 16 KiB blocks): SHA-256 "
              f"{RATES['sha256'] / MIB:,.0f} MiB/s, AES-128-GCM "
              f"{RATES['aes-128-gcm'] / MIB:,.0f} MiB/s")
        if args.filters:
            plain = median_run(args, work, crt, key, "tail", args.records, args.size,
                               args.workers)
            filtered = median_run(args, work, crt, key, "tail+filters", args.records,
                                  args.size, args.workers)
            print_table("tail, without and with parser+grep+modify+record_modifier+nest",
                        [plain, filtered])
            print(f"filters add {filtered['cpu_s_per_gib'] / plain['cpu_s_per_gib'] - 1:+.0%} "
                  f"CPU-s/GiB ({plain['cpu_s_per_gib']:.2f} -> "
                  f"{filtered['cpu_s_per_gib']:.2f})")
        if args.scaling:
            rows = [median_run(args, work, crt, key, "tail", args.records, args.size, w)
                    for w in (1, 2, 4)]
            print_table("tail, workers 1/2/4", rows)
            rows = [median_run(args, work, crt, key, "tail", n, s, 1)
                    for s, n in ((100, 4 * args.records), (1024, args.records),
                                 (10240, args.records // 10))]
            print_table("tail, record size (about the same bytes per run, 100 B ships 4× records)",
                        rows)
            rows = [median_run(args, work, crt, key, "tail", n, args.size, 1)
                    for n in (args.records, 4 * args.records)]
            print_table("tail, 1× vs 4× records (cost per record must not grow)", rows)
        dup = [r for r in main_rows if r["duplicates"] != 0]
        if dup:
            sys.exit(f"the sink accepted more records than were produced: {dup}")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
