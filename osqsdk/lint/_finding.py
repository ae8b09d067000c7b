"""A finding is a value: which rule, where, and the facts that fill its message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SEVERITIES", "Finding", "severity_rank"]

#: Severities from the most to the least serious.
SEVERITIES = ("error", "warning", "info")


def severity_rank(severity: str) -> int:
    """0 for ``error``, 1 for ``warning``, 2 for ``info``."""
    return SEVERITIES.index(severity)


def _format(template: str, args: Mapping[str, Any]) -> str:
    try:
        return template.format_map(dict(args))
    except (KeyError, IndexError, ValueError):
        return template


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in one place.

    ``args`` holds the facts the message is made from (compare these in tests, not the text).
    Lines and columns are 1-based and point into ``path`` as it is on disk; ``query`` and
    ``pack`` name the query and pack the finding belongs to, when there is one.
    """

    code: str
    name: str
    severity: str
    template: str
    args: tuple[tuple[str, Any], ...]
    path: str
    line: int = 1
    column: int = 1
    end_line: int = 1
    end_column: int = 1
    query: str | None = None
    pack: str | None = None
    hint_template: str | None = None

    @property
    def message(self) -> str:
        """The message with its facts filled in."""
        return _format(self.template, self.arguments)

    @property
    def hint(self) -> str | None:
        """A short how-to-fix, when the rule has one and the facts support it."""
        if not self.hint_template:
            return None
        args = self.arguments
        if "suggestion" in self.hint_template and not args.get("suggestion"):
            return None
        return _format(self.hint_template, args)

    @property
    def arguments(self) -> dict[str, Any]:
        """``args`` as a dict."""
        return dict(self.args)

    def sort_key(self) -> tuple[Any, ...]:
        return (self.path, self.line, self.column, self.code, self.message)

    def to_json(self) -> dict[str, Any]:
        """The finding as JSON output shows it."""
        return {
            "code": self.code, "name": self.name, "severity": self.severity,
            "message": self.message, "hint": self.hint, "path": self.path,
            "line": self.line, "column": self.column, "end_line": self.end_line,
            "end_column": self.end_column, "query": self.query, "pack": self.pack,
            "args": {k: _jsonable(v) for k, v in self.args},
        }

    def __str__(self) -> str:
        where = f" [{self.query}]" if self.query else ""
        return f"{self.path}:{self.line}:{self.column}: {self.code} {self.message}{where}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
