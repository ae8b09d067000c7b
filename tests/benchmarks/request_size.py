"""Time and memory for receiving one large request, by size (the reading must be linear).

    python tests/benchmarks/request_size.py [--sizes 10,40,99] [--rounds 3]

An in-process extension serves a logger that takes the line and answers; a Thrift client
sends one ``string`` of each size on its own connection. Printed per size: seconds (min and
max over the rounds), seconds per MB (flat when reading is linear), and the server process's
resident memory after the rounds.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from osqsdk import LoggerPlugin
from osqsdk.extension._server import ExtensionServer
from osqsdk.extension._wire.client import Client
from osqsdk.testing import ManagerDouble


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,40,99", help="request sizes in MB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    got: list[int] = []
    logger = LoggerPlugin("sink", log_status=lambda records: got.append(len(records)))
    with tempfile.TemporaryDirectory(prefix="osq-", dir="/tmp") as tmp:
        with ManagerDouble(str(Path(tmp) / "osquery.em"), health_interval=None) as manager:
            server = ExtensionServer("bench", [logger], socket_path=manager.socket_path,
                                     timeout=5, interval=60)
            server.start()
            ext = manager.wait_for("bench")
            print(f"{'MB':>4} {'seconds (min-max)':>20} {'s per MB':>10} {'RSS after MB':>13}")
            for size in sizes:
                payload = "[" + ",".join(['{"s":0,"f":"a.cpp","i":1,"m":"' + "x" * 1000
                                          + '","h":"h","c":"c","u":1}'] * (size * 1024 * 1024
                                                                          // 1060)) + "]"
                times = []
                for _ in range(args.rounds):
                    with Client(ext.socket_path, timeout=300.0, manager=False) as client:
                        started = time.perf_counter()
                        reply = client.call("logger", "sink", {"status": "true", "log": payload})
                        times.append(time.perf_counter() - started)
                    assert reply.code == 0, reply.message
                del payload
                print(f"{size:>4} {min(times):>9.2f}-{max(times):<10.2f} "
                      f"{min(times) / size:>10.4f} {rss_mb():>13.0f}")
            server.stop()


if __name__ == "__main__":
    main()
