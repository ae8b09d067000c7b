"""ExtensionClient: call osqueryd (or an extension) from Python."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from osqsdk.errors import ExtensionConnectionError, QueryError
from osqsdk.extension._flags import DEFAULT_SOCKET
from osqsdk.extension._plugin import Response
from osqsdk.extension._wire.client import Client, Reply

__all__ = ["ExtensionClient"]


class ExtensionClient:
    """A connection to osqueryd's extensions socket (``--extensions_socket``).

    ``query`` runs SQL in osqueryd and returns rows of strings, as osqueryd sends them;
    ``call`` reaches any registry item (core or another extension's). The connection is
    opened on first use and reopened after a connection error.
    """

    def __init__(self, socket_path: str = DEFAULT_SOCKET, *, timeout: float | None = 30.0,
                 manager: bool = True) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._manager = manager
        self._client: Client | None = None
        self._lock = threading.Lock()

    def _conn(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = Client(self.socket_path, timeout=self.timeout, manager=self._manager)
            return self._client

    def _do(self, method: str, *args: Any) -> Any:
        client = self._conn()
        try:
            return getattr(client, method)(*args)
        except ExtensionConnectionError:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> ExtensionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> Response:
        reply = self._do("ping")
        return Response(reply.code, reply.message, [])

    def query(self, sql: str) -> list[dict[str, str]]:
        """Run ``sql`` in osqueryd. Raises QueryError with SQLite's message."""
        reply: Reply = self._do("query", sql)
        if reply.code != 0:
            raise QueryError(sql, reply.message, reply.code)
        return reply.rows

    def query_columns(self, sql: str) -> list[tuple[str, str]]:
        """The result columns of ``sql`` as (name, type) pairs, without running it."""
        reply = self._do("get_query_columns", sql)
        if reply.code != 0:
            raise QueryError(sql, reply.message, reply.code)
        return [next(iter(row.items())) for row in reply.rows if row]

    def extensions(self) -> dict[int, dict[str, str]]:
        found: dict[int, dict[str, str]] = self._do("extensions")
        return found

    def options(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = self._do("options")
        return found

    def call(self, registry: str, item: str, request: Mapping[str, str]) -> Response:
        reply = self._do("call", registry, item, request)
        return Response(reply.code, reply.message, reply.rows)
