"""Output formats: text, json, sarif (2.1.0) and github (workflow commands)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from osqsdk.lint._finding import SEVERITIES, Finding

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "sarif", "github")

_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def render(findings: list[Finding], fmt: str, *, summary: bool = True) -> str:
    """All findings in format ``fmt``."""
    if fmt == "json":
        return json.dumps([f.to_json() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) + "\n" for f in findings)
    lines = [str(f) for f in findings]
    if summary:
        if findings:
            counts: dict[str, int] = {}
            for f in findings:
                counts[f.severity] = counts.get(f.severity, 0) + 1
            parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}"
                     for s in SEVERITIES if s in counts]
            lines.append(f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''} "
                         f"({', '.join(parts)}).")
        else:
            lines.append("All checks passed.")
    return "".join(line + "\n" for line in lines)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(f: Finding) -> str:
    props = (f"file={_escape_prop(f.path)},line={f.line},col={f.column},"
             f"endLine={f.end_line},endColumn={f.end_column},"
             f"title={_escape_prop(f.code + ' ' + f.name)}")
    where = f" [{f.query}]" if f.query else ""
    return f"::{_GITHUB_LEVEL[f.severity]} {props}::{_escape_data(f.message + where)}"


def sarif(findings: Iterable[Finding]) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: the rules used and one result per finding."""
    from osqsdk._version import __version__
    from osqsdk.lint.rules import ALL_RULES

    findings = list(findings)
    index = {r.code: i for i, r in enumerate(ALL_RULES)}
    rules = [{
        "id": r.code, "name": r.name,
        "shortDescription": {"text": r.summary()},
        "fullDescription": {"text": r.doc()},
        "help": {"text": r.doc(), "markdown": r.doc()},
        "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
    } for r in ALL_RULES]
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.code, "ruleIndex": index.get(f.code, 0),
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message + (f" ({f.hint})" if f.hint else "")},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path.replace("\\", "/")},
                "region": {"startLine": f.line, "startColumn": f.column,
                           "endLine": max(f.end_line, f.line),
                           "endColumn": f.end_column if f.end_line > f.line
                           else max(f.end_column, f.column)},
            }}],
        }
        props = {k: v for k, v in (("query", f.query), ("pack", f.pack)) if v}
        if props:
            result["properties"] = props
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "osqsdk-lint", "version": __version__,
                                "informationUri": "https://osquery.io/schema",
                                "rules": rules}},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    }
