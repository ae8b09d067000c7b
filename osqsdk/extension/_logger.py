"""Logger plugins: osqueryd's results, snapshots, status logs and events (docs/protocol.md §4)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from osqsdk._osquery.records import ResultLog, StatusLog, parse_result, parse_status_batch
from osqsdk.errors import OsqsdkError
from osqsdk.extension._plugin import Plugin, Response

__all__ = ["FEATURE_EVENTS", "FEATURE_STATUS_LOGS", "LoggerFailure", "LoggerPlugin"]

log = logging.getLogger("osqsdk.logger")

# The `features` answer is a bitmask carried in the status code (osquery's LoggerFeature).
FEATURE_STATUS_LOGS = 1
FEATURE_EVENTS = 2


class LoggerFailure(OsqsdkError):
    """Raise from ``log_result`` to answer osqueryd with a failure.

    osqueryd treats a failed result or snapshot line as fatal: the worker exits with code
    78 and the watcher stops the whole daemon (osquery #7100), and the line is lost because
    osqueryd already stored the new results. Raise this only when stopping osqueryd is what
    you want.
    """


class LoggerPlugin(Plugin):
    """A logger osqueryd can send its logs to (``--logger_plugin=<name>``).

    ``log_result(record)`` receives every result and snapshot line as a parsed ``ResultLog``
    (``record.raw`` is the line as sent). It should return quickly: osqueryd's scheduler
    waits for the answer.

    The failure policy for result lines, the same for every logger built on this class:
    osqueryd exits when a result line fails (docs/protocol.md §4.6), so the answer is
    success unless ``log_result`` raises ``LoggerFailure``. Any other exception is logged
    and counted in ``dropped``; a line that is not osquery's format is logged and counted
    in ``unreadable`` (``unreadable_result`` may ship it elsewhere instead). Subclasses
    change how a line is handled by overriding ``result_line``, ``deliver_result`` or
    ``unreadable_result``, never the routing in ``call``.

    Giving ``log_status(records)`` asks osqueryd for its status logs (a list of
    ``StatusLog`` per batch); giving ``log_event(row)`` asks for event-subscriber rows.
    osqueryd asks for these features once, right after ``init(name)``. Callbacks may run on
    several threads at once.
    """

    registry = "logger"

    def __init__(
        self,
        name: str,
        *,
        log_result: Callable[[ResultLog], Any] | None = None,
        log_status: Callable[[list[StatusLog]], Any] | None = None,
        log_event: Callable[[dict[str, Any]], Any] | None = None,
        init: Callable[[str], Any] | None = None,
    ) -> None:
        self.name = name
        self.log_result = log_result
        self.log_status = log_status
        self.log_event = log_event
        self.init = init
        self._lock = threading.Lock()
        self.dropped = 0  # result lines lost to exceptions in log_result
        self.unreadable = 0  # result lines that are not osquery's format

    @property
    def features(self) -> int:
        return ((FEATURE_STATUS_LOGS if self.log_status is not None else 0)
                | (FEATURE_EVENTS if self.log_event is not None else 0))

    def call(self, request: Mapping[str, str]) -> Response:
        if "string" in request:
            return self.result_line(request["string"], request.get("category", ""))
        if "snapshot" in request:
            return self.result_line(request["snapshot"], "")
        if "string_batch" in request:  # sent by extensions into osqueryd (5.9+); accept it too
            return self.result_batch(request["string_batch"])
        if "status" in request:
            return self._status(request.get("log", "[]"))
        if "event" in request:
            return self._event(request["event"])
        if "init" in request:
            if self.init is not None:
                self.init(request["init"])
            return Response.ok()
        if request.get("action") == "features":
            # osqueryd reads the status *code* as the bitmask; answering "unknown action"
            # (code 1) would switch status-log forwarding on (docs/protocol.md §4.1).
            return Response(self.features, "OK", [])
        if "health" in request:  # legacy key; osqueryd 5.x does not send it
            return Response.ok()
        return Response.failed(f"logger {self.name!r}: unknown request with keys "
                               f"{', '.join(sorted(request)) or '(none)'}")

    def result_line(self, line: str, category: str) -> Response:
        """One result or snapshot line from osqueryd: parse it, then deliver it."""
        try:
            record = parse_result(line, category)
        except ValueError as exc:
            return self.unreadable_result(line, str(exc))
        return self.deliver_result(record)

    def deliver_result(self, record: ResultLog) -> Response:
        """Hand ``record`` to ``log_result`` under the failure policy above."""
        if self.log_result is None:
            return Response.ok()
        try:
            self.log_result(record)
        except LoggerFailure as exc:
            log.error("logger %s failed a result line on purpose: %s", self.name, exc)
            return Response.failed(str(exc) or "logger failure")
        except Exception:
            with self._lock:
                self.dropped += 1
            log.exception("logger %s: log_result raised; the line of %r is dropped",
                          self.name, record.name)
        return Response.ok()

    def unreadable_result(self, line: str, cause: str) -> Response:
        """A result line that is not osquery's format: logged and counted, never a failure
        (osqueryd would exit on it, docs/protocol.md §4.6)."""
        with self._lock:
            self.unreadable += 1
        log.error("logger %s: result line is not osquery's format (%s); dropped: %.200s",
                  self.name, cause, line)
        return Response.ok()

    def result_batch(self, text: str) -> Response:
        """A ``string_batch``: a JSON array of result lines, each handled as one line."""
        try:
            lines = json.loads(text)
        except json.JSONDecodeError as exc:
            return self.unreadable_result(text, f"string_batch is not JSON: {exc}")
        if not isinstance(lines, list):
            return self.unreadable_result(text, "string_batch is not a JSON array")
        for line in lines:
            # an item that is not a string is read as the JSON text it stands for
            response = self.result_line(line if isinstance(line, str) else json.dumps(line), "")
            if response.code != 0:
                return response
        return Response.ok()

    def _status(self, text: str) -> Response:
        try:
            records = parse_status_batch(text)
        except ValueError as exc:
            log.error("logger %s: %s", self.name, exc)
            return Response.failed(f"logger {self.name!r}: {exc}")
        if self.log_status is not None and records:
            try:
                self.log_status(records)
            except Exception as exc:  # osqueryd ignores this answer; report it anyway
                log.exception("logger %s: log_status raised", self.name)
                return Response.failed(f"logger {self.name!r}: log_status failed: {exc}")
        return Response.ok()

    def _event(self, text: str) -> Response:
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            return Response.failed(f"logger {self.name!r}: event is not JSON: {exc}")
        if not isinstance(row, dict):
            return Response.failed(f"logger {self.name!r}: event is not a JSON object")
        if self.log_event is not None:
            try:
                self.log_event(row)
            except Exception as exc:
                log.exception("logger %s: log_event raised", self.name)
                return Response.failed(f"logger {self.name!r}: log_event failed: {exc}")
        return Response.ok()
