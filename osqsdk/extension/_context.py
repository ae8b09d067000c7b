"""The query context osqueryd sends with ``generate`` (docs/protocol.md §3.4), typed."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from osqsdk._osquery.columns import ColumnType

__all__ = ["Constraint", "Operator", "QueryContext"]


class Operator(enum.IntEnum):
    """Constraint operators with osquery's values (osquery's ConstraintOperator enum).

    osqueryd copies SQLite's operator codes through unchanged, so codes from SQLite's
    ``SQLITE_INDEX_CONSTRAINT_*`` family beyond osquery's enum (NOT_EQUALS and later) can
    arrive too; unknown codes become pseudo-members named ``UNKNOWN_<n>``.
    """

    UNIQUE = 1
    EQUALS = 2
    GREATER_THAN = 4
    LESS_THAN_OR_EQUALS = 8
    LESS_THAN = 16
    GREATER_THAN_OR_EQUALS = 32
    MATCH = 64
    LIKE = 65
    GLOB = 66
    REGEXP = 67
    NOT_EQUALS = 68
    IS_NOT = 69
    IS_NOT_NULL = 70
    IS_NULL = 71
    IS = 72
    LIMIT = 73
    OFFSET = 74

    @classmethod
    def _missing_(cls, value: object) -> Operator | None:
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None


_PARSERS = {
    ColumnType.INTEGER: int,
    ColumnType.BIGINT: int,
    ColumnType.UNSIGNED_BIGINT: int,
    ColumnType.DOUBLE: float,
}


@dataclass(frozen=True)
class Constraint:
    """One ``column <operator> expression`` from the WHERE clause.

    ``expression`` is the text osqueryd sent (SQLite's text form of the value); ``value`` is
    the same typed by the column's affinity (int or float), or the text if it does not parse.
    """

    column: str
    operator: Operator
    expression: str
    affinity: ColumnType = ColumnType.TEXT

    @property
    def value(self) -> Any:
        parse = _PARSERS.get(self.affinity)
        if parse is None:
            return self.expression
        try:
            return parse(self.expression)
        except ValueError:
            return self.expression


class QueryContext:
    """What osqueryd knows about the query when it asks a table for rows.

    ``constraints`` maps each constrained column to its constraints. ``columns_used`` is the
    set of columns the query reads, or ``None`` when osqueryd did not say (then assume all);
    an empty set (``SELECT count(*)``) means no column values are needed at all.
    """

    __slots__ = ("affinities", "columns_used", "columns_used_bitset", "constraints", "raw")

    def __init__(
        self,
        constraints: Mapping[str, tuple[Constraint, ...]] | None = None,
        *,
        affinities: Mapping[str, ColumnType] | None = None,
        columns_used: frozenset[str] | None = None,
        columns_used_bitset: int | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        self.constraints: dict[str, tuple[Constraint, ...]] = dict(constraints or {})
        self.affinities: dict[str, ColumnType] = dict(affinities or {})
        self.columns_used = columns_used
        self.columns_used_bitset = columns_used_bitset
        self.raw: dict[str, Any] = dict(raw or {})

    @classmethod
    def from_json(cls, text: str | None) -> QueryContext:
        """Parse the ``context`` request value. Raises ValueError with the cause."""
        if text is None or text == "":
            return cls()  # SQL::selectAllFrom sends no context at all
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"context is not JSON: {exc}") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: Any) -> QueryContext:
        if not isinstance(raw, dict):
            raise ValueError(f"context must be a JSON object, not {type(raw).__name__}")
        constraints: dict[str, tuple[Constraint, ...]] = {}
        affinities: dict[str, ColumnType] = {}
        entries = raw.get("constraints", [])
        if entries == "":
            entries = []
        if not isinstance(entries, list):
            raise ValueError("context 'constraints' must be a list")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ValueError(f"context constraint entry without a name: {entry!r}")
            name = entry["name"]
            try:
                affinity = ColumnType.parse(entry.get("affinity") or "TEXT")
            except ValueError:
                affinity = ColumnType.TEXT  # "UNKNOWN" is sent for column aliases
            affinities[name] = affinity
            items = entry.get("list", [])
            if items == "" or items is None:  # osquery < 3.0 sent "" for an empty list
                items = []
            if not isinstance(items, list):
                raise ValueError(f"context constraint list of {name!r} must be a list")
            found = []
            for item in items:
                if not isinstance(item, dict):
                    raise ValueError(f"constraint of {name!r} is not an object: {item!r}")
                raw_op = item.get("op")
                try:
                    if raw_op is None:
                        raise TypeError("no op")
                    op = int(raw_op)  # a number; osquery < 3.0 sent it as a string
                except (TypeError, ValueError):
                    raise ValueError(f"constraint of {name!r} has a bad op: {raw_op!r}") from None
                expr = item.get("expr", "")
                found.append(Constraint(name, Operator(op), expr if isinstance(expr, str) else
                                        json.dumps(expr), affinity))
            if found:
                constraints[name] = constraints.get(name, ()) + tuple(found)
        used = raw.get("colsUsed")
        columns_used = frozenset(str(c) for c in used) if isinstance(used, list) else None
        bitset = raw.get("colsUsedBitset")
        return cls(constraints, affinities=affinities, columns_used=columns_used,
                   columns_used_bitset=bitset if isinstance(bitset, int) else None, raw=raw)

    # -- helpers -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Constraint]:
        for items in self.constraints.values():
            yield from items

    def constraints_for(self, column: str, operator: Operator | None = None) -> list[Constraint]:
        """The constraints on ``column``, optionally only those with ``operator``."""
        return [c for c in self.constraints.get(column, ())
                if operator is None or c.operator == operator]

    def equals(self, column: str) -> list[Any]:
        """The values of ``column = ...`` constraints (every IN value), typed by affinity."""
        return [c.value for c in self.constraints.get(column, ()) if c.operator == Operator.EQUALS]

    def has_constraint(self, column: str, operator: Operator | None = None) -> bool:
        return bool(self.constraints_for(column, operator))

    def is_used(self, column: str) -> bool:
        """Whether the query reads ``column`` (True when osqueryd did not say)."""
        return self.columns_used is None or column in self.columns_used

    def to_json(self) -> str:
        """The context as osqueryd would send it (used by the local runner and tests)."""
        return json.dumps(self.raw, separators=(",", ":"))

    def __repr__(self) -> str:
        parts = [f"{c.column} {c.operator.name} {c.expression!r}" for c in self]
        used = "all" if self.columns_used is None else sorted(self.columns_used)
        return f"QueryContext(constraints=[{', '.join(parts)}], columns_used={used})"
