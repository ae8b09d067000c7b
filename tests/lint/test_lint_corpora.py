"""Real packs written by others (../shared/corpora): no crash, every finding real, and the
SQL checks agree with real SQLite compiling each query against the schema's tables."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from osqsdk.lint import lint_paths
from osqsdk.lint._runner import LintResult
from osqsdk.lint.rules import (
    AmbiguousColumn,
    SyntaxError_,
    UnknownColumn,
    UnknownFunction,
    UnknownTable,
    WrongArgumentCount,
)
from osqsdk.schema import read_data

# Findings that stand for a defect in the corpora (style and cost advice is left out:
# select-star, LIKE without wildcard, recursive globs, cost estimates, double-quoted
# strings, duplicate output columns, column platforms, per-user tables without users, time
# windows on event tables). Each is listed with why it is real.
GENUINE = {
    ("fleet/docs/01-Using-Fleet/standard-query-library/standard-query-library.yml", 315,
     "OSQ201"): "declared for windows but reads `last`, which has no Windows implementation",
    ("fleet/docs/01-Using-Fleet/standard-query-library/standard-query-library.yml", 552,
     "OSQ201"): "same `last` table in a query that targets windows",
    ("fleet/docs/queries.yml", 174, "OSQ201"):
        "`google_chrome_profiles` has no ChromeOS implementation, yet the query targets chrome",
    ("fleet/docs/queries.yml", 2046, "OSQ201"): "copy of the `last` query above",
    ("fleet/docs/queries.yml", 2605, "OSQ201"): "copy of the `last` query above",
    ("fleet/docs/queries.yml", 2409, "OSQ003"):
        "a document that is not valid YAML (the corpus README says one is malformed)",
    ("osquery-attck/Linux/linux_browser_extensions.conf", 11, "OSQ103"):
        "`opera_extensions` was removed after osquery 4.6.0",
    ("osquery/packs/vuln-management.conf", 58, "OSQ103"):
        "`opera_extensions` was removed after osquery 4.6.0",
    ("osquery/packs/it-compliance.conf", 184, "OSQ203"):
        "platform `gentoo` matches no osquery host, so the query never runs",
    ("osquery/tools/tests/configs/test_inline_pack.conf", 30, "OSQ007"):
        "non-string discovery query (osquery's own invalid-on-purpose test config)",
    ("osquery/tools/tests/configs/test_inline_pack.conf", 31, "OSQ007"): "same, a list",
    ("osquery/tools/tests/configs/test_inline_pack.conf", 32, "OSQ007"): "same, an object",
    ("osquery/tools/tests/configs/test_inline_pack.conf", 42, "OSQ203"):
        "platform `lol` matches no host (test config)",
    ("osquery/tools/tests/configs/test_inline_pack.conf", 63, "OSQ203"):
        "pack platform `none` matches no host (test config)",
    ("osquery/tools/tests/configs/test_killswitch_incorrect_key.conf", 3, "OSQ002"):
        "not JSON: an unquoted key (test config)",
    ("osquery/tools/tests/configs/test_noninline_packs.conf", 4, "OSQ409"):
        "pack `lester` names no file next to the config",
    ("osquery/tools/tests/configs/test_pack.conf", 6, "OSQ203"):
        "platform `whatever` matches no host (test config)",
    ("osquery/tools/tests/configs/test_pack.conf", 14, "OSQ203"):
        "platform `invalid` matches no host (test config)",
    **{("osquery/tools/tests/configs/test_parse_items.conf", line, "OSQ007"):
       "non-string entries in path lists (test config)"
       for line in (43, 44, 45, 51, 52, 53, 58, 59, 60, 65, 66, 67)},
    ("osquery/tools/tests/configs/test_parse_items.conf", 91, "OSQ502"):
        "decorator interval 61 is not a multiple of 60; osquery skips it",
    ("palantir/Classic/Endpoints/MacOS/osquery.conf", 57, "OSQ103"):
        "`efigy` is an extension table, not core osquery (lint with --schema for it)",
    ("palantir/Fleet/Endpoints/MacOS/osquery.yaml", 670, "OSQ103"): "same `efigy` table",
    **{("palantir/Classic/Endpoints/MacOS/osquery.conf", line, "OSQ408"):
       "absolute deployment path outside the linted tree; not read, so not checked"
       for line in (292, 293, 294, 295)},
    ("palantir/Classic/Servers/Linux/osquery.conf", 282, "OSQ408"):
        "absolute deployment path outside the linted tree",
    ("palantir/Classic/Endpoints/Windows/osquery.conf", 234, "OSQ008"):
        "`wmi_script_event_consumers` defined twice; the first definition is lost",
    ("palantir/Classic/Endpoints/Windows/osquery.conf", 244, "OSQ409"):
        "references packs/unwanted-chrome-extensions.conf, which the repository lacks",
    ("palantir/Classic/Endpoints/Windows/osquery.conf", 248, "OSQ409"):
        "references packs/windows-attacks.conf, which the repository lacks",
    ("palantir/Classic/Servers/Linux/osquery.conf", 120, "OSQ103"):
        "`kernel_integrity` was removed after osquery 4.0.2",
    ("palantir/Fleet/Servers/Linux/osquery.yaml", 266, "OSQ103"): "same removed table",
    ("palantir/Fleet/Endpoints/Windows/osquery.yaml", 129, "OSQ401"):
        "interval 0: osquery (and Fleet) refuse it, the query never runs",
    ("palantir/Fleet/Endpoints/Windows/osquery.yaml", 134, "OSQ401"): "same",
}
ADVICE = {"OSQ108", "OSQ109", "OSQ110", "OSQ111", "OSQ202", "OSQ302", "OSQ303", "OSQ304",
          "OSQ305", "OSQ306", "OSQ307", "OSQ308", "OSQ309", "OSQ310", "OSQ311", "OSQ313"}


@pytest.fixture(scope="module")
def corpus(shared: Path) -> LintResult:
    return lint_paths([str(shared / "corpora")])


def _rel(finding: Any, shared: Path) -> str:
    return str(Path(finding.path).resolve().relative_to((shared / "corpora").resolve()))


def test_every_file_is_read_and_nothing_crashes(corpus: LintResult, shared: Path) -> None:
    assert not [f for f in corpus.findings if f.code == "OSQ009"]
    assert corpus.files >= 70
    queries = sum(len(d.queries) for d in corpus.run.documents)
    assert queries > 1100
    for f in corpus.findings:
        lines = Path(f.path).read_text(encoding="utf-8").count("\n") + 1
        assert 1 <= f.line <= lines and f.column >= 1, f


def test_every_defect_finding_is_a_listed_genuine_defect(corpus: LintResult, shared: Path
                                                         ) -> None:
    found = {(_rel(f, shared), f.line, f.code) for f in corpus.findings
             if f.code not in ADVICE}
    assert found == set(GENUINE)


def test_every_finding_names_its_query_or_file(corpus: LintResult) -> None:
    for f in corpus.findings:
        if f.code.startswith(("OSQ1", "OSQ3")) and f.code != "OSQ307":
            assert f.query is not None, f


# --- the SQLite cross-check ----------------------------------------------------------------

def _database(schema: Any, views: dict[str, str]) -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    for table in schema:
        names = []
        for col in table.columns:
            names += [col.name, *col.aliases]
        cols = ", ".join(f'"{n}"' for n in dict.fromkeys(names))
        con.execute(f'CREATE TABLE "{table.name}" ({cols})')
        for alias in table.aliases:
            con.execute(f'CREATE VIEW "{alias}" AS SELECT * FROM "{table.name}"')
    for fn in read_data("functions.json")["osquery"]:
        for n in fn["nargs"]:
            con.create_function(fn["name"], n, lambda *a: None)
    for name, sql in views.items():
        try:
            con.execute(f'CREATE VIEW "{name}" AS {sql}')
        except sqlite3.Error:
            pass
    return con


def _statements(sql: str) -> list[str]:
    out, start = [], 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start:i + 1]):
            out.append(sql[start:i + 1])
            start = i + 1
    if sql[start:].strip():
        out.append(sql[start:])
    return [s for s in out if s.strip(" \t\r\n;")]


def _sqlite_verdicts(con: sqlite3.Connection, sql: str) -> list[str]:
    verdicts = []
    for stmt in _statements(sql):
        try:
            con.execute("EXPLAIN " + stmt)
            verdicts.append("ok")
        except sqlite3.Error as exc:
            verdicts.append(str(exc))
    return verdicts


_CHECKS = (SyntaxError_, UnknownTable, UnknownColumn, AmbiguousColumn, UnknownFunction,
           WrongArgumentCount)


def test_sql_checks_agree_with_sqlite(corpus: LintResult) -> None:
    from osqsdk.lint._runner import _fleetd
    from osqsdk.schema._load import overlay

    views = {n: r.sql for d in corpus.run.documents for n, r in d.views.items()}
    base = corpus.run.schema
    dbs = {False: _database(base, views), True: _database(overlay(base, _fleetd()), views)}
    rules = [r() for r in _CHECKS]
    disagreements, compared, accepted = [], 0, 0
    for unit in corpus.run.units:
        if unit.parsed.too_deep:
            continue
        mine: dict[str, list[dict[str, Any]]] = {}
        for rule in rules:
            for rep in rule.check(unit):
                mine.setdefault(rep.rule.code, []).append(dict(rep.args))
        verdicts = _sqlite_verdicts(dbs[unit.document.fleet], unit.record.sql)
        compared += 1
        where = f"{unit.document.path} [{unit.record.name}]"
        if all(v == "ok" for v in verdicts):
            accepted += 1
            for code in ("OSQ001", "OSQ103", "OSQ104", "OSQ105", "OSQ106", "OSQ107"):
                if code in mine:
                    disagreements.append(f"{where}: SQLite accepts it, linter says {code} "
                                         f"{mine[code]}")
            continue
        for verdict in verdicts:
            m = re.match(r"no such table: (?:main\.)?(\S+)", verdict)
            if m:
                tables = {a["table"].lower() for a in mine.get("OSQ103", [])}
                if m.group(1).lower() not in tables:
                    disagreements.append(f"{where}: SQLite: {verdict}; linter: {mine}")
            elif verdict.startswith(("no such column", "cannot join using column")):
                if "OSQ104" not in mine and "OSQ103" not in mine:
                    disagreements.append(f"{where}: SQLite: {verdict}; linter: {mine}")
            elif verdict.startswith("ambiguous column"):
                if "OSQ105" not in mine:
                    disagreements.append(f"{where}: SQLite: {verdict}; linter: {mine}")
            elif verdict.startswith(("no such function", "wrong number of arguments")):
                if not {"OSQ106", "OSQ107"} & set(mine):
                    disagreements.append(f"{where}: SQLite: {verdict}; linter: {mine}")
            elif (("syntax error" in verdict or "incomplete input" in verdict)
                  and "OSQ001" not in mine):
                disagreements.append(f"{where}: SQLite: {verdict}; linter: {mine}")
    assert compared > 1100 and accepted > 1000
    assert not disagreements, "\n".join(disagreements)
