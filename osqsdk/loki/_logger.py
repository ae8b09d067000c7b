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
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from osqsdk._osquery.records import ResultLog, StatusLog, parse_result
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

    def call(self, request: Mapping[str, str]) -> Response:
        line = request.get("string")
        if line is not None:
            return self._line(line, request.get("category", ""))
        if "snapshot" in request:
            return self._line(request["snapshot"], "")
        if "string_batch" in request:
            return self._string_batch(request["string_batch"])
        return super().call(request)

    def _line(self, line: str, category: str) -> Response:
        if len(line) <= self._raw_chars:
            # The common case: spooled as it came, parsed and labelled when shipped.
            try:
                self._push_raw(line)
            except Exception as exc:  # answered as success all the same
                self._spool_failed(1, len(line), exc)
            # counted on arrival, not when shipped: alert rules read these counters, and
            # they must rise while Loki is down too
            self._add_line(line)
            return _OK
        # Lines this long may be truncated by max_line_bytes: parsed before that, so that
        # their labels survive.
        try:
            record = parse_result(line, category)
        except ValueError as exc:
            # Never a failure to osqueryd (it would exit); ship the line as it came.
            log.error("logger %s: result line is not osquery's format (%s); shipped with "
                      "log_type=unparsed: %.200s", self.name, exc, line)
            self._accept([self.mapper.unparsed(line)])
            return Response.ok()
        self._log_result(record)
        return Response.ok()

    def _string_batch(self, text: str) -> Response:
        try:
            lines = json.loads(text)
        except json.JSONDecodeError as exc:
            log.error("logger %s: string_batch is not JSON (%s); shipped with "
                      "log_type=unparsed", self.name, exc)
            self._accept([self.mapper.unparsed(text)])
            return Response.ok()
        if not isinstance(lines, list):
            lines = [text]
        for line in lines:
            self._line(line if isinstance(line, str) else json.dumps(line), "")
        return Response.ok()

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
        self.metrics.drop(DropReason.SPOOL_ERROR, count, nbytes)
        log.error("logger %s: could not spool %d entries (%s: %s); they are dropped",
                  self.name, count, type(exc).__name__, exc)

    def _count_rows(self, record: ResultLog) -> None:
        for action, rows in collections.Counter(action for action, _ in record.rows()).items():
            self.metrics.results.add(record.name, action, rows)

    def close(self, timeout: float | None = None) -> bool:
        """Drain for up to ``timeout`` seconds (default drain_timeout) and stop."""
        return self.client.close(timeout)
