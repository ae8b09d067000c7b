"""Every finding points at the real file, line and column, also inside JSON strings."""

from __future__ import annotations

from pathlib import Path

import pytest
from lint_helpers import lint_file


def _where(findings: list, code: str) -> tuple[int, int]:
    f = next(f for f in findings if f.code == code)
    return f.line, f.column


def _text_at(path: Path, line: int, col: int, n: int) -> str:
    return path.read_text().splitlines()[line - 1][col - 1:col - 1 + n]


@pytest.mark.parametrize("name,text,token", [
    ("plain", '{"queries": {"a": {"query": "SELECT nmae FROM processes"}}}', "nmae"),
    ("escaped quotes before", ('{"queries": {"a": {"query": "SELECT \\"x\\" AS y, nmae FROM '
                               'processes"}}}'), "nmae"),
    ("unicode escape before", ('{"queries": {"a": {"query": "SELECT \'\\u00e9\' AS e, nmae '
                               'FROM processes"}}}'), "nmae"),
    ("tab escape before", '{"queries": {"a": {"query": "SELECT\\tnmae FROM processes"}}}',
     "nmae"),
])
def test_sql_in_json_string(tmp_path: Path, name: str, text: str, token: str) -> None:
    findings = lint_file(tmp_path, "p.conf", "\n\n   " + text)
    line, col = _where(findings, "OSQ104")
    assert _text_at(tmp_path / "p.conf", line, col, len(token)) == token


def test_sql_across_backslash_newline_and_after_comment_lines(tmp_path: Path) -> None:
    text = ('{\n'
            '  // a comment osquery drops\n'
            '  # another\n'
            '  "queries": {"a": {"query": "SELECT pid, \\\n'
            '        nmae FROM processes"}}\n'
            '}\n')
    findings = lint_file(tmp_path, "p.conf", text)
    assert _where(findings, "OSQ104") == (5, 9)


def test_sql_in_yaml_block_scalar(tmp_path: Path) -> None:
    text = ("apiVersion: v1\nkind: query\nspec:\n  name: q\n  query: |\n"
            "    SELECT pid,\n      nmae\n    FROM processes\n")
    findings = lint_file(tmp_path, "q.yml", text)
    assert _where(findings, "OSQ104") == (7, 7)


def test_sql_in_yaml_folded_plain_scalar(tmp_path: Path) -> None:
    text = ("- name: q\n  query: SELECT pid, name\n    FROM proceses\n")
    findings = lint_file(tmp_path, "q.yml", text)
    assert _where(findings, "OSQ103") == (3, 10)


def test_structure_error_at_the_value(tmp_path: Path) -> None:
    text = '{\n  "queries": {\n    "a": {\n      "query": "SELECT 1",\n      "interval": true\n    }\n  }\n}\n'
    findings = lint_file(tmp_path, "p.conf", text)
    assert _where(findings, "OSQ007") == (5, 19)


def test_end_position_covers_the_token(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "q.sql", "SELECT pid FROM proceses")
    f = next(f for f in findings if f.code == "OSQ103")
    assert (f.line, f.column, f.end_line, f.end_column) == (1, 17, 1, 25)


def test_syntax_error_position(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "q.sql", "SELECT pid\nFROM processes\nWHERE pid = = 1")
    f = next(f for f in findings if f.code == "OSQ001")
    assert f.line == 3


@pytest.mark.parametrize("name,text,where", [
    ("p.conf", '{\r\n  // c\r\n  "queries": {"a": {"query": "SELECT nmae FROM processes"}}\r\n}\r\n',
     (3, 38)),
    ("p.yml", "kind: query\r\nspec:\r\n  name: a\r\n  query: SELECT nmae FROM processes\r\n",
     (4, 17)),
    ("p.sql", "-- platform: linux\r\nSELECT nmae FROM processes\r\n", (2, 8)),
])
def test_crlf_files(tmp_path: Path, name: str, text: str, where: tuple[int, int]) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode())
    from osqsdk.lint import lint_paths

    findings = lint_paths([str(path)]).findings
    assert _where(findings, "OSQ104") == where
