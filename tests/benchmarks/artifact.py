"""A built .ext next to the same extension run from the venv: size, start, memory.

    python tests/benchmarks/artifact.py [--source FILE|NAME] [--rounds 5]

Builds SOURCE (default: the README's login_shells-like test extension with a table and a
logger) with ``osqsdk extension build``, then, for each round, starts the .ext (empty
environment, from an empty directory) and the source file under this venv's Python, each
against a manager double, and measures the time from exec to registered (the manager sees
the registration and the extension answers a ping) and the resident memory of the whole
process family once registered (the .ext is two processes: PyInstaller's one-file start
and the Python it unpacked). Targets: registered within 2 s of exec; RSS within 1.5x of
the venv run. Printed as min-max over the rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from osqsdk.extension._build import resolve_source  # noqa: E402
from osqsdk.testing import ManagerDouble, launch_extension  # noqa: E402
from tests.extensions.test_build import family  # noqa: E402

DEFAULT_SOURCE = ROOT / "tests" / "extensions" / "files" / "table_and_logger.py"


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def one_start(path: Path, name: str, env: dict[str, str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="osq-", dir="/tmp") as tmp:
        with ManagerDouble(str(Path(tmp) / "osquery.em"), health_interval=None) as manager:
            started = time.perf_counter()
            proc = launch_extension(path, manager.socket_path, interval=3, env=env,
                                    cwd=path.parent, stderr=subprocess.DEVNULL)
            try:
                manager.wait_for(name, timeout=60)
                registered = time.perf_counter() - started
                time.sleep(0.5)  # let start-up allocations settle
                return registered, rss_mb(family(proc.pid))
            finally:
                proc.terminate()
                proc.wait(timeout=30)


def span(values: list[float], fmt: str) -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default=str(DEFAULT_SOURCE))
    parser.add_argument("--name", default="built_artifact_test",
                        help="the name the extension registers with")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="osq-bench-") as tmp:
        work = Path(tmp)
        artifact = work / "bench.ext"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "osqsdk", "extension", "build", args.source,
                        "-o", str(artifact)], check=True, capture_output=True)
        build_s = time.perf_counter() - started
        host = work / "host"
        host.mkdir()
        shutil.copy2(artifact, host / "bench.ext")
        script = work / "venv" / "bench.ext"
        script.parent.mkdir()
        source, _ = resolve_source(args.source)
        text = source.read_text()
        script.write_text(f"#!{sys.executable}\n" + text)
        script.chmod(0o755)
        venv_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        built, venv = [], []
        for _ in range(args.rounds):
            built.append(one_start(host / "bench.ext", args.name, {}))
            venv.append(one_start(script, args.name, venv_env))
        size = artifact.stat().st_size / 1e6
        print(f"built in {build_s:.1f} s; .ext size {size:.1f} MB; rounds: {args.rounds}")
        print(f"{'':14} {'exec->registered s':>20} {'RSS MB (all processes)':>24}")
        print(f"{'.ext':14} {span([b[0] for b in built], '.2f'):>20} "
              f"{span([b[1] for b in built], '.1f'):>24}")
        print(f"{'venv python':14} {span([v[0] for v in venv], '.2f'):>20} "
              f"{span([v[1] for v in venv], '.1f'):>24}")
        ratio = [b[1] / v[1] for b, v in zip(built, venv)]
        print(f"targets: registered <= 2.00 s (worst .ext: {max(b[0] for b in built):.2f} s); "
              f"RSS <= 1.5x venv (ratio {span(ratio, '.2f')})")


if __name__ == "__main__":
    main()
