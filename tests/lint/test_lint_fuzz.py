"""Hypothesis: the loader and the rules never raise, and every finding has a location."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osqsdk.lint import lint_text

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

TABLES = ["processes", "users", "file", "hash", "process_events", "apps", "proceses",
          "json_each('[1]')", "registry", "yara", "(SELECT pid AS p FROM processes)"]
COLUMNS = ["pid", "name", "path", "uid", "nmae", '"x"', "p", "*", "t.pid", "directory"]
OPS = ["=", "LIKE", "IN", "<", "OR", "AND", "||", "GLOB"]


def _check(findings: list) -> None:
    for f in findings:
        assert f.code != "OSQ009", f
        assert f.line >= 1 and f.column >= 1 and f.end_line >= f.line, f
        assert isinstance(f.message, str) and f.message


@FUZZ
@given(st.text(max_size=400))
def test_any_text_as_a_pack(text: str) -> None:
    _check(lint_text(text, filename="pack.conf"))


@FUZZ
@given(st.text(max_size=400))
def test_any_text_as_yaml(text: str) -> None:
    _check(lint_text(text, filename="fleet.yml"))


@FUZZ
@given(st.text(max_size=300))
def test_any_text_as_sql(text: str) -> None:
    _check(lint_text(text, filename="query.sql"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 700000) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["queries", "query", "interval", "platform", "snapshot", "removed",
                         "shard", "discovery", "packs", "schedule", "decorators", "load",
                         "always", "views", "options", "a", "b"]), inner, max_size=5),
    max_leaves=25)


@FUZZ
@given(json_values)
def test_any_json_shape_as_a_config(value: object) -> None:
    _check(lint_text(json.dumps(value), filename="osquery.conf"))


@st.composite
def queries(draw: st.DrawFn) -> str:
    cols = ", ".join(draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3)))
    table = draw(st.sampled_from(TABLES))
    sql = f"SELECT {cols} FROM {table} t"
    if draw(st.booleans()):
        other = draw(st.sampled_from(TABLES))
        sql += f" JOIN {other} u " + draw(st.sampled_from(["USING (pid)", "ON t.pid = u.pid",
                                                           ""]))
    if draw(st.booleans()):
        col = draw(st.sampled_from(COLUMNS[:-3]))
        op = draw(st.sampled_from(OPS))
        rhs = "('a', 'b')" if op == "IN" else "'/tmp/%'"
        if op in ("OR", "AND"):
            sql += f" WHERE path = '/a' {op} {col} = 1"
        else:
            sql += f" WHERE {col} {op} {rhs}"
    if draw(st.booleans()):
        sql += draw(st.sampled_from([" ORDER BY 1", " LIMIT 1", " GROUP BY pid", ";",
                                     "; SELECT 1", " UNION SELECT 1"]))
    return sql


@FUZZ
@given(queries(), st.sampled_from(["", "linux", "darwin", "windows", "macos"]),
       st.integers(-5, 700000), st.booleans())
def test_generated_queries_in_packs(sql: str, platform: str, interval: int,
                                    snapshot: bool) -> None:
    pack = {"platform": platform, "queries": {"q": {"query": sql, "interval": interval,
                                                    "snapshot": snapshot}}}
    _check(lint_text(json.dumps(pack), filename="pack.conf"))
    _check(lint_text(json.dumps({"decorators": {"load": [sql]}, "schedule": {
        "q": {"query": sql}}}), filename="osquery.conf"))


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_as_a_file(tmp_path_factory, data: bytes) -> None:  # type: ignore[no-untyped-def]
    from osqsdk.lint import lint_paths

    path = Path(tmp_path_factory.mktemp("fuzz")) / "x.conf"
    path.write_bytes(data)
    _check(lint_paths([str(path)]).findings)


SQL_WORDS = ["SELECT", "FROM", "WHERE", "JOIN", "USING", "ON", "(", ")", ",", "*", "'a'",
             '"b"', "pid", "processes", "users", "file", "p", ".", "=", "LIKE", "OR", "AND",
             "NOT", "IN", "WITH", "AS", "UNION", "json_each", "count", "regex_match", ";",
             "--x\n", "/*", "*/", "1", "LIMIT", "ORDER BY", "GROUP BY", "x", "CASE", "WHEN",
             "THEN", "END", "EXISTS", "VALUES", "RECURSIVE", "NATURAL", "LEFT"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SQL_WORDS), max_size=30))
def test_sql_token_soup(words: list[str]) -> None:
    _check(lint_text(" ".join(words), filename="query.sql"))
