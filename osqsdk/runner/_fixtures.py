"""Fixture rows for core osquery tables, optionally changing per tick.

A fixtures directory holds one file per table, named after it: ``last.json``,
``logged_in_users.yaml``. A file is either a list of rows (the same at every tick) or::

    {"rows": [...],                      # before the first listed tick (optional)
     "ticks": {"1": [...], "3": [...]}}  # from tick 3 on, the tick-3 rows

Rows map column names to values (strings, numbers, booleans, null).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osqsdk.errors import OsqsdkError

__all__ = ["FixtureError", "Fixtures"]

_SUFFIXES = (".json", ".yaml", ".yml")


class FixtureError(OsqsdkError, ValueError):
    """A fixture file that cannot be used; the message names the file and the cause."""


@dataclass
class _TableFixture:
    default: list[dict[str, Any]] | None
    ticks: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)

    def rows(self, tick: int) -> list[dict[str, Any]] | None:
        current = self.default
        for start, rows in self.ticks:
            if start <= tick:
                current = rows
        if current is None and self.ticks:
            return []
        return current


class Fixtures:
    """Rows per core table and tick."""

    def __init__(self, tables: dict[str, _TableFixture] | None = None) -> None:
        self.tables = tables or {}

    def __contains__(self, table: str) -> bool:
        return table in self.tables

    def rows(self, table: str, tick: int) -> list[dict[str, Any]] | None:
        fixture = self.tables.get(table)
        return None if fixture is None else fixture.rows(tick)

    def set(self, table: str, rows: list[dict[str, Any]], *, tick: int | None = None) -> None:
        """Give ``table`` these rows (from ``tick`` on, or at every tick)."""
        fixture = self.tables.setdefault(table, _TableFixture(None))
        if tick is None:
            fixture.default = list(rows)
        else:
            fixture.ticks = sorted([*(t for t in fixture.ticks if t[0] != tick),
                                    (tick, list(rows))])

    @classmethod
    def load(cls, directory: str | Path, schema: Any = None) -> Fixtures:
        """Read every fixture file in ``directory``; with ``schema``, check tables and columns."""
        root = Path(directory)
        if not root.is_dir():
            raise FixtureError(f"{root}: fixtures directory does not exist")
        tables: dict[str, _TableFixture] = {}
        for path in sorted(root.iterdir()):
            if path.suffix.lower() not in _SUFFIXES or not path.is_file():
                continue
            table = path.stem
            if table in tables:
                raise FixtureError(f"{path}: a second fixture file for table {table!r}")
            tables[table] = _parse(path, _read(path), schema)
        return cls(tables)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FixtureError(f"{path}: cannot be read: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FixtureError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise FixtureError(f"{path}{where}: not YAML: {getattr(exc, 'problem', exc)}") from None


def _parse(path: Path, data: Any, schema: Any) -> _TableFixture:
    table = path.stem
    columns: list[str] | None = None
    if schema is not None:
        described = schema.table(table)
        if described is None:
            raise FixtureError(f"{path}: there is no table {table!r} in the schema"
                               + _suggest(table, [t.name for t in schema]))
        columns = [c.name for c in described.columns] + [
            a for c in described.columns for a in c.aliases]
    if isinstance(data, list):
        return _TableFixture(_rows(path, data, columns, "rows"))
    if not isinstance(data, dict) or not set(data) <= {"rows", "ticks"}:
        raise FixtureError(f"{path}: a fixture is a list of rows or an object with 'rows' "
                           "and/or 'ticks'")
    default = _rows(path, data["rows"], columns, "rows") if "rows" in data else None
    ticks = []
    raw_ticks = data.get("ticks", {})
    if not isinstance(raw_ticks, dict):
        raise FixtureError(f"{path}: 'ticks' must map tick numbers to lists of rows")
    for key, rows in raw_ticks.items():
        try:
            tick = int(key)
        except (TypeError, ValueError):
            raise FixtureError(f"{path}: tick {key!r} is not a number") from None
        ticks.append((tick, _rows(path, rows, columns, f"tick {tick}")))
    return _TableFixture(default, sorted(ticks, key=lambda t: t[0]))


def _rows(path: Path, rows: Any, columns: list[str] | None, where: str) -> list[dict[str, Any]]:
    if not isinstance(rows, list):
        raise FixtureError(f"{path}: {where} must be a list of rows")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise FixtureError(f"{path}: {where}, row {index + 1} is not an object")
        for key, value in row.items():
            if columns is not None and key not in columns:
                raise FixtureError(f"{path}: {where}, row {index + 1}: {key!r} is not a column "
                                   f"of {path.stem}" + _suggest(str(key), columns))
            if isinstance(value, (dict, list)):
                raise FixtureError(f"{path}: {where}, row {index + 1}: column {key!r} must be a "
                                   "string, number, boolean or null")
    return rows


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
