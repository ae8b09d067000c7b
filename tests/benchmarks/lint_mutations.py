#!/usr/bin/env python3
"""Lint recall on broken SQL: mutate the shared corpora's queries, keep what SQLite rejects.

Every distinct query of ../shared/corpora (what the linter reads, plus queries.jsonl) that
SQLite compiles (``EXPLAIN`` on an in-memory database: one table per osquery table, hidden
columns too, osquery's extra functions with their arities, fleetd tables for Fleet files)
gets up to --per-query variants (fixed seed): one token deleted (strings stay whole, comments
are left alone) or one comma doubled. Variants SQLite rejects are linted as ``.sql`` texts:
flagged when a finding has severity "error". On the clean originals every compile-error
finding (OSQ001, OSQ103-OSQ107) is a false error. Also times ``lint_paths`` on the corpora
(in-process) and ``osqsdk lint`` on one pack (fresh process). Prints, never asserts.

Targets: 100% flagged, 0 hard findings, whole corpora <= 1.0 s, one pack <= 0.4 s.

    python tests/benchmarks/lint_mutations.py [--seed 0] [--per-query 3] [--limit 1500]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "corpora"
PACK = CORPORA / "osquery" / "packs" / "incident-response.conf"
HARD = frozenset({"OSQ001", "OSQ103", "OSQ104", "OSQ105", "OSQ106", "OSQ107"})
EXAMPLES = 15
_LINT_TIMES: list[float] = []  # seconds per lint_text call

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>[xX]'[0-9a-fA-F]*'|'(?:[^']|'')*'?)
  | (?P<ident>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?|[A-Za-z_][\w$]*)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|.)
""", re.X | re.S)


@dataclass(frozen=True)
class Query:
    file: str
    sql: str
    fleet: bool


@dataclass(frozen=True)
class Mutant:
    query: Query
    sql: str
    what: str
    at: int


def _tokens(sql: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) for every token; strings and comments stay whole."""
    return [(m.lastgroup or "op", m.start(), m.end()) for m in _TOKEN.finditer(sql)]


def _collect() -> list[Query]:
    from osqsdk.lint import lint_paths

    found: list[Query] = []
    run = lint_paths([str(CORPORA)]).run
    for unit in run.units if run else ():
        path = Path(unit.document.path).resolve().relative_to(CORPORA.resolve())
        found.append(Query(str(path), unit.record.sql, bool(unit.document.fleet)))
    index = CORPORA / "queries.jsonl"
    if index.is_file():
        for line in index.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if isinstance(rec.get("query"), str) and rec["query"].strip():
                fleet = str(rec.get("kind", "")).startswith("fleet_")
                found.append(Query(f"{rec['corpus']}/{rec['file']}", rec["query"], fleet))
    return list({q.sql: q for q in reversed(found)}.values())  # the first source of each SQL


def _database(fleet: bool) -> sqlite3.Connection:
    from osqsdk.lint._runner import _fleetd, _functions
    from osqsdk.schema import default_schema
    from osqsdk.schema._load import overlay

    schema = overlay(default_schema(), _fleetd()) if fleet else default_schema()
    con = sqlite3.connect(":memory:")
    for table in schema:
        names = [n for col in table.columns for n in (col.name, *col.aliases)]
        cols = ", ".join(f'"{n}"' for n in dict.fromkeys(names))
        con.execute(f'CREATE TABLE "{table.name}" ({cols})')
        for alias in table.aliases:
            con.execute(f'CREATE VIEW "{alias}" AS SELECT * FROM "{table.name}"')
    # Only functions SQLite lacks: a scalar stub would shadow a built-in aggregate or window.
    builtin = {r[0].lower() for r in con.execute("SELECT name FROM pragma_function_list")}
    for name, arities in _functions()[0].items():
        if name.lower() not in builtin:
            for n in arities:
                con.create_function(name, n, lambda *a: None)
    return con


def _statements(sql: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start:i + 1]):
            out.append(sql[start:i + 1])
            start = i + 1
    out.append(sql[start:])
    # Drop pieces that are only blanks, comments and semicolons (nothing to compile).
    return [s for s in out
            if any(k not in ("space", "comment") and s[a:b] != ";" for k, a, b in _tokens(s))]


def _rejects(con: sqlite3.Connection, sql: str) -> str | None:
    """SQLite's first error for ``sql`` (each statement compiled, none run), else None."""
    for stmt in _statements(sql) or ["-- empty query"]:
        try:
            con.execute("EXPLAIN " + stmt)
        except sqlite3.Error as exc:
            return str(exc)
    return None


def _mutants(query: Query, rng: random.Random, per_query: int) -> list[Mutant]:
    sql = query.sql
    toks = [(s, e) for k, s, e in _tokens(sql) if k not in ("space", "comment")]
    ops = [("del", s, e) for s, e in toks] + [("comma", s, e) for s, e in toks if sql[s:e] == ","]
    out: dict[str, Mutant] = {}
    for kind, s, e in rng.sample(ops, min(per_query, len(ops))):
        if kind == "del":
            text, what = sql[:s] + sql[e:], f"deleted {sql[s:e][:40]!r}"
        else:
            text, what = sql[:e] + "," + sql[e:], "doubled a comma"
        if text != sql:
            out.setdefault(text, Mutant(query, text, what, s))
    return list(out.values())


def _lint(sql: str, fleet: bool) -> list[Any]:
    from osqsdk.lint import Settings, lint_text

    start = time.perf_counter()
    found = lint_text(sql, filename="q.sql", settings=Settings(fleetd=fleet))
    _LINT_TIMES.append(time.perf_counter() - start)
    return found


def _one_line(text: str, at: int = 0, width: int = 110) -> str:
    lo = max(0, at - width // 2)
    part = " ".join(text[lo:lo + width].split())
    return ("…" if lo else "") + part + ("…" if lo + width < len(text) else "")


def _timings(rounds: int) -> tuple[list[float], list[float]]:
    from osqsdk.lint import lint_paths

    corpora, pack = [], []
    cmd = [sys.executable, "-m", "osqsdk", "lint", "--no-progress", "-q", str(PACK)]
    for _ in range(rounds):
        start = time.perf_counter()
        lint_paths([str(CORPORA)])
        corpora.append(time.perf_counter() - start)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, check=False)
        pack.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]!r}")
    return corpora, pack


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-query", type=int, default=3, help="variants tried per query")
    parser.add_argument("--limit", type=int, default=1500, help="variants generated in all")
    parser.add_argument("--rounds", type=int, default=3, help="timing runs")
    args = parser.parse_args()
    if not CORPORA.is_dir():
        print(f"skipped: {CORPORA} not found (the shared corpora sit next to the checkout)")
        return 0
    sys.path.insert(0, str(REPO))
    started = time.perf_counter()
    queries = _collect()
    dbs = {False: _database(False), True: _database(True)}
    rng = random.Random(args.seed)
    rng.shuffle(queries)

    clean: list[Query] = []
    hard: list[tuple[Query, Any]] = []
    generated, kept, by_code, missed = 0, 0, 0, []
    for query in queries:
        if _rejects(dbs[query.fleet], query.sql) is not None:
            continue
        clean.append(query)
        hard += [(query, f) for f in _lint(query.sql, query.fleet) if f.code in HARD]
        if generated >= args.limit:
            continue
        for mutant in _mutants(query, rng, args.per_query)[:args.limit - generated]:
            generated += 1
            message = _rejects(dbs[query.fleet], mutant.sql)
            if message is None:
                continue
            kept += 1
            found = _lint(mutant.sql, query.fleet)
            by_code += any(f.code in HARD for f in found)
            if not any(f.severity == "error" for f in found):
                missed.append((mutant, message))
    checked = time.perf_counter() - started
    corpora_times, pack_times = _timings(args.rounds)

    flagged = kept - len(missed)
    share = 100.0 * flagged / kept if kept else 0.0
    print(f"distinct queries in the corpora:  {len(queries)} ({len(clean)} compile in SQLite)")
    print(f"mutations kept (SQLite rejects): {kept} of {generated} generated "
          f"(seed {args.seed}, <= {args.per_query} per query; {checked:.1f} s, "
          f"lint_text {1000 * sum(_LINT_TIMES) / max(1, len(_LINT_TIMES)):.1f} ms a call)")
    print(f"flagged by the linter:          {flagged} / {kept} = {share:.1f}%"
          "        target 100%")
    print(f"  of which with a compile-error code (OSQ001, OSQ103-107): {by_code} / {kept}")
    print(f"hard findings on SQLite-clean originals: {len(hard)} "
          f"(in {len({q.sql for q, _ in hard})} of {len(clean)} queries)   target 0")
    print(f"whole shared corpora lint:      {min(corpora_times):.3f}-{max(corpora_times):.3f} s"
          "     target <= 1.0 s")
    print(f"one pack incl. start-up:        {min(pack_times):.3f}-{max(pack_times):.3f} s"
          f"     target <= 0.4 s   ({PACK.name})")
    if missed:
        kinds = Counter("syntax error" if "syntax error" in msg else msg.split(":")[0]
                        for _, msg in missed)
        print("\nunflagged by SQLite's message: "
              + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
        print(f"\nunflagged mutations (first {min(EXAMPLES, len(missed))} of {len(missed)}):")
        for mutant, message in missed[:EXAMPLES]:
            print(f"  {mutant.query.file}: {mutant.what}\n    SQL:    "
                  f"{_one_line(mutant.sql, mutant.at)}\n    SQLite: {message}")
    if hard:
        print(f"\nhard findings on SQLite-clean queries (first {min(EXAMPLES, len(hard))} "
              f"of {len(hard)}):")
        for query, f in hard[:EXAMPLES]:
            print(f"  {f.code} {f.message}\n    {query.file}: {_one_line(query.sql)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
