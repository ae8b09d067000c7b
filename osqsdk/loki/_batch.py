"""A batch read from the spool -> Loki streams: labels for raw lines, time limits, order.

The same code runs in the sending thread and in the encoder process (``_encoder``); it
reports what it drops and what it could not read instead of counting and logging, which
the client does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from osqsdk.loki._labels import Entry, Mapper
from osqsdk.loki._metrics import DropReason

__all__ = ["RAW", "Prepared", "entry_bytes", "map_raw", "prepare_batch"]

_NS = 1_000_000_000
# Loki's timestamps are int64 nanoseconds (about the year 2262).
_MAX_TS = (1 << 63) - 1
# The label string of an entry spooled as osqueryd sent it (push_result_line): never a
# real one (an empty label set is "{}"), so it can only mean "map me when shipped".
RAW = ""


class Dropped(NamedTuple):
    reason: DropReason
    entry: Entry
    why: str


@dataclass
class Prepared:
    """Streams (label string, entries in time order) and what was left out."""

    items: list[tuple[str, list[Entry]]] = field(default_factory=list)
    nbytes: int = 0                   # line + metadata bytes of the entries in items
    dropped: list[Dropped] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # log messages, one per line


def entry_bytes(entry: Entry) -> int:
    # Loki's batch and rate accounting: line plus structured metadata (docs/loki.md §2.1).
    size = len(entry.line)
    for name, value in entry.metadata:
        size += len(name) + len(value)
    return size


def _ts(entry: Entry) -> int:
    return entry.ts_ns


def map_raw(mapper: Mapper, seq: int, entry: Entry, unreadable: list[str]) -> Entry:
    """The entry for a line spooled raw; a line that is not osquery's is noted in
    ``unreadable`` and shipped as it is with ``log_type="unparsed"``."""
    try:
        # The time is the query's unixTime (when it ran), else when the line was accepted.
        mapped = mapper.result_line(entry.line, entry.ts_ns)
    except Exception as exc:  # whatever the line, it must not stop the shipping
        unreadable.append(f"result line is not osquery's format ({exc}); shipped with "
                          f"log_type=unparsed: {entry.line[:200]}")
        return Entry(mapper.unparsed(entry.line).labels, entry.ts_ns, entry.line)
    # plus seq % 1e9 ns so that lines of one second keep their order in a stream and a
    # resend carries the same timestamp
    return Entry(mapped.labels, mapped.ts_ns + seq % _NS, mapped.line, mapped.metadata)


def prepare_batch(mapper: Mapper, config: Any, batch: Sequence[tuple[int, Entry, int]],
                  now_ns: int) -> Prepared:
    """Group ``batch`` ((seq, entry, bytes) from the spool) into streams as of ``now_ns``:
    raw lines labelled, entries Loki would refuse as too old or too new left out, each
    stream in time order (Vector's rule). The same input gives the same output."""
    oldest = now_ns - int(config.max_age * _NS) if config.max_age else None
    newest = now_ns + int(config.max_future * _NS) if config.max_future else None
    out = Prepared()
    streams: dict[str, list[Entry]] = {}
    nbytes = 0
    for seq, entry, size in batch:
        if entry.labels == RAW:
            entry = map_raw(mapper, seq, entry, out.unreadable)
        if oldest is not None and entry.ts_ns < oldest:
            out.dropped.append(Dropped(DropReason.TOO_OLD, entry, "older than max_age"))
            continue
        if newest is not None and entry.ts_ns > newest:
            out.dropped.append(Dropped(DropReason.TOO_NEW, entry,
                                       "further in the future than max_future"))
            continue
        if entry.ts_ns > _MAX_TS:  # e.g. a unixTime in milliseconds, with max_future=0
            out.dropped.append(Dropped(DropReason.TOO_NEW, entry,
                                       "a time past what Loki can store"))
            continue
        stream = streams.get(entry.labels)
        if stream is None:
            stream = streams[entry.labels] = []
        stream.append(entry)
        nbytes += size
    for stream in streams.values():
        stream.sort(key=_ts)
    out.items = list(streams.items())
    out.nbytes = nbytes
    return out
