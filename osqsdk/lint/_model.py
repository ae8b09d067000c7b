"""What the linter reads: documents, the queries in them, and one run over many files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from osqsdk._osquery.config import StrippedText
    from osqsdk.lint._judge import Verdict
    from osqsdk.lint._settings import Settings
    from osqsdk.lint._sql import Analysis, Parsed
    from osqsdk.lint._text import Positions, SourceText
    from osqsdk.schema import Schema

__all__ = ["CONFIG_KEYS", "DEFAULT_INTERVAL", "Document", "LintRun", "QueryRecord", "QueryUnit"]

#: osquery's default ``--schedule_default_interval`` and ``--pack_refresh_interval``.
DEFAULT_INTERVAL = 3600
#: Top-level keys of a config that osquery or its config parser plugins read.
CONFIG_KEYS = frozenset({
    "options", "schedule", "packs", "decorators", "file_paths", "file_paths_query",
    "file_accesses", "exclude_paths", "yara", "prometheus_targets", "views", "events",
    "auto_table_construction", "feature_vectors", "logger", "kafka_topics"})


@dataclass(eq=False)
class QueryRecord:
    """One SQL string found in a document, with the settings osquery would run it with.

    ``kind`` is one of ``schedule``, ``pack``, ``discovery``, ``decorator``, ``view``,
    ``file_paths_query``, ``fleet_query``, ``fleet_policy``, ``fleet_label``, ``sql``.
    ``path`` is where the SQL string sits in the document; ``fields`` the raw query object.
    """

    name: str
    kind: str
    sql: str
    path: tuple[Any, ...]
    pack: str | None = None
    interval: int | None = None
    platform: str | None = None
    pack_platform: str | None = None
    snapshot: bool = False
    removed: bool | None = None
    version: str | None = None
    decorator: str | None = None  # load, always, interval
    fields: dict[str, Any] = field(default_factory=dict)
    object_path: tuple[Any, ...] | None = None

    @property
    def runs_per_day(self) -> float:
        """How often osquery runs it per day (0 when it only runs once, at load)."""
        if self.interval is None or self.interval <= 0:
            return 0.0
        return 86400.0 / self.interval


@dataclass(eq=False)
class Document:
    """One input file (or a pack file a config pulled in) and the queries it holds.

    ``kind``: ``config``, ``pack``, ``fleet`` or ``sql``. ``value`` is the decoded document
    (a list of YAML documents for Fleet files), ``positions`` where each value sits.
    """

    path: str
    kind: str
    source: SourceText
    value: Any = None
    positions: Positions | None = None
    stripped: StrippedText | None = None
    queries: list[QueryRecord] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    packs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pack_name: str | None = None
    parent: Document | None = None
    fleet: bool = False
    yaml_positions: list[Positions] = field(default_factory=list)  # one per YAML document
    pack_refs: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    views: dict[str, QueryRecord] = field(default_factory=dict)
    size: int = 0

    def file_offset(self, offset: int) -> int:
        """Original-file offset of an offset in the parsed text."""
        if self.stripped is not None:
            return self.stripped.original(offset)
        return offset

    def span(self, path: tuple[Any, ...], key: bool = False) -> tuple[int, int] | None:
        """File offsets of the value (or key) at ``path``."""
        pos = self.positions_for(path)
        if pos is None:
            return None
        inner = path[1:] if self.kind == "fleet" else path
        found = pos.span(inner, key)
        if found is None:
            return None
        return self.file_offset(found[0]), self.file_offset(max(found[0], found[1] - 1)) + 1

    def positions_for(self, path: tuple[Any, ...]) -> Positions | None:
        if self.kind == "fleet":
            if path and isinstance(path[0], int) and path[0] < len(self.yaml_positions):
                return self.yaml_positions[path[0]]
            return None
        return self.positions


@dataclass(eq=False)
class QueryUnit:
    """A query ready for the query rules: its record, parse, analysis and context."""

    record: QueryRecord
    document: Document
    parsed: Parsed
    analyses: list[Analysis]
    schema: Schema
    settings: Settings
    platforms: frozenset[str] | None  # None: every platform
    cost: Any = None
    functions: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> arities
    fleetd: Schema | None = None  # Fleet's tables, to explain unknown tables outside Fleet
    # SQLite's verdict per statement, up to the first it refuses (docs/lint.md §1.6)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def refusal(self) -> Verdict | None:
        """The statement SQLite refuses to compile, or None when the query compiles."""
        last = self.verdicts[-1] if self.verdicts else None
        return last if last is not None and last.error is not None else None

    def refused_as(self, *kinds: str) -> Verdict | None:
        """The refusal when SQLite refuses the query for one of ``kinds``, else None."""
        refusal = self.refusal
        return refusal if refusal is not None and refusal.kind in kinds else None

    @property
    def analysis(self) -> Analysis | None:
        return self.analyses[0] if self.analyses else None

    @property
    def ms_per_day(self) -> float:
        """Estimated cost per run times runs a day (0 without an estimate)."""
        return self.cost.ms * self.record.runs_per_day if self.cost is not None else 0.0


@dataclass(eq=False)
class LintRun:
    """Everything one lint run read: documents, query units, settings."""

    documents: list[Document]
    units: list[QueryUnit]
    settings: Settings
    schema: Schema
