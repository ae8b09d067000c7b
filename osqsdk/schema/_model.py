"""The schema value types: a table schema is facts about one osquery table, nothing more.

Descriptions and examples are deliberately absent: osquery.io/schema is the place to read
what a table means; these types only say what exists, with which flags, where and since when.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from osqsdk._osquery.columns import ColumnType

__all__ = ["ColumnSchema", "Schema", "TableSchema", "version_key"]

def version_key(version: str | None) -> tuple[int, ...]:
    """Sort key for osquery versions such as ``5.23.1`` (non-digits end a part)."""
    if not version:
        return ()
    parts: list[int] = []
    for piece in str(version).strip().lstrip("vV").split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
        if len(digits) != len(piece):
            break
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column of an osquery table.

    ``required``/``index``/``additional``/``optimized``/``hidden`` are osquery's column
    options. ``platforms`` is empty when the column exists wherever its table does; otherwise
    it names the only platforms that fill it (osquery's ``extended_schema``). ``since`` is the
    first osquery release that listed the column, when known.
    """

    name: str
    type: ColumnType = ColumnType.TEXT
    required: bool = False
    index: bool = False
    hidden: bool = False
    additional: bool = False
    optimized: bool = False
    aliases: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    collate: str | None = None
    since: str | None = None

    def to_json(self) -> dict[str, object]:
        """The column in osqsdk's own schema format (defaults omitted)."""
        out: dict[str, object] = {"name": self.name, "type": self.type.spec_name}
        for flag in ("required", "index", "hidden", "additional", "optimized"):
            if getattr(self, flag):
                out[flag] = True
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.platforms:
            out["platforms"] = list(self.platforms)
        if self.collate:
            out["collate"] = self.collate
        if self.since:
            out["since"] = self.since
        return out


@dataclass(frozen=True, slots=True)
class TableSchema:
    """One osquery table: its columns in declaration order and the facts about the table.

    ``since``/``until`` are the first and last osquery releases whose schema lists the table
    (``until`` is None while it still exists). ``origin`` says where the table comes from:
    ``osquery`` for core tables, ``fleet`` for fleetd tables, ``extension`` for tables
    loaded from an extension's ``--spec`` output, ``view`` for config views.
    ``removed_columns`` maps columns that older releases had to the last release with them.
    """

    name: str
    columns: tuple[ColumnSchema, ...] = ()
    platforms: tuple[str, ...] = ()
    evented: bool = False
    cacheable: bool = False
    user_data: bool = False
    utility: bool = False
    aliases: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    origin: str = "osquery"
    removed_columns: Mapping[str, str] = field(default_factory=dict)
    _by_name: Mapping[str, ColumnSchema] = field(default_factory=dict, init=False, repr=False,
                                                  compare=False)

    def __post_init__(self) -> None:
        index: dict[str, ColumnSchema] = {}
        for col in self.columns:
            index.setdefault(col.name.lower(), col)
        for col in self.columns:
            for alias in col.aliases:
                index.setdefault(alias.lower(), col)
        object.__setattr__(self, "_by_name", index)

    def column(self, name: str) -> ColumnSchema | None:
        """The column called ``name`` (any case, column aliases included), or None."""
        return self._by_name.get(name.lower())

    @property
    def column_names(self) -> list[str]:
        """Every name a query may use for a column of this table, aliases included."""
        return list(self._by_name)

    @property
    def required_columns(self) -> tuple[ColumnSchema, ...]:
        return tuple(c for c in self.columns if c.required)

    @property
    def star_columns(self) -> tuple[ColumnSchema, ...]:
        """The columns ``SELECT *`` returns (hidden ones are left out)."""
        return tuple(c for c in self.columns if not c.hidden)

    def exists_in(self, version: str | None) -> bool:
        """Whether osquery ``version`` has this table (True when the facts are unknown)."""
        if not version:
            return True
        key = version_key(version)
        if self.since and key < version_key(self.since):
            return False
        return not (self.until and key > version_key(self.until))

    def to_json(self) -> dict[str, object]:
        """The table in osqsdk's own schema format (defaults omitted)."""
        out: dict[str, object] = {"name": self.name, "platforms": list(self.platforms)}
        for flag in ("evented", "cacheable", "user_data", "utility"):
            if getattr(self, flag):
                out[flag] = True
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.since:
            out["since"] = self.since
        if self.until:
            out["until"] = self.until
        if self.origin != "osquery":
            out["origin"] = self.origin
        if self.removed_columns:
            out["removed_columns"] = dict(sorted(self.removed_columns.items()))
        out["columns"] = [c.to_json() for c in self.columns]
        return out

    def with_(self, **changes: Any) -> TableSchema:
        """A copy with ``changes`` applied (field name -> new value)."""
        return replace(self, **changes)


class Schema:
    """A set of osquery tables, looked up by name or table alias, any case.

    ``tables`` holds the tables that exist in ``osquery_version``; ``removed`` holds tables
    that earlier releases had (with ``until`` set), so a linter can say "removed in X".
    """

    def __init__(self, tables: Iterable[TableSchema] = (), *, removed: Iterable[TableSchema] = (),
                 osquery_version: str | None = None, sources: Iterable[str] = ()) -> None:
        own: dict[str, TableSchema] = {}
        for table in tables:
            own[table.name] = table
        self._tables = own
        self.tables: Mapping[str, TableSchema] = MappingProxyType(own)
        self.removed: Mapping[str, TableSchema] = MappingProxyType(
            {t.name: t for t in removed if t.name not in own})
        self.osquery_version = osquery_version
        self.sources: tuple[str, ...] = tuple(sources)
        lookup: dict[str, TableSchema] = {}
        for table in own.values():
            lookup[table.name.lower()] = table
        for table in own.values():
            for alias in table.aliases:
                lookup.setdefault(alias.lower(), table)
        self._lookup = lookup

    def __repr__(self) -> str:
        return (f"Schema({len(self.tables)} tables, osquery_version={self.osquery_version!r}, "
                f"{len(self.removed)} removed)")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup

    def __iter__(self) -> Iterator[TableSchema]:
        return iter(self._tables.values())

    def __len__(self) -> int:
        return len(self._tables)

    def table(self, name: str) -> TableSchema | None:
        """The table called ``name`` or aliased so (any case), or None."""
        return self._lookup.get(name.lower())

    def removed_table(self, name: str) -> TableSchema | None:
        """A table that an earlier osquery release had under ``name``, or None."""
        for table in self.removed.values():
            if table.name.lower() == name.lower():
                return table
        return None

    def merged(self, other: Schema) -> Schema:
        """This schema plus ``other``'s tables; ``other`` wins on a name clash."""
        tables = dict(self._tables)
        tables.update(other._tables)
        removed = {**self.removed, **other.removed}
        return Schema(tables.values(), removed=removed.values(),
                      osquery_version=other.osquery_version or self.osquery_version,
                      sources=self.sources + other.sources)

    def with_tables(self, extra: Iterable[TableSchema]) -> Schema:
        """This schema plus ``extra`` tables (they win on a name clash)."""
        return self.merged(Schema(extra))
