"""Output formats: text, json, sarif (2.1.0) and github (workflow commands)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from osqsdk.lint._finding import SEVERITIES, Finding

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "concise", "json", "sarif", "github")
#: Characters of a source line shown around the column (minified JSON can be one long line).
_CONTEXT = 60

_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def render(findings: list[Finding], fmt: str, *, summary: bool = True,
           sources: Mapping[str, Callable[[int], str]] | None = None,
           statistics: bool = False, rule_docs_url: str | None = None) -> str:
    """All findings in format ``fmt``.

    ``text`` shows each finding's severity, the source line with a caret under the column
    (``sources`` maps a path to a function giving its 1-based line), and the hint;
    ``concise`` one line per finding. ``statistics`` counts findings per rule instead.
    ``rule_docs_url`` is the template of SARIF's help URIs (default: the packaged page).
    """
    if statistics:
        return _statistics(findings)
    if fmt == "json":
        return json.dumps([f.to_json() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif(findings, rule_docs_url), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) + "\n" for f in findings)
    lines: list[str] = []
    for f in findings:
        lines.append(_headline(f))
        if fmt == "text":
            line_of = (sources or {}).get(f.path)
            lines.extend(_snippet(f, line_of(f.line) if line_of is not None else None))
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


def _headline(f: Finding) -> str:
    where = f" [{f.query}]" if f.query else ""
    return f"{f.path}:{f.line}:{f.column}: {f.code} {f.severity}: {f.message}{where}"


def _snippet(f: Finding, source: str | None) -> list[str]:
    """The source line with a caret under the finding, then its hint, indented."""
    out: list[str] = []
    if source is not None and source.strip():
        source = source.expandtabs(1).rstrip("\r")
        col = max(1, min(f.column, len(source) + 1)) - 1
        width = (f.end_column - f.column if f.end_line == f.line and f.end_column > f.column
                 else 1)
        start = max(0, col - _CONTEXT)
        end = min(len(source), col + max(width, 1) + _CONTEXT)
        shown = ("…" if start else "") + source[start:end] + ("…" if end < len(source) else "")
        pad = col - start + (1 if start else 0)
        number = str(f.line)
        gutter = " " * len(number)
        out += [f"{gutter} |", f"{number} | {shown}",
                f"{gutter} | {' ' * pad}{'^' * max(1, min(width, end - col))}"]
    if f.hint:
        out.append(f"  = hint: {f.hint}")
    if out:
        out.append("")
    return out


def _statistics(findings: list[Finding]) -> str:
    counts: dict[tuple[str, str, str], int] = {}
    for f in findings:
        key = (f.code, f.name, f.severity)
        counts[key] = counts.get(key, 0) + 1
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0]))
    width = max((len(str(n)) for _, n in rows), default=1)
    lines = [f"{n:>{width}}  {code}  {name} ({severity})" for (code, name, severity), n in rows]
    lines.append(f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''}."
                 if findings else "All checks passed.")
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


def sarif(findings: Iterable[Finding], rule_docs_url: str | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: every rule, with the URI of its documentation, and
    one result per finding."""
    from osqsdk._version import __version__
    from osqsdk.lint._ruledocs import help_uri
    from osqsdk.lint.rules import ALL_RULES

    findings = list(findings)
    index = {r.code: i for i, r in enumerate(ALL_RULES)}
    rules = [{
        "id": r.code, "name": r.name,
        "shortDescription": {"text": r.summary()},
        "fullDescription": {"text": r.doc()},
        "help": {"text": r.doc(), "markdown": r.doc()},
        "helpUri": help_uri(r, rule_docs_url),
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
