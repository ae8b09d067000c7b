#!/usr/bin/env python3
"""Loki logger throughput and memory, printed beside the targets of issue 5.

All runs push to the same local receiver double (osqsdk.testing.LokiReceiver in its own
process, storing counts only, rate limits off) in one invocation:

1. client: osqsdk's LokiClient, one ``push()`` per osquery result line (each line written
   to the spool before push returns), until the receiver acknowledged every line;
2. python-logging-loki 0.3.1 (pip install 'osqsdk[bench]'): its LokiHandler (v1 emitter)
   behind a logging.Logger, one record per line, for ``--pll-seconds``;
3. logger path: the C++ osqueryd stand-in (Apache Thrift's C++ runtime, a connection per
   call with a ping probe first, as osqueryd calls) sends result lines to
   extensions/loki_logger.py registered with the C++ manager stand-in; lines/s stored by
   the receiver while the run is steady (from 10% to 90% of the lines), lines/s until the
   receiver stored the last one (which waits up to batch_wait, 1 s, for its batch to
   fill), and the per-call latency percentiles; then the
   same with connections kept open (1 and 2 client threads), the logger's own cost;
4. anchor: the same client, mode and threads against a C++ TThreadedServer (osquery's own
   kind of server: the C++ manager stand-in, answering every logger call at once with
   status 1, "no such item"): what that client mode reaches here with no work at all;
5. memory: a LokiClient process pushing 1,000,000 lines while Loki is unreachable; its
   resident memory (VmRSS and peak VmHWM) with the whole backlog in the spool.

    python tests/benchmarks/loki_throughput.py [--lines 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from osqsdk.loki import LokiClient, LokiConfig, format_labels  # noqa: E402
from tests.interop.build import build  # noqa: E402


def result_lines(count: int, unix_time: int) -> list[str]:
    """Realistic event-format lines of a `last` pack query (~420 bytes each)."""
    out = []
    for i in range(count):
        out.append(json.dumps({
            "name": f"pack_incident-response_q{i % 8}", "hostIdentifier": "web-1",
            "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix_time)),
            "unixTime": unix_time, "epoch": 0, "counter": i, "numerics": False,
            "decorations": {"host_uuid": "4c4c4544-0042-3510-8056-b4c04f4a4d32",
                            "username": "root"},
            "columns": {"host": f"10.0.{i % 256}.{(i * 7) % 256}", "pid": str(1000 + i),
                        "time": str(unix_time - i), "tty": f"pts/{i % 10}", "type": "7",
                        "username": f"user{i % 500}"},
            "action": "added"}, separators=(",", ":")))
    return out


def start_receiver() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "osqsdk", "loki", "receiver", "--port", "0",
                             "--quiet", "--no-store", "--no-rate-limit"],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/double/stats") as response:
        return json.load(response)


def wait_entries(url: str, count: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while stats(url)["entries"] < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"receiver did not get {count} entries in {timeout}s: "
                             f"{stats(url)}")
        time.sleep(0.01)
    return time.perf_counter()


def bench_client(url: str, lines: list[str], tmp: str, rounds: int) -> float:
    labels = [format_labels({"job": "osquery", "name": f"pack_incident-response_q{i}",
                             "host": "web-1", "action": "added", "log_type": "result"})
              for i in range(8)]
    base = time.time_ns()
    best = 0.0
    for r in range(rounds):
        config = LokiConfig(url=url, spool_dir=os.path.join(tmp, f"client{r}"))
        client = LokiClient(config)
        before = stats(url)["entries"]
        started = time.perf_counter()
        push = client.push
        for i, line in enumerate(lines):
            push(labels[i & 7], line, base + r * len(lines) + i)
        assert client.flush(300)
        elapsed = time.perf_counter() - started
        client.close()
        assert stats(url)["entries"] - before == len(lines)
        best = max(best, len(lines) / elapsed)
    return best


def bench_python_logging_loki(url: str, lines: list[str], seconds: float) -> float | None:
    try:
        import logging_loki
    except ImportError:
        return None
    handler = logging_loki.LokiHandler(url=url + "/loki/api/v1/push", version="1",
                                       tags={"job": "osquery"})
    logger = logging.getLogger("bench-python-logging-loki")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    before = stats(url)["entries"]
    started = time.perf_counter()
    sent = 0
    while time.perf_counter() - started < seconds:
        logger.info(lines[sent % len(lines)])
        sent += 1
    elapsed = time.perf_counter() - started
    handler.close()
    stored = stats(url)["entries"] - before
    assert stored == sent, (stored, sent)
    return sent / elapsed


def bench_logger_path(url: str, lines: list[str], tmp: str, threads: int,
                      mode: str = "osqueryd") -> dict:
    peers = build()
    tag = f"{mode[0]}{threads}"
    manager = os.path.join(tmp, f"m{tag}.em")
    uuid = 4242 + threads + (100 if mode == "persistent" else 0)
    procs = [subprocess.Popen([str(peers / "manager_standin"), manager, "--uuid", str(uuid)],
                              stdout=subprocess.DEVNULL)]
    try:
        while not os.path.exists(manager):
            time.sleep(0.02)
        env = {**os.environ, "OSQSDK_LOKI_URL": url,
               "OSQSDK_LOKI_SPOOL_DIR": os.path.join(tmp, f"ext{tag}")}
        env.pop("OSQSDK_LOKI_CONFIG", None)
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "extensions" / "loki_logger.py"),
                                       "--socket", manager, "--timeout", "5", "--interval", "1"],
                                      env=env, stderr=subprocess.DEVNULL))
        socket = f"{manager}.{uuid}"
        while not os.path.exists(socket):
            time.sleep(0.02)
        time.sleep(0.5)
        path = os.path.join(tmp, f"lines{tag}.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        before = stats(url)["entries"]
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:  # the receiver's count of stored lines, every 50 ms
            while not done.is_set():
                samples.append((time.perf_counter(), stats(url)["entries"] - before))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.perf_counter()
        sampler.start()
        out = subprocess.run([str(peers / "osqueryd_standin"), "bench-logger", socket, "loki",
                              path, str(threads), mode], capture_output=True, text=True,
                             check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        acked = wait_entries(url, before + len(lines))
        done.set()
        sampler.join()
        # all lines, until the receiver stored the last (which waits up to batch_wait)
        result["acked_lines_per_s"] = len(lines) / (acked - started)
        # the steady rate at the receiver: from 10% to 90% of the lines stored
        lo = next(s for s in samples if s[1] >= len(lines) * 0.1)
        hi = next((s for s in samples if s[1] >= len(lines) * 0.9), (acked, len(lines)))
        result["steady_lines_per_s"] = ((hi[1] - lo[1]) / (hi[0] - lo[0]) if hi[0] > lo[0]
                                        else result["acked_lines_per_s"])
        return result
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


def bench_cpp_anchor(lines: list[str], tmp: str, mode: str, threads: int) -> dict:
    """The same client against osquery's own kind of server doing nothing: the C++ manager
    stand-in (Thrift's TThreadedServer, as osqueryd and C++ extensions serve) answers every
    logger call at once (with "no such item", status 1). The ceiling of each client mode
    on this machine, whatever the extension does."""
    peers = build()
    socket = os.path.join(tmp, f"anchor-{mode}{threads}.em")
    proc = subprocess.Popen([str(peers / "manager_standin"), socket, "--uuid", "1"],
                            stdout=subprocess.DEVNULL)
    try:
        while not os.path.exists(socket):
            time.sleep(0.02)
        path = os.path.join(tmp, f"anchor-{mode}{threads}.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        out = subprocess.run([str(peers / "osqueryd_standin"), "bench-logger", socket, "loki",
                              path, str(threads), mode], capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        proc.terminate()
        proc.wait(30)


_BACKLOG_CHILD = r"""
import json, sys, time
from osqsdk.loki import LokiConfig, LokiClient, format_labels
spool, total = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from tests.benchmarks.loki_throughput import result_lines
lines = result_lines(1000, int(time.time()))
labels = [format_labels({"job": "osquery", "name": f"q{i}"}) for i in range(8)]
def status():
    with open("/proc/self/status") as f:
        return {l.split(":")[0]: int(l.split()[1]) / 1024 for l in f if l.startswith("Vm")}
# port 9 (discard) is closed here: Loki is unreachable for the whole run
client = LokiClient(LokiConfig(url="http://127.0.0.1:9", spool_dir=spool, max_backoff=1.0))
started = time.perf_counter()
for i in range(total):
    client.push(labels[i & 7], lines[i % 1000])
elapsed = time.perf_counter() - started
vm = status()
print(json.dumps({"rss_mb": vm["VmRSS"], "peak_mb": vm["VmHWM"], "entries": client.spool.entries,
                  "spool_mb": client.spool.disk_bytes / 2**20, "seconds": elapsed}))
client.abort()
"""


def bench_backlog(tmp: str, total: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _BACKLOG_CHILD, os.path.join(tmp, "backlog"),
                          str(total), str(ROOT)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pll-seconds", type=float, default=5.0)
    # enough lines that the last partial batch (shipped batch_wait after the last call)
    # is a small part of the run: the figure is the logger's steady rate
    parser.add_argument("--logger-lines", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="lokib-", dir="/tmp")
    receiver, url = start_receiver()
    try:
        lines = result_lines(args.lines, int(time.time()))
        client = bench_client(url, lines, tmp, args.rounds)
        pll = bench_python_logging_loki(url, lines, args.pll_seconds)
        # other lines per run: a fresh spool numbers from 1 again, and the same line with
        # the same timestamp would be an exact duplicate, which Loki stores once
        now = int(time.time())
        # osqueryd's own way: a connection and a ping probe per call; then connections kept
        # open, which is the logger's own cost without osqueryd's connection setup.
        logger_runs = [
            bench_logger_path(url, result_lines(args.logger_lines, now - 1), tmp, 1),
            bench_logger_path(url, result_lines(args.logger_lines, now - 2), tmp, 4),
            bench_logger_path(url, result_lines(args.logger_lines, now - 3), tmp, 1, "persistent"),
            bench_logger_path(url, result_lines(args.logger_lines, now - 4), tmp, 2, "persistent"),
        ]
        anchors = [bench_cpp_anchor(lines[:args.logger_lines // 4], tmp, r["mode"], r["threads"])
                   for r in logger_runs]
        backlog = bench_backlog(tmp, args.backlog)
    finally:
        receiver.terminate()
        receiver.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"loki_throughput: {args.lines:,} osquery result lines (~{len(lines[0])} bytes), "
          f"best of {args.rounds} rounds; receiver double in its own process; "
          f"{os.cpu_count()} CPUs")
    print(f"osqsdk lines_per_s={client:,.0f}  (target >= 100,000: "
          f"{'met' if client >= 100_000 else 'NOT met'})")
    if pll is None:
        print("python-logging-loki lines_per_s=n/a (pip install 'osqsdk[bench]')")
    else:
        ratio = client / pll
        print(f"python-logging-loki lines_per_s={pll:,.0f}")
        print(f"ratio osqsdk/python-logging-loki={ratio:.1f}x  (target >= 50x: "
              f"{'met' if ratio >= 50 else 'NOT met'})")
    for result, anchor in zip(logger_runs, anchors):
        ok = result["steady_lines_per_s"] >= 15_000 and result["p99_us"] < 2000
        print(f"logger_path mode={result['mode']} threads={result['threads']} "
              f"lines_per_s={result['steady_lines_per_s']:,.0f} "
              f"(all {args.logger_lines:,} acked: {result['acked_lines_per_s']:,.0f}/s; "
              f"calls {result['lines_per_s']:,.0f}/s) p50_ms={result['p50_us'] / 1000:.2f} "
              f"p99_ms={result['p99_us'] / 1000:.2f} max_ms={result['max_us'] / 1000:.1f} "
              f"failed={result['failed']}  (target >= 15,000 lines/s and p99 < 2 ms: "
              f"{'met' if ok else 'NOT met'})")
        print(f"  anchor: C++ TThreadedServer answering at once, same client and mode: "
              f"calls_per_s={anchor['lines_per_s']:,.0f} p99_ms={anchor['p99_us'] / 1000:.2f}"
              f"  (osqsdk: {result['lines_per_s'] / anchor['lines_per_s']:.2f}x of it)")
    print(f"backlog lines={backlog['entries']:,} spool_mb={backlog['spool_mb']:.0f} "
          f"rss_mb={backlog['rss_mb']:.1f} peak_rss_mb={backlog['peak_mb']:.1f}  "
          f"(target <= 150 MB: {'met' if backlog['peak_mb'] <= 150 else 'NOT met'})")


if __name__ == "__main__":
    main()
