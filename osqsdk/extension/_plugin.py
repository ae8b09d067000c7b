"""The plugin protocol the extension server routes calls to."""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["REGISTRIES", "Plugin", "Response"]

log = logging.getLogger("osqsdk.plugin")

# Registry names osqueryd accepts in registerExtension (docs/protocol.md §2.3).
REGISTRIES = frozenset({
    "config", "config_parser", "database", "distributed", "enroll", "event_publisher",
    "event_subscriber", "logger", "numeric_monitoring", "sql", "table",
})

# The rows of a Response built without any: one list shared by all such responses (a
# NamedTuple default is evaluated once), so it must never be mutated.
_NO_ROWS: list[dict[str, Any]] = []


class Response(NamedTuple):
    """A plugin's answer: osquery's status code and message, and the response rows."""

    code: int = 0
    message: str = "OK"
    rows: list[dict[str, Any]] = _NO_ROWS

    @classmethod
    def ok(cls, rows: list[dict[str, Any]] | None = None) -> Response:
        return cls(0, "OK", rows if rows is not None else [])

    @classmethod
    def failed(cls, message: str, code: int = 1) -> Response:
        return cls(code, message, [])


class Plugin(abc.ABC):
    """Something osqueryd can call: a ``registry`` name, an item ``name`` and ``call``.

    Table, logger, config and distributed plugins implement this; implement it directly
    only for registries osqsdk has no class for.
    """

    registry: str = ""
    name: str = ""

    def routes(self) -> list[dict[str, str]]:
        """What registerExtension broadcasts for this item (column routes for tables)."""
        return []

    @abc.abstractmethod
    def call(self, request: Mapping[str, str]) -> Response:
        """Answer one request; exceptions become status 1 with their message."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.registry}/{self.name}>"
