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
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    rejected: int  # fixes offered by a rule but refused by the check

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
            partial = f"{path}.osqsdk-fix"
            mode = os.stat(path).st_mode & 0o7777
            with open(partial, "wb") as fh:
                fh.write(data)
            os.chmod(partial, mode)
            os.replace(partial, path)
            written.append(path)
        return written


def _quoted_fix(doc: Document, f: Finding) -> Fix | None:
    text = doc.source.text
    start = doc.source.offset(f.line, f.column)
    end = doc.source.offset(f.end_line, f.end_column)
    if text[start:start + 2] == '\\"' and text[end - 1:end + 1] == '\\"':
        end += 1  # the finding ends at the last SQL character, which the file escapes
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


def _records(doc_path: str, text: str) -> dict[tuple[Any, ...], Any] | None:
    """The queries of ``text`` parsed as the file at ``doc_path``, by where they sit."""
    from osqsdk.lint._inputs import Loader

    loader = Loader([])
    loaded = loader.load_text(doc_path, text)
    if loaded is None or any(r.rule.code in ("OSQ002", "OSQ003", "OSQ004") for r in
                             loader.reports):
        return None
    return {(rec.kind, rec.path): rec for rec in loaded.queries}


def _same_meaning(before: dict[tuple[Any, ...], Any], after: dict[tuple[Any, ...], Any],
                  judge: Any) -> bool:
    if before.keys() != after.keys():
        return False
    for key, old in before.items():
        new = after[key]
        if old.sql != new.sql:
            a, b = judge.program(old.sql), judge.program(new.sql)
            if a is None or a != b:
                return False
    return True


def plan_fixes(result: LintResult, settings: Settings, *, unsafe: bool = False) -> FixPlan:
    """The fixes for ``result``'s findings that pass the check, file by file."""
    from osqsdk.lint._runner import _Engine

    documents = {doc.path: doc for doc in (result.run.documents if result.run else [])
                 if doc.parent is None or doc.kind == "pack"}
    engine = _Engine(settings)
    engine.prepare(list(documents.values()))
    plan = FixPlan({}, {}, 0)
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
        before = _records(path, doc.source.text)
        if before is None:
            plan.rejected += len(fixes)
            continue
        judge = engine.judge(engine.schema_for(doc))
        text, kept = doc.source.text, list[Fix]()
        # one at a time, from the end of the file, each checked on the text so far
        for fix in sorted(fixes, key=lambda x: x.start, reverse=True):
            if kept and fix.end > kept[-1].start:
                plan.rejected += 1  # overlaps one already kept
                continue
            candidate = _apply(text, [fix])
            after = _records(path, candidate)
            if after is not None and _same_meaning(before, after, judge):
                text, before = candidate, after
                kept.append(fix)
            else:
                plan.rejected += 1
        if kept:
            plan.fixes[path] = kept
            plan.texts[path] = (doc.source.text, text)
    return plan


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
