"""The rule base classes. One rule is one small class; its docstring is its documentation.

A rule's docstring follows ruff's layout: a one-line summary, ``## Why is this bad?``,
``## Example`` with ``Use instead:``, and optionally ``## Known problems``, ``## Options``
and ``## References``. ``osqsdk rule CODE`` prints it.

Rules never build :class:`~osqsdk.lint.Finding` objects themselves: they yield
:class:`Report` values (the rule, the facts, and an anchor saying where), and the runner
turns anchors into file positions. There are three kinds of rule:

* :class:`QueryRule` sees one query at a time (parsed once, shared by every rule);
* :class:`DocumentRule` sees one config, pack or Fleet file with its queries;
* :class:`RunRule` sees everything linted in one run (cross-file checks, fleet view).

Each of the three declares ``check`` with its own argument type (:class:`QueryUnit`,
:class:`Document`, :class:`LintRun`), and the runner calls each kind with that value. A
rule that subclasses :class:`Rule` directly has no ``check``: the loader reports it
(unreadable files, invalid JSON or YAML, duplicate keys, pack paths).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from sqlglot import exp

    from osqsdk.lint._judge import Verdict
    from osqsdk.lint._model import Document, LintRun, QueryUnit

__all__ = ["DocAnchor", "DocumentRule", "FileAnchor", "QueryRule", "Report", "Rule",
           "RunRule", "SqlAnchor"]


@dataclass(frozen=True, slots=True)
class SqlAnchor:
    """Character offsets ``[start, end)`` into a query's SQL text (None: the whole query)."""

    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class DocAnchor:
    """A value (or with ``key=True`` its key) inside a parsed config/pack document."""

    path: tuple[Any, ...]
    key: bool = False


@dataclass(frozen=True, slots=True)
class FileAnchor:
    """A position in a file, 1-based; ``path`` None means the document's own file."""

    line: int
    column: int = 1
    end_line: int | None = None
    end_column: int | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """What a rule yields: itself, the facts, where, and (for run rules) which document."""

    rule: type[Rule]
    args: tuple[tuple[str, Any], ...]
    anchor: SqlAnchor | DocAnchor | FileAnchor
    unit: QueryUnit | None = None
    document: Document | None = None


class Rule:
    """Base of every rule. Subclasses set the class attributes; rules the linter runs derive
    from :class:`QueryRule`, :class:`DocumentRule` or :class:`RunRule` and implement ``check``."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str] = "error"
    message: ClassVar[str]
    hint: ClassVar[str | None] = None

    @classmethod
    def doc(cls) -> str:
        """The rule's documentation (its docstring, dedented)."""
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first line of the documentation."""
        return cls.doc().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def report(cls, anchor: SqlAnchor | DocAnchor | FileAnchor, /, *,
               document: Document | None = None, **args: Any) -> Report:
        """A report of this rule at ``anchor`` with message facts ``args``."""
        return Report(cls, tuple(args.items()), anchor, document=document)


class QueryRule(Rule):
    """A rule over one query: ``check(unit)`` yields reports, anchored in the SQL."""

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        raise NotImplementedError

    def at(self, node: exp.Expr | None = None, /, **args: Any) -> Report:
        """A report anchored on a sqlglot node (None: the whole query)."""
        from osqsdk.lint._sql import node_span

        start, end = node_span(node) if node is not None else (None, None)
        return self.report(SqlAnchor(start, end), **args)

    def at_refusal(self, unit: QueryUnit, verdict: Verdict, /, **args: Any) -> Report:
        """A report where SQLite points: its offset, else the name it refuses, else the
        whole statement."""
        sql = unit.record.sql
        if verdict.offset is not None:
            width = len(verdict.name) if verdict.name else 1
            return self.report(SqlAnchor(verdict.offset, min(len(sql), verdict.offset + width)),
                               **args)
        if verdict.name:
            found = re.search(r"(?<![\w$])" + re.escape(verdict.name) + r"(?![\w$])",
                              sql[verdict.start:verdict.end], re.IGNORECASE)
            if found:
                start = verdict.start + found.start()
                return self.report(SqlAnchor(start, start + len(verdict.name)), **args)
        text = sql[verdict.start:verdict.end]
        lead = len(text) - len(text.lstrip())
        return self.report(SqlAnchor(verdict.start + lead, verdict.end), **args)


class DocumentRule(Rule):
    """A rule over one config, pack or Fleet file: ``check(document)`` yields reports."""

    def check(self, document: Document) -> Iterator[Report]:
        raise NotImplementedError


class RunRule(Rule):
    """A rule over a whole run: ``check(run)`` yields reports naming their document."""

    def check(self, run: LintRun) -> Iterator[Report]:
        raise NotImplementedError
