"""The static cost model: each term follows from the facts in schema/cost.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osqsdk.lint._cost import cost_facts, estimate
from osqsdk.lint._runner import _functions
from osqsdk.lint._sql import analyze, parse
from osqsdk.schema import default_schema

REPO = Path(__file__).resolve().parents[2]


def _cost(sql: str):  # type: ignore[no-untyped-def]
    parsed = parse(sql)
    return estimate(analyze(parsed.statements[0], default_schema(), sql, _functions()[1]))


def _class(name: str) -> dict:
    facts = cost_facts()
    return facts["classes"][facts["tables"].get(name, "unclassified")]


def test_every_class_and_pattern_has_a_reason() -> None:
    facts = json.loads((REPO / "schema" / "cost.json").read_text())
    for name, cls in facts["classes"].items():
        assert cls["reason"].strip() and cls["ms"] > 0, name
    for name, pat in facts["patterns"].items():
        assert pat["reason"].strip(), name
    tables = {t.name for t in default_schema()} | {"yara"}
    for table, cls in facts["tables"].items():
        assert cls in facts["classes"], table
        assert table in tables, table


def test_flat_table_costs_its_class() -> None:
    cost = _cost("SELECT pid FROM processes")
    assert cost.ms == _class("processes")["ms"]
    assert cost.rows == _class("processes")["rows"]


def test_per_path_table_scales_with_listed_values() -> None:
    one = _cost("SELECT md5 FROM hash WHERE path = '/etc/hosts'")
    three = _cost("SELECT md5 FROM hash WHERE path IN ('/a', '/b', '/c')")
    assert one.ms == _class("hash")["ms"]
    assert three.ms == 3 * one.ms


def test_recursive_pattern_costs_the_recursive_fact() -> None:
    cost = _cost("SELECT path FROM file WHERE path LIKE '/Users/%%'")
    paths = cost_facts()["patterns"]["recursive"]["paths"]
    assert cost.ms == pytest.approx(_class("file")["ms"] * paths)
    assert "recursive" in cost.explain()


def test_join_multiplies_by_the_driving_rows() -> None:
    cost = _cost("SELECT p.pid, h.md5 FROM processes p JOIN hash h ON h.path = p.path")
    expected = _class("processes")["ms"] + _class("hash")["ms"] * _class("processes")["rows"]
    assert cost.ms == pytest.approx(expected)
    assert "joined table" in cost.explain()


def test_unconstrained_per_process_table_visits_every_process() -> None:
    every = _cost("SELECT path FROM process_open_files")
    one = _cost("SELECT path FROM process_open_files WHERE pid = 1")
    cls = _class("process_open_files")
    assert every.ms == cls["ms"] * cls["unconstrained"]
    assert one.ms == cls["ms"]
    assert every.label == "very high" or every.ms >= 1000


def test_daily_budget_scales_with_interval(tmp_path: Path) -> None:
    from lint_helpers import lint_file

    sql = "SELECT name, version FROM deb_packages"
    per_run = _cost(sql).ms
    budget = 3_600_000
    fast = int(86400 * per_run / budget) - 1  # just over the daily budget
    slow = int(86400 * per_run / budget) + 5
    over = lint_file(tmp_path, "a.conf", json.dumps(
        {"queries": {"q": {"query": sql, "interval": fast}}}))
    under = lint_file(tmp_path, "b.conf", json.dumps(
        {"queries": {"q": {"query": sql, "interval": slow}}}))
    assert "OSQ306" in {f.code for f in over}
    assert "OSQ306" not in {f.code for f in under}
