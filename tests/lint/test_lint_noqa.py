"""Suppressions: whole-line comments in JSON and YAML, SQL comments, per-file ignores."""

from __future__ import annotations

from pathlib import Path

import pytest
from lint_helpers import codes, lint_file

PACK = """{{
  "queries": {{
{comment}
    "a": {{
      "query": "SELECT * FROM users WHERE x = 1"
    }},
    "b": {{"query": "SELECT * FROM groups WHERE y = 1"}}
  }}
}}
"""


@pytest.mark.parametrize("comment,expected", [
    ("", ["OSQ104", "OSQ104", "OSQ110", "OSQ110"]),
    ("    // osqsdk: ignore[OSQ110]", ["OSQ104", "OSQ104", "OSQ110"]),
    ("    // osqsdk: ignore[unknown-column]", ["OSQ104", "OSQ110", "OSQ110"]),
    ("    # osqsdk: ignore[OSQ104, OSQ110]", ["OSQ104", "OSQ110"]),
    ("    // osqsdk: ignore", ["OSQ104", "OSQ110"]),
    ("    // osqsdk: ignore-file[OSQ110]", ["OSQ104", "OSQ104"]),
    ("    // osqsdk: ignore-file", []),
])
def test_json_comment_suppressions(tmp_path: Path, comment: str, expected: list[str]) -> None:
    assert codes(lint_file(tmp_path, "p.conf", PACK.format(comment=comment))) == expected


def test_sql_comment_suppresses_within_its_query(tmp_path: Path) -> None:
    text = ('{"queries": {"a": {"query": "SELECT * FROM users -- osqsdk: ignore[OSQ110]\\n"}, '
            '"b": {"query": "SELECT * FROM groups"}}}')
    findings = lint_file(tmp_path, "p.conf", text)
    assert [(f.code, f.query) for f in findings] == [("OSQ110", "b")]


def test_sql_file_comment(tmp_path: Path) -> None:
    text = "-- osqsdk: ignore[select-star]\nSELECT * FROM users WHERE nope = 1\n"
    assert codes(lint_file(tmp_path, "q.sql", text)) == ["OSQ104"]


def test_yaml_comment_applies_to_the_next_entry(tmp_path: Path) -> None:
    text = ("# osqsdk: ignore[OSQ110]\n- name: a\n  query: SELECT * FROM users\n"
            "- name: b\n  query: SELECT * FROM groups\n")
    findings = lint_file(tmp_path, "q.yml", text)
    assert [(f.code, f.query) for f in findings] == [("OSQ110", "b")]


def test_per_file_ignores(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "legacy.sql", "SELECT * FROM users",
                         per_file_ignores=(("legacy*.sql", ("OSQ110",)),),
                         base_dir=str(tmp_path))
    assert findings == []
