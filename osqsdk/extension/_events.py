"""EventTable: a table that remembers rows between queries, like osquery's event tables.

A normal table answers with what exists when osqueryd asks. A container or process that
starts and exits between two scheduled runs is never seen. An EventTable is fed by a
publisher (a thread, a callback, an inotify loop) and keeps every published row, with
osquery's ``time`` and ``eid`` columns, for ``expiry`` seconds and at most ``max_events``
rows (osquery's --events_expiry and --events_max), so the next query still sees it.

Query it from a scheduled query with ``removed: false``: new events then show up as added
rows, and their expiry later is not reported as a removal.
"""

from __future__ import annotations

import itertools
import threading
import time as _time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from osqsdk._osquery.columns import Column, ColumnType
from osqsdk.errors import PluginDefinitionError
from osqsdk.extension._context import Operator, QueryContext
from osqsdk.extension._table import TablePlugin

__all__ = ["DEFAULT_EVENTS_EXPIRY", "DEFAULT_EVENTS_MAX", "EventTable"]

DEFAULT_EVENTS_EXPIRY = 86400   # osquery's --events_expiry (seconds)
DEFAULT_EVENTS_MAX = 50000      # osquery's --events_max (rows per table)

_COMPARE: dict[Operator, Callable[[int, int], bool]] = {
    Operator.EQUALS: lambda a, b: a == b,
    Operator.GREATER_THAN: lambda a, b: a > b,
    Operator.GREATER_THAN_OR_EQUALS: lambda a, b: a >= b,
    Operator.LESS_THAN: lambda a, b: a < b,
    Operator.LESS_THAN_OR_EQUALS: lambda a, b: a <= b,
}


class EventTable(TablePlugin):
    """A TablePlugin whose rows are the events published to it.

    ``columns`` are the event's own columns; ``time`` (BIGINT, unix seconds) and ``eid``
    (TEXT, increasing, hidden) are added. ``publish(row)`` stamps and stores a row; rows
    older than ``expiry`` seconds or beyond ``max_events`` are dropped, oldest first, and
    counted in ``expired``/``dropped``. Queries get the rows in publication order, already
    narrowed by any ``time`` constraints (SQLite re-checks them anyway).
    """

    def __init__(self, name: str, columns: Sequence[Column], *,
                 expiry: float = DEFAULT_EVENTS_EXPIRY, max_events: int = DEFAULT_EVENTS_MAX,
                 clock: Callable[[], float] = _time.time, **options: Any) -> None:
        own = [c for c in columns if c.name in ("time", "eid")]
        if own:
            raise PluginDefinitionError(f"event table {name!r}: 'time' and 'eid' are added "
                                        "by EventTable; do not declare them")
        if max_events < 1 or expiry <= 0:
            raise PluginDefinitionError(f"event table {name!r}: max_events and expiry must "
                                        "be positive")
        columns = [*columns, Column("time", ColumnType.BIGINT, index=True),
                   Column("eid", ColumnType.TEXT, hidden=True)]
        # registered with osquery's event-based attribute, so that osqueryd and the linter
        # (--spec: "evented": true) treat it as the event table it is (docs/protocol.md §2.4)
        options.setdefault("event_based", True)
        super().__init__(name, columns, self._generate_events, **options)
        self.expiry = expiry
        self.max_events = max_events
        self.clock = clock
        self._events: deque[dict[str, Any]] = deque()
        self._eids = itertools.count(1)
        self._lock = threading.Lock()
        self.expired = 0
        self.dropped = 0

    def publish(self, row: Mapping[str, Any], *, time: float | None = None) -> dict[str, Any]:
        """Store one event; returns it with its ``time`` and ``eid``."""
        unknown = set(row) - {c.name for c in self.columns}
        if unknown:
            raise PluginDefinitionError(f"event table {self.name!r}: "
                                        f"{', '.join(sorted(unknown))} not a column")
        stamp = int(self.clock() if time is None else time)
        with self._lock:
            event = {**row, "time": stamp, "eid": f"{next(self._eids):010d}"}
            self._events.append(event)
            while len(self._events) > self.max_events:
                self._events.popleft()
                self.dropped += 1
            self._expire(stamp)
        return event

    def _expire(self, now: float) -> None:
        horizon = now - self.expiry
        while self._events and self._events[0]["time"] < horizon:
            self._events.popleft()
            self.expired += 1

    def events(self) -> list[dict[str, Any]]:
        """The events currently kept, oldest first."""
        with self._lock:
            self._expire(self.clock())
            return list(self._events)

    def _generate_events(self, context: QueryContext) -> list[dict[str, Any]]:
        checks = []
        for constraint in context.constraints_for("time"):
            compare = _COMPARE.get(constraint.operator)
            if compare is not None and isinstance(constraint.value, int):
                checks.append((compare, constraint.value))
        return [event for event in self.events()
                if all(compare(event["time"], bound) for compare, bound in checks)]
