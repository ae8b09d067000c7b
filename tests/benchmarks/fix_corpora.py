#!/usr/bin/env python3
"""``osqsdk lint --fix`` over the shared corpora, copied to a temporary directory.

Prints, per round: the findings before, the fixes applied (safe only, then with
--unsafe-fixes), the files changed, the findings after, how many of those are new (target
0), and the wall time of the --fix run (a fresh process: start-up, lint, check each fix
with SQLite, write, lint again), next to the plain lint time of the same copy.

    python tests/benchmarks/fix_corpora.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "corpora"


def findings(cwd: Path) -> set[tuple[str, str, str, str]]:
    done = subprocess.run([sys.executable, "-m", "osqsdk", "lint", "--format", "json",
                           "--exit-zero", "corpora"], cwd=cwd, capture_output=True, text=True,
                          check=True)
    return {(f["path"], f["code"], f["query"] or "", f["message"])
            for f in json.loads(done.stdout)}


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'mode':14} {'before':>6} {'fixed':>5} {'files':>5} {'after':>5} {'new':>3} "
          f"{'fix s':>6} {'lint s':>6}")
    for _ in range(args.rounds):
        for unsafe in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                shutil.copytree(CORPORA, work / "corpora")
                before = findings(work)
                lint_s, _ = timed([sys.executable, "-m", "osqsdk", "lint", "--exit-zero",
                                   "corpora"], work)
                cmd = [sys.executable, "-m", "osqsdk", "lint", "--fix", "--exit-zero",
                       "corpora"] + (["--unsafe-fixes"] if unsafe else [])
                fix_s, out = timed(cmd, work)
                after = findings(work)
                changed = sum(1 for p in (work / "corpora").rglob("*") if p.is_file() and
                              p.read_bytes() != (CORPORA / p.relative_to(work / "corpora"))
                              .read_bytes())
                fixed = next((int(line.split()[1]) for line in out.splitlines()
                              if line.startswith("Fixed ")), 0)
                print(f"{'unsafe' if unsafe else 'safe':14} {len(before):6d} {fixed:5d} "
                      f"{changed:5d} {len(after):5d} {len(after - before):3d} {fix_s:6.2f} "
                      f"{lint_s:6.2f}")


if __name__ == "__main__":
    main()
