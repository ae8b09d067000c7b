"""``osqsdk lint --fix`` and ``--diff``: mechanical edits for findings that have one.

A fix is one replacement of a span of a file's text. Everything outside the span stays as
it was, byte for byte (comments, key order, indentation, line endings, a BOM). Every fix is
checked before it is kept, on the edited text: the document must still parse and hold the
same queries, and a fix that changes a query's text must leave SQLite's compiled program for
that query unchanged (the same columns read, the same literals compared; docs/lint.md §1.9).

Fixes:

* OSQ108 (safe): a double-quoted word SQLite reads as a string becomes a single-quoted
  string. SQLite compiles both to the same program, and the check proves it per query.
* OSQ007 on a ``platform`` list (unsafe): osqueryd ignores a list, so the query runs on
  every platform; the comma-separated string it reads instead limits the query to the
  platforms listed, which is what the author wrote but not what runs today.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from osqsdk.lint._files import write_file
from osqsdk.lint._finding import Finding

if TYPE_CHECKING:  # pragma: no cover
    from osqsdk.lint._model import Document
    from osqsdk.lint._runner import LintResult
    from osqsdk.lint._settings import Settings

__all__ = ["Fix", "FixPlan", "fixable", "plan_fixes"]

_PLATFORMS = frozenset({"linux", "darwin", "windows", "freebsd", "posix", "any", "all"})


@dataclass(frozen=True)
class Fix:
    path: str
    start: int          #: character offsets into the file's text
    end: int
    replacement: str
    code: str
    safe: bool
    title: str


@dataclass
class FixPlan:
    """The fixes kept for each file, and the new text of each file they change."""

    fixes: dict[str, list[Fix]]
    texts: dict[str, tuple[str, str]]  # path -> (old text, new text)
    reasons: _Rejected  # fixes offered by a rule but refused by the check, by why

    @property
    def rejected(self) -> int:
        return self.reasons.total()

    def count(self) -> int:
        return sum(len(v) for v in self.fixes.values())

    def diff(self) -> str:
        out: list[str] = []
        for path, (old, new) in sorted(self.texts.items()):
            out.extend(difflib.unified_diff(old.splitlines(keepends=True),
                                            new.splitlines(keepends=True),
                                            f"a/{path}", f"b/{path}"))
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of "
                       "file\n" for line in out)

    def write(self) -> list[str]:
        """Write every changed file in place (its BOM kept); the paths written."""
        written = []
        for path, (_, new) in sorted(self.texts.items()):
            with open(path, "rb") as fh:
                bom = fh.read(3) == b"\xef\xbb\xbf"
            data = (b"\xef\xbb\xbf" if bom else b"") + new.encode("utf-8", "surrogateescape")
            write_file(path, data)  # through a symlink; in place for hard links
            written.append(path)
        return written


def _quoted_fix(doc: Document, f: Finding) -> Fix | None:
    text = doc.source.text
    start = doc.source.offset(f.line, f.column)
    end = doc.source.offset(f.end_line, f.end_column)
    span = text[start:end]
    for quote in ('\\"', '"'):  # inside a JSON string, or raw (YAML block, .sql)
        if len(span) > 2 * len(quote) and span.startswith(quote) and span.endswith(quote):
            inner = span[len(quote):-len(quote)]
            if any(c in inner for c in "'\"\\\n"):
                return None
            return Fix(f.path, start, end, f"'{inner}'", f.code, True,
                       f"use single quotes: '{inner}'")
    return None


def _platform_fix(doc: Document, f: Finding) -> Fix | None:
    where = str(f.arguments.get("where", ""))
    if not where.endswith("/platform") or "list" not in str(f.arguments.get("detail", "")) \
            or doc.kind not in ("config", "pack"):
        return None
    start = doc.source.offset(f.line, f.column)
    end = doc.source.offset(f.end_line, f.end_column)
    try:
        items = json.loads(doc.source.text[start:end])
    except ValueError:
        return None
    if not (isinstance(items, list) and items and all(
            isinstance(i, str) and i.strip().lower() in _PLATFORMS for i in items)):
        return None
    joined = ",".join(i.strip().lower() for i in items)
    return Fix(f.path, start, end, json.dumps(joined), f.code, False,
               f'platform "{joined}" (osqueryd ignores a list)')


_FIXERS = {"OSQ108": _quoted_fix, "OSQ007": _platform_fix}


def _apply(text: str, fixes: Iterable[Fix]) -> str:
    for fix in sorted(fixes, key=lambda x: x.start, reverse=True):
        text = text[:fix.start] + fix.replacement + text[fix.end:]
    return text


def _records(doc_path: str, text: str) -> tuple[dict[tuple[Any, ...], Any], int]:
    """The queries of ``text`` parsed as the file at ``doc_path``, by where they sit, and
    how many documents in it do not parse."""
    from osqsdk.lint._inputs import Loader

    loader = Loader([])
    loaded = loader.load_text(doc_path, text)
    broken = sum(1 for r in loader.reports if r.rule.code in ("OSQ002", "OSQ003", "OSQ004"))
    if loaded is None:
        return {}, broken + 1
    return {(rec.kind, rec.path): rec for rec in loaded.queries}, broken


@dataclass
class _Rejected:
    compile: int = 0   # the query does not compile, so no check can be made
    meaning: int = 0   # SQLite compiles the edited query differently
    format: int = 0    # the file would not read the same (e.g. a YAML quoting rule)

    def total(self) -> int:
        return self.compile + self.meaning + self.format


def plan_fixes(result: LintResult, settings: Settings, *, unsafe: bool = False) -> FixPlan:
    """The fixes for ``result``'s findings that pass the check, file by file.

    All the fixes of a file are applied and checked together, with one parse of the edited
    text; a query whose check fails loses its fixes and the rest are checked again."""
    from osqsdk.lint._runner import _Engine

    documents = {doc.path: doc for doc in (result.run.documents if result.run else [])
                 if doc.parent is None or doc.kind == "pack"}
    engine = _Engine(settings)
    engine.prepare(list(documents.values()))
    rejected = _Rejected()
    plan = FixPlan({}, {}, rejected)
    by_path: dict[str, list[Fix]] = {}
    for f in result.findings:
        fixer = _FIXERS.get(f.code)
        doc = documents.get(f.path)
        if fixer is None or doc is None:
            continue
        fix = fixer(doc, f)
        if fix is not None and (fix.safe or unsafe):
            by_path.setdefault(f.path, []).append(fix)
    for path, fixes in by_path.items():
        doc = documents[path]
        kept = _check_file(doc, fixes, engine.judge(engine.schema_for(doc)), rejected)
        if kept:
            plan.fixes[path] = kept
            plan.texts[path] = (doc.source.text, _apply(doc.source.text, kept))
    return plan


def _owner(doc: Document, records: dict[tuple[Any, ...], Any], fix: Fix) -> Any:
    """The record whose text holds the fix (None: a document field, not a query)."""
    for key, rec in records.items():
        span = (0, len(doc.source.text)) if doc.kind == "sql" else \
            doc.span(rec.object_path or rec.path)
        if span is not None and span[0] <= fix.start < span[1]:
            return key
    return None


def _check_file(doc: Document, fixes: list[Fix], judge: Any, rejected: _Rejected) -> list[Fix]:
    before, broken = _records(doc.path, doc.source.text)
    ordered: list[Fix] = []
    for fix in sorted(fixes, key=lambda x: x.start):
        if ordered and fix.start < ordered[-1].end:
            rejected.format += 1  # overlaps the one before
            continue
        ordered.append(fix)
    groups: dict[Any, list[Fix]] = {}
    for fix in ordered:
        groups.setdefault(_owner(doc, before, fix), []).append(fix)
    while groups:
        kept = [fix for group in groups.values() for fix in group]
        after, broken_after = _records(doc.path, _apply(doc.source.text, kept))
        if broken_after != broken or after.keys() != before.keys():
            if len(groups) == 1:
                rejected.format += len(kept)
                return []
            # find the group that breaks the file: each one alone
            for key in list(groups):
                alone, n = _records(doc.path, _apply(doc.source.text, groups[key]))
                if n != broken or alone.keys() != before.keys():
                    rejected.format += len(groups.pop(key))
            continue
        bad = []
        for key, rec in before.items():
            new = after[key]
            if rec.sql == new.sql and rec.fields == new.fields:
                continue
            if key not in groups:
                bad.append((key, "format"))  # changed by a fix that is not its own
                continue
            if rec.sql == new.sql:
                continue  # a field of the query changed (the platform fix)
            old_program = judge.program(rec.sql)
            if old_program is None:
                bad.append((key, "compile"))
            elif old_program != judge.program(new.sql):
                bad.append((key, "meaning"))
        if not bad:
            return sorted(kept, key=lambda x: x.start)
        for key, why in bad:
            lost = groups.pop(key, [])
            if not lost:  # a change nobody owns: give up on the file
                rejected.format += sum(len(g) for g in groups.values())
                return []
            setattr(rejected, why, getattr(rejected, why) + len(lost))
    return []


def fixable(result: LintResult) -> tuple[int, int]:
    """How many findings a safe fix is offered for, and how many more an unsafe one."""
    documents = {doc.path: doc for doc in (result.run.documents if result.run else [])}
    safe = unsafe = 0
    for f in result.findings:
        fixer = _FIXERS.get(f.code)
        doc = documents.get(f.path)
        fix = fixer(doc, f) if fixer and doc else None
        if fix is not None:
            if fix.safe:
                safe += 1
            else:
                unsafe += 1
    return safe, unsafe
