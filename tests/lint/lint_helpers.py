"""Helpers shared by the linter's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from osqsdk.lint import lint_paths
from osqsdk.lint._settings import Settings

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CASES = Path(__file__).resolve().parent / "cases"


def lint_file(tmp_path: Path, name: str, content: str | bytes, **settings: Any) -> list:
    """Write one file and lint it with every rule selected (unless ``select`` is given);
    return the findings."""
    settings.setdefault("select", ("ALL",))
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return lint_paths([str(path)], settings=Settings(**settings)).findings


def codes(findings: list) -> list[str]:
    return sorted(f.code for f in findings)


def assert_findings(findings: list, *expected: str) -> None:
    """The findings' codes are exactly ``expected`` (as a multiset); prints all on failure."""
    got = codes(findings)
    assert got == sorted(expected), "\n".join(str(f) for f in findings)


def write_schema(tmp_path: Path, tables: list[dict]) -> str:
    path = tmp_path / "extension.schema.json"
    path.write_text(json.dumps(tables))
    return str(path)
