"""Every rule's YAML pass/fail cases (tests/lint/cases/<CODE>.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lint_helpers import CASES, lint_file, write_schema


def _cases() -> list[Any]:
    out = []
    for path in sorted(CASES.glob("OSQ*.yaml")):
        data = yaml.safe_load(path.read_text())
        for name, case in data["cases"].items():
            out.append(pytest.param(data["rule"], name, case, id=f"{data['rule']}-{name}"))
    return out


def _content(case: dict[str, Any], key: str) -> str | bytes:
    if "bytes" in case:
        return case["bytes"].encode("latin-1")
    if "repeat" in case:
        r = case["repeat"]
        return (r.get("prefix", "") + r["open"] * r["times"] + r.get("middle", "")
                + r["close"] * r["times"] + r.get("suffix", ""))
    return case[key]


@pytest.mark.parametrize("code,name,case", _cases())
def test_rule_case(tmp_path: Path, code: str, name: str, case: dict[str, Any]) -> None:
    key = "fail" if "fail" in case else "pass"
    settings = dict(case.get("settings", {}))
    if "platform" in settings:
        settings["platform"] = frozenset(settings["platform"])
    if "schema" in case:
        settings["schema_files"] = (write_schema(tmp_path, case["schema"]),)
    findings = lint_file(tmp_path, case.get("file", "query.sql"), _content(case, key), **settings)
    mine = [f for f in findings if f.code == code]
    shown = "\n".join(str(f) for f in findings)
    assert not [f for f in findings if f.code == "OSQ009"], shown
    if key == "pass":
        assert not mine, shown
        return
    assert mine, f"expected {code}, got:\n{shown}"
    if "count" in case:
        assert len(mine) == case["count"], shown
    for arg, value in case.get("args", {}).items():
        assert any(f.arguments.get(arg) == value for f in mine), \
            f"no {code} with {arg}={value!r}:\n" + "\n".join(repr(f.args) for f in mine)
    for f in mine:
        assert f.line >= 1 and f.column >= 1
        assert f.path.endswith(case.get("file", "query.sql"))
