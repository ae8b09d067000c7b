"""Typed views of what osqueryd logs: result lines, status logs (docs/protocol.md §4.2, §4.3)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orjson import loads as _fast_loads  # a logger parses every line osqueryd sends

__all__ = ["ResultFormat", "ResultLog", "Severity", "StatusLog", "parse_result",
           "parse_status_batch"]

# Keys every result line carries; anything else at the top level is a decoration placed
# there by --decorations_top_level.
_COMMON = ("name", "hostIdentifier", "calendarTime", "unixTime", "epoch", "counter", "numerics",
           "decorations")
_FORMAT_KEYS = {"columns", "action", "diffResults", "snapshot"}
_KNOWN_KEYS = frozenset(_COMMON) | _FORMAT_KEYS


class ResultFormat(str, enum.Enum):
    """Which of osqueryd's result line formats a line is in."""

    EVENT = "event"          #: one row with "added"/"removed" (--logger_event_type=true)
    BATCH = "batch"          #: "diffResults" with added and removed rows
    SNAPSHOT = "snapshot"    #: all rows of a snapshot query
    SNAPSHOT_EVENT = "snapshot_event"  #: one snapshot row (--logger_snapshot_event_type)


class Severity(enum.IntEnum):
    """glog severities in osquery's status logs."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    FATAL = 3

    @classmethod
    def _missing_(cls, value: object) -> Severity | None:
        return cls.INFO if isinstance(value, int) and value < 0 else (
            cls.FATAL if isinstance(value, int) else None)


def _number(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{key!r} must be a number, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f"{key!r} must be a number, got {value!r}")


def _rows(value: Any, what: str) -> list[dict[str, Any]]:
    if value == "" or value is None:  # osqueryd may send "" for an empty row list
        return []
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ValueError(f"{what} must be a list of row objects")
    return value


@dataclass(slots=True)
class ResultLog:
    """One result line from osqueryd's scheduler, parsed.

    ``name`` is the query name as osqueryd logs it (``pack_<pack>_<query>`` for pack
    queries). ``rows()`` gives ``(action, row)`` pairs whatever the format: the one row of an
    event line, the removed then added rows of a batch line, every row of a snapshot.
    ``raw`` is the line exactly as received.
    """

    format: ResultFormat
    name: str
    host_identifier: str
    calendar_time: str
    unix_time: int
    epoch: int
    counter: int
    numerics: bool
    decorations: dict[str, Any]
    raw: str
    action: str = ""
    columns: dict[str, Any] = field(default_factory=dict)
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    snapshot: list[dict[str, Any]] = field(default_factory=list)
    category: str = ""

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.format in (ResultFormat.EVENT, ResultFormat.SNAPSHOT_EVENT):
            yield self.action, self.columns
        elif self.format is ResultFormat.BATCH:
            for row in self.removed:
                yield "removed", row
            for row in self.added:
                yield "added", row
        else:
            for row in self.snapshot:
                yield "snapshot", row


# orjson has no nesting limit (a line of 150,000 "[" crashes the process); the stdlib
# parser raises RecursionError instead. Text with this many brackets (a big snapshot, or
# something hostile) goes to the stdlib.
_ORJSON_MAX_BRACKETS = 512


def _loads(text: str) -> Any:
    if text.count("[") + text.count("{") <= _ORJSON_MAX_BRACKETS:
        try:
            return _fast_loads(text)
        except (ValueError, TypeError):
            pass  # orjson refuses lone surrogates and huge ints; the stdlib reads them
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("result line is nested too deeply") from None


def _text(value: Any) -> str:
    return value if value.__class__ is str else str(value)


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    return value if value.__class__ is int else _number(value, key)


def load_line(line: str) -> Any:
    """The JSON value of a line osqueryd logged; ValueError when it is not JSON."""
    try:
        return _loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"result line is not JSON: {exc}") from None


def parse_result(line: str, category: str = "") -> ResultLog:
    """Parse one result or snapshot line. Raises ValueError naming what is wrong."""
    return result_from_json(load_line(line), line, category)


def result_from_json(data: Any, line: str, category: str = "") -> ResultLog:
    """``parse_result`` for a line already read as JSON (``data``)."""
    # Every result line osqueryd sends to a logger goes through here: exact-type checks
    # first, the general ones only when they fail.
    if not isinstance(data, dict):
        raise ValueError("result line is not a JSON object")
    name = data.get("name")
    if not isinstance(name, str):
        raise ValueError("result line has no query 'name'")
    decorations = data.get("decorations", {})
    if decorations.__class__ is not dict:
        raise ValueError("result line 'decorations' must be an object")
    if not _KNOWN_KEYS.issuperset(data):
        # --decorations_top_level puts decoration keys beside the common ones.
        extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        decorations = {**decorations, **extra}
    common = (name, _text(data.get("hostIdentifier", "")),
              _text(data.get("calendarTime", "")), _int(data, "unixTime"),
              _int(data, "epoch"), _int(data, "counter"), bool(data.get("numerics", False)),
              decorations, line)
    if "diffResults" in data:
        diff = data["diffResults"]
        if not isinstance(diff, dict):
            raise ValueError("result line 'diffResults' must be an object")
        return ResultLog(ResultFormat.BATCH, *common,
                         added=_rows(diff.get("added"), "diffResults.added"),
                         removed=_rows(diff.get("removed"), "diffResults.removed"),
                         category=category)
    if "snapshot" in data:
        return ResultLog(ResultFormat.SNAPSHOT, *common, action="snapshot",
                         snapshot=_rows(data["snapshot"], "snapshot"), category=category)
    if "columns" in data:
        columns = data["columns"]
        if columns.__class__ is not dict:
            raise ValueError("result line 'columns' must be an object")
        action = data.get("action")
        if action == "added" or action == "removed":
            fmt = ResultFormat.EVENT
        elif action == "snapshot":
            fmt = ResultFormat.SNAPSHOT_EVENT
        else:
            raise ValueError(f"result line has an unknown action {action!r}")
        return ResultLog(fmt, *common, action, columns, category=category)
    raise ValueError("result line has none of 'columns', 'diffResults' or 'snapshot'")


def _count(rows: Any) -> int:
    return len(rows) if isinstance(rows, list) else 0


def row_counts(line: str) -> tuple[str, int, tuple[tuple[str, int], ...]] | None:
    """The query name, ``counter`` and ``(action, rows)`` pairs of a result line, as
    ``ResultLog.rows()`` would count them, without building the ResultLog; None when it is
    not a result line. ``counter`` is 0 for a query's first run since osqueryd started (its
    rows are everything already there, not changes), -1 when the line has none."""
    try:
        data = _loads(line)
    except ValueError:
        return None
    if data.__class__ is not dict or not isinstance(data.get("name"), str):
        return None
    counter = data.get("counter", -1)
    if counter.__class__ is not int:
        counter = int(counter) if isinstance(counter, str) and counter.isdigit() else -1
    if "diffResults" in data:
        diff = data["diffResults"]
        if not isinstance(diff, dict):
            return None
        return data["name"], counter, (("removed", _count(diff.get("removed"))),
                                       ("added", _count(diff.get("added"))))
    if "snapshot" in data:
        return data["name"], counter, (("snapshot", _count(data["snapshot"])),)
    action = data.get("action")
    if "columns" in data and action in ("added", "removed", "snapshot"):
        return data["name"], counter, ((action, 1),)
    return None


@dataclass(frozen=True)
class StatusLog:
    """One of osqueryd's own log lines (glog), as relayed to logger plugins."""

    severity: Severity
    filename: str
    line: int
    message: str
    host_identifier: str
    calendar_time: str
    unix_time: int
    raw: Mapping[str, Any]


def parse_status_batch(text: str) -> list[StatusLog]:
    """Parse the ``log`` value of a status request: a JSON array of ``{s,f,i,m,h,c,u}``."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"status log batch is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("status log batch is not a JSON array")
    records = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"status log {index} is not an object")
        try:
            severity = Severity(_number(item.get("s", 0), "s"))
            records.append(StatusLog(
                severity=severity, filename=str(item.get("f", "")),
                line=_number(item.get("i", 0), "i"), message=str(item.get("m", "")),
                host_identifier=str(item.get("h", "")), calendar_time=str(item.get("c", "")),
                unix_time=_number(item.get("u", 0), "u"), raw=item))
        except ValueError as exc:
            raise ValueError(f"status log {index}: {exc}") from None
    return records
