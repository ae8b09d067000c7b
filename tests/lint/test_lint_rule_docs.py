"""Rule metadata and documentation: unique codes, kebab names, ruff-style docs, cases."""

from __future__ import annotations

import inspect
import re

import pytest
import yaml
from lint_helpers import CASES

from osqsdk.cli import main
from osqsdk.lint.rules import ALL_RULES, rule_by_code

# Rules that cannot have a failing case by design.
NO_FAIL_CASE = {"OSQ009": "reports the linter's own bugs; no valid input triggers it"}


def test_codes_and_names_are_unique_and_well_formed() -> None:
    codes = [r.code for r in ALL_RULES]
    names = [r.name for r in ALL_RULES]
    assert len(set(codes)) == len(codes)
    assert len(set(names)) == len(names)
    for rule in ALL_RULES:
        assert re.fullmatch(r"OSQ\d{3}", rule.code), rule
        assert re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", rule.name), rule
        assert not rule.name.startswith(("no-", "disallow-", "banned-")), rule
        assert rule.severity in ("error", "warning", "info")
        assert rule.message


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_rule_doc_has_the_sections_in_order(rule) -> None:  # type: ignore[no-untyped-def]
    doc = rule.doc()
    lines = doc.splitlines()
    assert lines and lines[0].strip() and not lines[0].startswith("#"), "summary line first"
    assert lines[0].rstrip().endswith("."), "summary is a sentence"
    why = doc.find("## Why is this bad?")
    example = doc.find("## Example")
    instead = doc.find("Use instead:")
    assert why > 0, "missing '## Why is this bad?'"
    assert example > why, "missing '## Example' after the why"
    assert instead > example, "missing 'Use instead:' after the example"
    optional = [doc.find(h) for h in ("## Known problems", "## Options", "## References")]
    present = [i for i in optional if i != -1]
    assert present == sorted(present) and all(i > instead for i in present)
    if "settings" in inspect.getsource(rule):
        assert "## Options" in doc, "the rule reads settings: say which under '## Options'"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.code)
def test_every_rule_has_yaml_cases(rule) -> None:  # type: ignore[no-untyped-def]
    path = CASES / f"{rule.code}.yaml"
    assert path.is_file(), f"missing {path.name}"
    data = yaml.safe_load(path.read_text())
    assert data["rule"] == rule.code
    kinds = {("fail" if "fail" in c else "pass") for c in data["cases"].values()}
    assert "pass" in kinds
    if rule.code not in NO_FAIL_CASE:
        assert "fail" in kinds


def test_rule_command_prints_the_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule", "OSQ104"]) == 0
    out = capsys.readouterr().out
    assert "unknown-column" in out and "## Why is this bad?" in out
    assert main(["rule", "missing-required-constraint"]) == 0
    assert "OSQ301" in capsys.readouterr().out
    assert main(["rule", "OSQ999"]) == 2


def test_rules_command_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for rule in ALL_RULES:
        assert rule.code in out and rule.name in out
    assert rule_by_code("osq104") is rule_by_code("unknown-column")
