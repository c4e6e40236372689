"""What the bench scripts share: where the release binaries are, starting and stopping kb-sink
and the agent, and reading a process's CPU time and memory from /proc."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# KB_AGENT / KB_SINK: other builds (a profiling build, or a wrapper that runs one under perf).
AGENT = os.environ.get("KB_AGENT") or os.path.join(ROOT, "target", "release", "kinesis-bit")
SINK = os.environ.get("KB_SINK") or os.path.join(ROOT, "target", "release", "kb-sink")
HZ = os.sysconf("SC_CLK_TCK")


def start_sink(*args):
    """Start kb-sink with `args`; returns the process and the endpoint it printed."""
    proc = subprocess.Popen([SINK, *args], stdout=subprocess.PIPE, text=True)
    endpoint = proc.stdout.readline().strip()
    if not endpoint.startswith("http"):
        sys.exit(f"kb-sink did not start (printed {endpoint!r})")
    return proc, endpoint


def stop(agent, sink):
    """SIGTERM the agent (waiting for it), then the sink; returns the sink's final counters."""
    if agent is not None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
    sink.send_signal(signal.SIGTERM)
    out, _ = sink.communicate(timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def cpu_seconds(pid):
    """User + system CPU seconds of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime, stime


def memory_mib(pid, field):
    """A /proc/<pid>/status memory line (`VmRSS`, `VmHWM`) in MiB; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def poll_stats(endpoint, agent, done, timeout, each=None):
    """Poll the sink's plain-HTTP `/stats` every 100 ms (calling `each` first) until `done`
    says so; exits if the agent ends first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if each is not None:
            each()
        with urllib.request.urlopen(endpoint + "/stats", timeout=120) as r:
            stats = json.load(r)
        if done(stats):
            return stats
        if agent.poll() is not None:
            sys.exit(f"the agent exited early with {agent.returncode}")
        if time.monotonic() > deadline:
            sys.exit(f"timeout; the sink's counters: {stats}")
        time.sleep(0.1)


def write_seq_log(path, n, line):
    """Write lines line(0) .. line(n - 1), 10,000 per write; returns the shortest line's length
    (the most lines one read block can hold)."""
    shortest = None
    with open(path, "w") as f:
        for start in range(0, n, 10000):
            lines = [line(i) for i in range(start, min(n, start + 10000))]
            shortest = min([shortest or len(lines[0])] + [len(x) for x in lines])
            f.write("".join(lines))
    return shortest or 0


def json_parsers(work):
    """A parsers file in `work` with Fluent Bit's `json` parser; returns its path."""
    path = os.path.join(work, "parsers.conf")
    with open(path, "w") as f:
        f.write("[PARSER]\n    Name   json\n    Format json\n")
    return path
