"""LokiLogger: the ``loki`` logger plugin osqueryd sends its results and status logs to.

Its answer to a result or snapshot line is success once the line is in the spool (written
to the segment file, and fsynced too when ``fsync_interval`` is 0). It never answers a
failure: osqueryd treats a failed result line as fatal, exits with code 78 and its watcher
stops the whole daemon, and the line is lost anyway because osqueryd already stored the
new results (docs/protocol.md §4.6, osquery #7100). So:

* a result line is spooled as osqueryd sent it and given its labels when it is shipped,
  in the sending thread, so that osqueryd waits only for the write and a row count (the
  per-query counters, which alert rules read whether Loki is up or not); a line that is
  not osquery's JSON is shipped as it is, with ``log_type="unparsed"``;
* when the disk is full the spool holds lines in memory and ships them from there
  (``memory_tail_bytes``), and counts what it cannot hold as dropped (``disk_full``);
* any other failure to spool is logged and counted (``spool_error``).

Status logs are wanted (features bit 1), events are not (docs/protocol.md §4.1).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from osqsdk._osquery.records import ResultLog, StatusLog
from osqsdk.extension._logger import LoggerPlugin
from osqsdk.extension._plugin import Response
from osqsdk.loki._client import LokiClient
from osqsdk.loki._config import LokiConfig
from osqsdk.loki._labels import Entry
from osqsdk.loki._metrics import DropReason, LokiMetrics

__all__ = ["LokiLogger"]

log = logging.getLogger("osqsdk.loki")
_OK = Response.ok()  # never changed: the answer to every result line


class LokiLogger(LoggerPlugin):
    """A logger plugin that forwards osquery's logs to Loki (``--logger_plugin=loki``).

    ``client`` replaces the LokiClient built from ``config`` (tests, embedding); its
    label mapping (``client.mapper``) is the one used.
    """

    def __init__(self, config: LokiConfig, *, client: LokiClient | None = None,
                 metrics: LokiMetrics | None = None, pool: Any = None) -> None:
        if config.encoder_process is None:  # on by default here (see LokiConfig)
            config = dataclasses.replace(config, encoder_process=True)
        self.config = config
        self.client = client if client is not None else LokiClient(config, metrics=metrics,
                                                                   pool=pool)
        self.metrics = self.client.metrics
        self.mapper = self.client.mapper
        self._add_line = self.metrics.results.add_line
        self._push_raw = self.client.push_result_line
        # Lines this long may be truncated by max_line_bytes: parsed here, before that.
        self._raw_chars = config.max_line_bytes // 4
        super().__init__(config.plugin_name, log_result=self._log_result,
                         log_status=self._log_status)

    # LoggerPlugin routes every request; these are the two points where shipping to Loki
    # differs from its defaults.
    def result_line(self, line: str, category: str) -> Response:
        if len(line) > self._raw_chars:
            # Lines this long may be truncated by max_line_bytes: parsed before that, so
            # that their labels survive.
            return super().result_line(line, category)
        # The common case: spooled as it came, parsed and labelled when shipped.
        try:
            self._push_raw(line)
        except Exception as exc:  # answered as success all the same
            self._spool_failed(1, len(line), exc)
        # counted on arrival, not when shipped: alert rules read these counters, and they
        # must rise while Loki is down too
        self._add_line(line)
        return _OK

    def unreadable_result(self, line: str, cause: str) -> Response:
        # Never a failure to osqueryd (it would exit); ship the line as it came.
        with self._lock:
            self.unreadable += 1
        log.error("logger %s: result line is not osquery's format (%s); shipped with "
                  "log_type=unparsed: %.200s", self.name, cause, line)
        self._accept([self.mapper.unparsed(line)])
        return _OK

    def _log_result(self, record: ResultLog) -> None:
        self._accept([self.mapper.result(record)])
        self._count_rows(record)

    def _log_status(self, records: Sequence[StatusLog]) -> None:
        self._accept([self.mapper.status(r) for r in records])

    def _accept(self, entries: list[Entry]) -> None:
        try:
            self.client.push_entries(entries, subsecond=True)
        except Exception as exc:  # answered as success all the same (see module docstring)
            self._spool_failed(len(entries), sum(len(e.line) for e in entries), exc)

    def _spool_failed(self, count: int, nbytes: int, exc: Exception) -> None:
        self.metrics.drop(DropReason.SPOOL_ERROR, count, nbytes, intake=True)
        log.error("logger %s: could not spool %d entries (%s: %s); they are dropped",
                  self.name, count, type(exc).__name__, exc)

    def _count_rows(self, record: ResultLog) -> None:
        for action, rows in collections.Counter(action for action, _ in record.rows()).items():
            self.metrics.results.add(record.name, action, rows, record.counter)

    def close(self, timeout: float | None = None) -> bool:
        """Drain for up to ``timeout`` seconds (default drain_timeout) and stop."""
        return self.client.close(timeout)
