"""Prometheus metrics of the Loki logger, on a registry of its own.

Shaped like promtail's and Alloy's client metrics (docs/loki.md §4.1, §4.2) so that the same
alerts carry over: sent/dropped entries and bytes with a ``reason`` label set to 0 at start
(dashboards see every reason before the first drop), retries, request duration by status
code, and the spool's size. ``osquery_results_total{name, action}`` counts result rows per
query as they arrive from osqueryd (Loki up or not), what the promtail ``metrics`` stage
gave in the reference osquery + Loki setup (docs/loki.md §6), for alerting on e.g. new SSH
logins.
"""

from __future__ import annotations

import collections
import enum
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from osqsdk._osquery.records import row_counts

__all__ = ["DropReason", "LokiMetrics"]


class DropReason(str, enum.Enum):
    """Why entries were dropped; the ``reason`` label of the drop counters."""

    LINE_TOO_LONG = "line_too_long"   #: over max_line_bytes with line_too_long="drop"
    TOO_OLD = "too_old"               #: older than max_age when sent (Loki would refuse it)
    TOO_NEW = "too_new"               #: further than max_future ahead when sent
    REJECTED = "rejected"             #: Loki answered 400 for this entry
    TOO_LARGE = "too_large"           #: Loki answered 413 for a request of this one entry
    UNAUTHORIZED = "unauthorized"     #: 401/403/407 until max_retries was used up
    CLIENT_ERROR = "client_error"     #: another 4xx until max_retries was used up
    RATE_LIMITED = "rate_limited"     #: 429 with drop_rate_limited, or retries used up
    SERVER_ERROR = "server_error"     #: 5xx until retries were used up
    NETWORK_ERROR = "network_error"   #: no answer until retries were used up
    SPOOL_FULL = "spool_full"         #: the spool hit spool_max_bytes; oldest dropped
    DISK_FULL = "disk_full"           #: the disk was full and the memory hold overflowed
    CORRUPT = "corrupt"               #: a spool record failed its checksum
    LOST_IN_FLIGHT = "lost_in_flight"  #: being sent, off disk (size limit), process ended
    SPOOL_ERROR = "spool_error"       #: the spool could not take the entry (closed, I/O error)


class MutateReason(str, enum.Enum):
    """Why entries were changed before sending."""

    LINE_TOO_LONG = "line_too_long"   #: truncated to max_line_bytes


class _CallbackCounter:
    """A counter whose value a function gives (prometheus_client custom collector)."""

    def __init__(self, name: str, documentation: str, value: Callable[[], float]) -> None:
        self.name, self.documentation, self.value = name, documentation, value

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation)]

    def collect(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, value=self.value())]


class ResultRows:
    """``osquery_results_total{name, action}``: result rows per query, as lines arrive.

    The logger hands over each line as it is (``add_line``, a deque append, so osqueryd's
    call does not wait for the counting); the rows are counted whenever the metric is read
    (a scrape, ``LokiMetrics.value``), by the client's batching thread between batches, and
    by the adding thread every ``batch`` lines, so that memory stays bounded whatever
    happens. Counted on arrival either way: the counter rises while Loki is down too
    (alert rules read it).
    """

    def __init__(self, batch: int = 4096) -> None:
        self._batch = batch
        self._lines: collections.deque[str] = collections.deque()
        self._counts: dict[tuple[str, str], int] = {}
        # osquery_new_results_total: rows of lines whose counter is not 0 (changes since the
        # query's previous run), created at 0 for added/removed with the first line of a
        # query, so that the first change is an increase (docs/loki.md §8)
        self._new: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def add_line(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) >= self._batch:
            self.count_pending(wait=False)

    def add(self, name: str, action: str, rows: int, counter: int = -1) -> None:
        with self._lock:
            self._add(name, counter, action, rows)

    def _add(self, name: str, counter: int, action: str, rows: int) -> None:  # lock held
        new = self._new
        if (name, "added") not in new:
            new[(name, "added")] = new[(name, "removed")] = 0
        if rows:
            key = (name, action)
            self._counts[key] = self._counts.get(key, 0) + rows
            if counter != 0 and action != "snapshot":
                new[key] = new.get(key, 0) + rows

    def count_pending(self, wait: bool = True) -> None:
        """Count the lines added so far (``wait=False``: unless another thread is)."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            popleft, add = self._lines.popleft, self._add
            while True:
                try:
                    line = popleft()
                except IndexError:
                    return
                counted = row_counts(line)  # None: not a result line, nothing to count
                if counted is not None:
                    name, counter, pairs = counted
                    for action, rows in pairs:
                        add(name, counter, action, rows)
        finally:
            self._lock.release()

    def describe(self) -> list[CounterMetricFamily]:
        return list(self._families())

    def collect(self) -> list[CounterMetricFamily]:
        self.count_pending()
        every, new = self._families()
        with self._lock:
            counts = sorted(self._counts.items())
            news = sorted(self._new.items())
        for (name, action), rows in counts:
            every.add_metric([name, action], rows)
        for (name, action), rows in news:
            new.add_metric([name, action], rows)
        return [every, new]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (CounterMetricFamily("osquery_results", "osquery result rows by query name "
                                    "and action.", labels=["name", "action"]),
                CounterMetricFamily("osquery_new_results", "osquery result rows that changed "
                                    "since the query's previous run (lines with counter > 0; "
                                    "a first run's rows are not new).",
                                    labels=["name", "action"]))


class _Ledger:
    """Entry counts that add up at every scrape: received = sent + dropped + in the spool.

    ``received`` is what this process took charge of: the spool's backlog at start, the
    entries appended since, and lines dropped before they reached the spool. Sent and
    dropped entries of a batch are settled when the spool acknowledges the batch, and the
    four numbers are read under the spool's lock, the one every change holds
    (docs/loki.md §8).
    """

    def __init__(self) -> None:
        self.lock: Any = threading.Lock()  # the spool's lock once the client wires it
        self.sent = 0
        self.dropped = dict.fromkeys((r.value for r in DropReason), 0)
        self.taken = 0  # received other than by appending: the backlog, intake drops
        self.appended: Callable[[], int] = lambda: 0
        self.in_spool: Callable[[], int] = lambda: 0

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        with self.lock:
            sent, dropped = self.sent, dict(self.dropped)
            received, entries = self.taken + self.appended(), self.in_spool()
        families: list[Any] = [
            CounterMetricFamily("osqsdk_loki_received_entries", "Entries this process took "
                                "charge of: the spool's backlog at start, entries accepted "
                                "since, and lines dropped before the spool.", value=received),
            CounterMetricFamily("osqsdk_loki_sent_entries", "Entries Loki acknowledged.",
                                value=sent)]
        by_reason = CounterMetricFamily("osqsdk_loki_dropped_entries", "Entries dropped, by "
                                        "reason.", labels=["reason"])
        for reason, value in dropped.items():
            by_reason.add_metric([reason], value)
        families.append(by_reason)
        families.append(GaugeMetricFamily("osqsdk_loki_spool_entries", "Entries in the spool "
                                          "not yet sent or counted as dropped.",
                                          value=entries))
        return families


class Settlement:
    """What happened to one batch's entries, counted when the spool acknowledges it."""

    __slots__ = ("dropped", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.dropped: list[tuple[str, int]] = []


class LokiMetrics:
    """The collectors; ``registry`` is what the metrics endpoint serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # received, sent, dropped and spool entries: one collector, consistent at a scrape;
        # received is counted by the spool's sequence numbers, free on the hot path.
        self._ledger = _Ledger()
        r.register(self._ledger)
        self.sent_bytes = Counter("osqsdk_loki_sent_bytes", "Line and structured metadata "
                                  "bytes Loki acknowledged.", registry=r)
        self.retries = Counter("osqsdk_loki_batch_retries", "Push requests retried.",
                               registry=r)
        self.retried_entries = Counter("osqsdk_loki_retried_entries", "Entries in push "
                                       "requests that were retried, per retry.", registry=r)
        self.dropped_bytes = Counter("osqsdk_loki_dropped_bytes", "Bytes dropped, by reason.",
                                     ["reason"], registry=r)
        self.mutated_entries = Counter("osqsdk_loki_mutated_entries", "Entries changed before "
                                       "sending, by reason.", ["reason"], registry=r)
        for reason in DropReason:
            self.dropped_bytes.labels(reason.value)
        for mutation in MutateReason:
            self.mutated_entries.labels(mutation.value)
        self.request_duration = Histogram(
            "osqsdk_loki_request_duration_seconds", "Push request duration by HTTP status "
            "code (-1: no answer).", ["status_code"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.last_success = Gauge("osqsdk_loki_last_success_timestamp_seconds", "Unix time of "
                                  "the last push Loki acknowledged.", registry=r)
        self.spool_bytes = Gauge("osqsdk_loki_spool_bytes", "Bytes in the spool (on disk and "
                                 "held in memory).", registry=r)
        self.spool_max_bytes = Gauge("osqsdk_loki_spool_max_bytes", "The spool's limit "
                                     "(spool_max_bytes): past it the oldest entries are "
                                     "dropped as spool_full.", registry=r)
        self.results = ResultRows()
        r.register(self.results)

    def track_spool(self, lock: Any, entries: Callable[[], int], nbytes: Callable[[], float],
                    appended: Callable[[], int], backlog: int) -> None:
        """Count from this spool on: ``lock`` guards it, ``backlog`` entries were in it (or
        counted as dropped while it opened) when this process took charge."""
        ledger = self._ledger
        ledger.lock, ledger.in_spool, ledger.appended = lock, entries, appended
        ledger.taken += backlog
        self.spool_bytes.set_function(nbytes)

    def dropped_total(self) -> int:
        return sum(self._ledger.dropped.values())

    def drop(self, reason: DropReason | str, entries: int, nbytes: int, *,
             intake: bool = False) -> None:
        """Count a drop; ``intake``: lines dropped before they reached the spool."""
        with self._ledger.lock:
            self.drop_locked(reason, entries, nbytes)
            if intake:
                self._ledger.taken += entries

    def drop_locked(self, reason: DropReason | str, entries: int, nbytes: int) -> None:
        """``drop`` for a caller that holds the spool's lock (the spool itself)."""
        label = reason.value if isinstance(reason, DropReason) else reason
        self._ledger.dropped[label] = self._ledger.dropped.get(label, 0) + entries
        self.dropped_bytes.labels(label).inc(nbytes)

    def settle_locked(self, settlement: Settlement) -> None:
        """Count a batch's outcome; the caller holds the spool's lock (``Spool.ack``)."""
        ledger = self._ledger
        ledger.sent += settlement.sent
        for reason, entries in settlement.dropped:
            ledger.dropped[reason] = ledger.dropped.get(reason, 0) + entries

    def value(self, metric: str, /, **labels: str) -> float:
        """A sample's current value (0 when absent), for tests and the CLI."""
        found = self.registry.get_sample_value(metric, labels)
        return 0.0 if found is None else found

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the server."""
        from prometheus_client import start_http_server

        result = start_http_server(port, addr=addr, registry=self.registry)
        return result[0] if isinstance(result, tuple) else result
