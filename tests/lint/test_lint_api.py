"""The Python API: lint_paths / lint_text return finding values."""

from __future__ import annotations

from pathlib import Path

import pytest

from osqsdk.lint import Finding, LintResult, Settings, all_rules, lint_paths, lint_text


def test_lint_text_returns_findings_with_structured_args() -> None:
    findings = lint_text('{"queries": {"a": {"query": "SELECT * FROM proceses"}}}',
                         filename="pack.conf")
    assert [f.code for f in findings] == ["OSQ103"]
    f = findings[0]
    assert isinstance(f, Finding)
    assert f.arguments == {"table": "proceses", "detail": "", "suggestion": "processes"}
    assert f.message == "no such table: proceses" and f.hint == "did you mean 'processes'?"
    assert (f.query, f.pack) == ("a", "pack")
    with pytest.raises(AttributeError):
        f.code = "x"  # type: ignore[misc]


@pytest.mark.parametrize("kind,text", [
    ("sql", "SELECT nmae FROM processes"),
    ("json", '{"queries": {"a": {"query": "SELECT nmae FROM processes"}}}'),
    ("yaml", "- name: a\n  query: SELECT nmae FROM processes\n"),
])
def test_lint_text_kinds(kind: str, text: str) -> None:
    assert [f.code for f in lint_text(text, kind=kind)] == ["OSQ104"]


def test_lint_paths_result_is_a_sequence_of_findings(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT nmae FROM processes")
    (tmp_path / "b.sql").write_text("SELECT pid FROM processes")
    result = lint_paths([tmp_path])
    assert isinstance(result, LintResult)
    assert len(result) == 1 and result[0].code == "OSQ104" and list(result) == result.findings
    assert result.exit_code() == 1 and result.exit_code("info") == 1
    assert lint_paths([tmp_path / "b.sql"]).exit_code() == 0


def test_settings_select_through_the_api(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT * FROM proceses")
    only = lint_paths([tmp_path], settings=Settings(select=("OSQ110",)))
    assert [f.code for f in only] == []  # unknown table: nothing for SELECT * to expand
    every = lint_paths([tmp_path], settings=Settings())
    assert [f.code for f in every] == ["OSQ103"]


def test_all_rules_lists_classes_with_docs() -> None:
    rules = all_rules()
    assert len(rules) >= 45
    assert all(r.doc() and r.summary() for r in rules)
