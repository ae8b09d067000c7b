#!/usr/bin/env python3
"""Lint speed: osqsdk lint vs sqlfluff 4.5 (--dialect sqlite) on the shared corpora.

Runs, each as a fresh process so interpreter start and imports count:

1. ``osqsdk lint ../shared/corpora``: every config, pack, Fleet YAML file in the corpora;
2. the same queries written one per ``.sql`` file, linted by ``osqsdk lint`` and by
   ``sqlfluff lint --dialect sqlite`` (which parses SQL only and checks no schema);
3. ``osqsdk lint`` on one pack file.

Prints wall times (best of --rounds for osqsdk, one run of sqlfluff unless --rounds says
otherwise) and the ratio. Targets (issue 4): whole corpora <= 1.0 s, >= 20x faster than
sqlfluff, one pack file <= 0.4 s.

    pip install -e ".[bench]"       # sqlfluff==4.5.0
    python tests/benchmarks/lint_corpus.py [--rounds 5] [--sqlfluff-rounds 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "corpora"
PACK = CORPORA / "osquery" / "packs" / "incident-response.conf"


def _wall(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return took


def _best(cmd: list[str], cwd: Path, rounds: int) -> tuple[float, float]:
    times = [_wall(cmd, cwd) for _ in range(rounds)]
    return min(times), statistics.median(times)


def _write_queries(target: Path) -> int:
    sys.path.insert(0, str(REPO))
    from osqsdk.lint import lint_paths

    run = lint_paths([str(CORPORA)]).run
    seen = 0
    for unit in run.units:
        seen += 1
        (target / f"q{seen:05d}.sql").write_text(unit.record.sql.rstrip().rstrip(";") + ";\n",
                                                 encoding="utf-8")
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sqlfluff-rounds", type=int, default=1)
    args = parser.parse_args()
    if not CORPORA.is_dir():
        sys.exit(f"{CORPORA} not found")
    py = sys.executable
    osq = [py, "-m", "osqsdk", "lint", "--no-progress", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        sql_dir = Path(tmp) / "sql"
        sql_dir.mkdir()
        count = _write_queries(sql_dir)
        _wall(osq + [str(CORPORA)], REPO)  # warm the file cache and bytecode
        corpora_best, corpora_median = _best(osq + [str(CORPORA)], REPO, args.rounds)
        sql_best, sql_median = _best(osq + [str(sql_dir)], REPO, args.rounds)
        pack_best, pack_median = _best(osq + [str(PACK)], REPO, args.rounds)
        fluff = shutil.which("sqlfluff") and [py, "-m", "sqlfluff"]
        fluff_time = None
        if fluff:
            fluff_cmd = fluff + ["lint", "--dialect", "sqlite", "--disable-progress-bar",
                                 "--nofail", str(sql_dir)]
            fluff_time = min(_wall(fluff_cmd, REPO) for _ in range(args.sqlfluff_rounds))
    print(f"queries in the corpora:                    {count}")
    print(f"osqsdk lint shared/corpora (all files):    best {corpora_best:.3f} s, "
          f"median {corpora_median:.3f} s   target <= 1.0 s")
    print(f"osqsdk lint, same SQL as .sql files:       best {sql_best:.3f} s, "
          f"median {sql_median:.3f} s")
    print(f"osqsdk lint one pack ({PACK.name}): best {pack_best:.3f} s, "
          f"median {pack_median:.3f} s   target <= 0.4 s")
    if fluff_time is None:
        print("sqlfluff: not installed (pip install -e '.[bench]')")
        return 0
    print(f"sqlfluff 4.5 lint --dialect sqlite, same SQL: {fluff_time:.3f} s")
    print(f"ratio sqlfluff / osqsdk (same SQL):        {fluff_time / sql_best:.1f}x   "
          "target >= 20x")
    print(f"ratio sqlfluff / osqsdk (whole corpora):   {fluff_time / corpora_best:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
