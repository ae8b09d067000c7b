"""osquery records -> Loki entries: stream labels, timestamp, line, structured metadata.

Labels stay low-cardinality by construction: they can only come from the query name, the
host identifier, the action, the log type, the status severity, the schedule epoch and
decorations the user names (LABEL_SOURCES). Row values, counters and times stay in the
line (docs/loki.md §4.7). The label string is built the way promtail and Alloy build it: names
sorted, ``name="value"`` joined by ", ", values quoted with Go escapes, empty values left
out (Loki drops them anyway; docs/loki.md §1.6).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from osqsdk._osquery.records import (
    _KNOWN_KEYS,
    ResultFormat,
    ResultLog,
    StatusLog,
    load_line,
    result_from_json,
)
from osqsdk.loki._config import _DECORATION, LokiConfig

__all__ = ["Entry", "Mapper", "format_labels", "quote_label_value", "sanitize_text"]

# Loki's max_label_value_length (docs/loki.md §2.2), in bytes of UTF-8.
MAX_LABEL_VALUE_BYTES = 2048
_NEEDS_QUOTING = re.compile(r'[\\"\x00-\x1f\x7f]')
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CACHE_LIMIT = 1 << 16
_SEVERITY = ("INFO", "WARNING", "ERROR", "FATAL")
_NS = 1_000_000_000
_EMPTY: dict[str, Any] = {}


class Entry(NamedTuple):
    """One Loki entry as spooled: its stream's label string, time, line and metadata."""

    labels: str
    ts_ns: int
    line: str
    metadata: tuple[tuple[str, str], ...] = ()


def sanitize_text(text: str) -> str:
    """Text as valid UTF-8: bytes osqueryd sent that are not UTF-8 (carried as surrogate
    escapes, PEP 383) become U+FFFD, and so do lone surrogates that JSON escapes such as
    ``\\ud800`` decode to. Protobuf strings and Loki need valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate outside the escapes' range: not from a byte
        return _SURROGATE.sub("\ufffd", text)


def quote_label_value(value: str) -> str:
    """A PromQL double-quoted string literal for ``value`` (Go escapes; docs/loki.md §1.6)."""
    if _NEEDS_QUOTING.search(value):
        value = _NEEDS_QUOTING.sub(
            lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), value)
    return f'"{value}"'


def _label_value(value: str) -> str:
    value = sanitize_text(value)
    if len(value) * 4 > MAX_LABEL_VALUE_BYTES:  # only long values need the byte count
        raw = value.encode("utf-8")
        if len(raw) > MAX_LABEL_VALUE_BYTES:
            value = raw[:MAX_LABEL_VALUE_BYTES].decode("utf-8", "ignore")
    return value


def format_labels(labels: Mapping[str, str]) -> str:
    """``{a="1", b="2"}``: names sorted, empty values left out, values quoted."""
    parts = [f"{name}={quote_label_value(_label_value(value))}"
             for name, value in sorted(labels.items()) if value]
    return "{" + ", ".join(parts) + "}"


def _text(value: Any) -> str:
    """A source's value as label or metadata text ("" when absent)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


class Mapper:
    """Turn osquery records into Entries according to a LokiConfig.

    Timestamps are whole seconds from osquery's ``unixTime`` (status logs: ``u``); the spool
    adds a sub-second part fixed when the line is accepted, so identical lines logged in
    the same second stay distinct and a resend is byte-identical (docs/loki.md §2.5).
    """

    def __init__(self, config: LokiConfig) -> None:
        self.static = dict(config.static_labels)
        self.label_sources = sorted(config.labels.items())
        self.metadata_sources = sorted(config.structured_metadata.items())
        self._label_fields = tuple(src for _, src in self.label_sources)
        self._label_decorations = [(src, src[len(_DECORATION):]) for src in self._label_fields
                                   if src.startswith(_DECORATION)]
        self._cache: dict[tuple[Any, ...], str] = {}

    def _labels(self, fields: Mapping[str, Any], decorations: Mapping[str, Any]) -> str:
        # The cache key holds the fields' values as they are (made text only on a miss);
        # decorations may be any JSON, so they are made text (hashable) first.
        if self._label_decorations:
            fields = {**fields, **{src: _text(decorations.get(key))
                                   for src, key in self._label_decorations}}
        key = tuple(map(fields.get, self._label_fields))
        labels = self._cache.get(key)
        if labels is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            merged = dict(self.static)
            merged.update(zip((name for name, _ in self.label_sources), map(_text, key)))
            labels = self._cache[key] = format_labels(merged)
        return labels

    def _metadata(self, fields: Mapping[str, Any],
                  decorations: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
        if not self.metadata_sources:
            return ()
        pairs = []
        for name, src in self.metadata_sources:
            value = _text(decorations.get(src[len(_DECORATION):])
                          if src.startswith(_DECORATION) else fields.get(src))
            if value:
                pairs.append((name, sanitize_text(value)))
        return tuple(pairs)

    def result(self, record: ResultLog, now_ns: int | None = None) -> Entry:
        """The entry for one result or snapshot line; the line is sent as osqueryd wrote it.
        Its time is the record's ``unixTime``, else ``now_ns`` (default: now)."""
        fmt = record.format
        if fmt is ResultFormat.BATCH:
            action = ""  # a batch line holds added and removed rows; no single action
        else:
            action = record.action or ("snapshot" if fmt is ResultFormat.SNAPSHOT else "")
        log_type = "snapshot" if fmt in (ResultFormat.SNAPSHOT,
                                         ResultFormat.SNAPSHOT_EVENT) else "result"
        return self._result(record.name, record.host_identifier, action, log_type,
                            record.epoch, record.counter, record.calendar_time,
                            record.unix_time, record.decorations, record.raw, now_ns)

    def result_line(self, line: str, now_ns: int | None = None) -> Entry:
        """``result(parse_result(line), now_ns)``, quicker for the lines nearly every
        query logs: one row, --logger_event_type's format. Raises ValueError as
        parse_result does."""
        data = load_line(line)
        if data.__class__ is dict:
            # Exactly the shape parse_result reads as an EVENT or SNAPSHOT_EVENT line with
            # the same values; any other shape goes the long way.
            name, host, calendar_time = (data.get("name"), data.get("hostIdentifier", ""),
                                         data.get("calendarTime", ""))
            unix_time, epoch, counter = (data.get("unixTime", 0), data.get("epoch", 0),
                                         data.get("counter", 0))
            decorations, action = data.get("decorations", _EMPTY), data.get("action")
            if (name.__class__ is str and host.__class__ is str
                    and calendar_time.__class__ is str and unix_time.__class__ is int
                    and epoch.__class__ is int and counter.__class__ is int
                    and decorations.__class__ is dict
                    and data.get("columns").__class__ is dict
                    and (action == "added" or action == "removed" or action == "snapshot")
                    and "diffResults" not in data and "snapshot" not in data
                    and _KNOWN_KEYS.issuperset(data)):
                return self._result(name, host, action,
                                    "snapshot" if action == "snapshot" else "result", epoch,
                                    counter, calendar_time, unix_time, decorations, line,
                                    now_ns)
        return self.result(result_from_json(data, line), now_ns)

    def _result(self, name: str, host: str, action: str, log_type: str, epoch: int,
                counter: int, calendar_time: str, unix_time: int,
                decorations: Mapping[str, Any], line: str, now_ns: int | None) -> Entry:
        fields = {"name": name, "host": host, "action": action, "log_type": log_type,
                  "epoch": epoch, "counter": counter, "calendar_time": calendar_time,
                  "unix_time": unix_time}
        return Entry(self._labels(fields, decorations), _seconds_ns(unix_time, now_ns),
                     line, self._metadata(fields, decorations))

    def status(self, record: StatusLog) -> Entry:
        """The entry for one status log: the JSON osquery's own loggers write for it."""
        severity = int(record.severity)
        line = json.dumps({"hostIdentifier": record.host_identifier,
                           "calendarTime": record.calendar_time, "unixTime": record.unix_time,
                           "severity": severity, "filename": record.filename,
                           "line": record.line, "message": record.message},
                          ensure_ascii=False, separators=(",", ":"))
        fields = {"host": record.host_identifier, "log_type": "status",
                  "severity": _SEVERITY[min(max(severity, 0), 3)].lower(),
                  "calendar_time": record.calendar_time, "unix_time": record.unix_time}
        return Entry(self._labels(fields, {}), _seconds_ns(record.unix_time),
                     sanitize_text(line), self._metadata(fields, {}))

    def unparsed(self, line: str, log_type: str = "unparsed") -> Entry:
        """A line that could not be read as osquery's: shipped as is, stamped now."""
        fields = {"log_type": log_type}
        return Entry(self._labels(fields, {}), _seconds_ns(0), line, ())


def _seconds_ns(unix_time: int, now_ns: int | None = None) -> int:
    if unix_time > 0:
        return unix_time * _NS
    # no time in the record: the time it reached us
    now_ns = time.time_ns() if now_ns is None else now_ns
    return now_ns - now_ns % _NS
