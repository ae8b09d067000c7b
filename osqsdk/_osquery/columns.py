"""Column declarations: osquery's column types and option bits (docs/protocol.md §3.3)."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass

from osqsdk.errors import PluginDefinitionError

__all__ = ["Column", "ColumnOptions", "ColumnType"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ColumnType(str, enum.Enum):
    """osquery's column types, spelled as osqueryd reads them in ``columns`` routes."""

    TEXT = "TEXT"
    INTEGER = "INTEGER"
    BIGINT = "BIGINT"
    UNSIGNED_BIGINT = "UNSIGNED BIGINT"
    DOUBLE = "DOUBLE"
    BLOB = "BLOB"

    @property
    def spec_name(self) -> str:
        """The spelling used in osquery's published schema JSON (``unsigned_bigint``)."""
        return self.value.lower().replace(" ", "_")

    @property
    def is_numeric(self) -> bool:
        return self in (ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.UNSIGNED_BIGINT,
                        ColumnType.DOUBLE)

    @classmethod
    def parse(cls, text: str | ColumnType) -> ColumnType:
        """Read either spelling (``UNSIGNED BIGINT``, ``unsigned_bigint``), any case."""
        if isinstance(text, ColumnType):
            return text
        key = str(text).strip().upper().replace("_", " ")
        for member in cls:
            if member.value == key:
                return member
        raise PluginDefinitionError(
            f"unknown column type {text!r}; osquery's types are "
            + ", ".join(m.value for m in cls))

    def __str__(self) -> str:
        return self.value


class ColumnOptions(enum.IntFlag):
    """osquery's ColumnOptions bitmask, sent as the decimal ``op`` of a column route."""

    DEFAULT = 0
    INDEX = 1
    REQUIRED = 2
    ADDITIONAL = 4
    OPTIMIZED = 8
    HIDDEN = 16
    COLLATE_BINARY = 32
    COLLATE_NOCASE = 64
    COLLATE_RTRIM = 128
    COLLATE_VERSION = 256
    COLLATE_VERSION_ARCH = 512
    COLLATE_VERSION_DPKG = 1024
    COLLATE_VERSION_RHEL = 2048


_COLLATIONS = {
    "binary": ColumnOptions.COLLATE_BINARY,
    "nocase": ColumnOptions.COLLATE_NOCASE,
    "rtrim": ColumnOptions.COLLATE_RTRIM,
    "version": ColumnOptions.COLLATE_VERSION,
    "version_arch": ColumnOptions.COLLATE_VERSION_ARCH,
    "version_dpkg": ColumnOptions.COLLATE_VERSION_DPKG,
    "version_rhel": ColumnOptions.COLLATE_VERSION_RHEL,
}


@dataclass(frozen=True)
class Column:
    """One column of a table plugin.

    ``index``/``required``/``additional``/``optimized``/``hidden`` are osquery's column
    options. A column with none of them is sent as ``op 0``, which osqueryd promotes to INDEX
    (``--extensions_default_index``): every WHERE constraint on it reaches ``generate``.
    ``aliases`` are extra hidden column names mirroring this column (osquery's columnAlias).
    """

    name: str
    type: ColumnType = ColumnType.TEXT
    _: KW_ONLY
    index: bool = False
    required: bool = False
    additional: bool = False
    optimized: bool = False
    hidden: bool = False
    collate: str | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _IDENTIFIER.match(self.name):
            raise PluginDefinitionError(
                f"column name {self.name!r} is not a SQL identifier (letters, digits, _)")
        object.__setattr__(self, "type", ColumnType.parse(self.type))
        if self.collate is not None and self.collate not in _COLLATIONS:
            raise PluginDefinitionError(
                f"column {self.name!r}: unknown collation {self.collate!r}; one of "
                + ", ".join(sorted(_COLLATIONS)))
        aliases = (self.aliases,) if isinstance(self.aliases, str) else tuple(self.aliases)
        for alias in aliases:
            if not _IDENTIFIER.match(alias):
                raise PluginDefinitionError(f"column alias {alias!r} is not a SQL identifier")
        object.__setattr__(self, "aliases", aliases)

    @property
    def options(self) -> ColumnOptions:
        """osquery's option bitmask for this column."""
        bits = ColumnOptions.DEFAULT
        for flag, bit in ((self.index, ColumnOptions.INDEX),
                          (self.required, ColumnOptions.REQUIRED),
                          (self.additional, ColumnOptions.ADDITIONAL),
                          (self.optimized, ColumnOptions.OPTIMIZED),
                          (self.hidden, ColumnOptions.HIDDEN)):
            if flag:
                bits |= bit
        if self.collate:
            bits |= _COLLATIONS[self.collate]
        return bits

    @classmethod
    def from_options(cls, name: str, type: str | ColumnType, op: int, *,
                     aliases: Iterable[str] = (), description: str = "") -> Column:
        """Build a column from osquery's bitmask (the inverse of ``options``)."""
        opts = ColumnOptions(op)
        collate = next((n for n, bit in _COLLATIONS.items() if bit in opts), None)
        return cls(name, ColumnType.parse(type), index=ColumnOptions.INDEX in opts,
                   required=ColumnOptions.REQUIRED in opts,
                   additional=ColumnOptions.ADDITIONAL in opts,
                   optimized=ColumnOptions.OPTIMIZED in opts, hidden=ColumnOptions.HIDDEN in opts,
                   collate=collate, aliases=tuple(aliases), description=description)
