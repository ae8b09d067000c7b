"""Calls into a running extension, made the way osqueryd makes them: a ping on its own
connection first, then the call on a fresh one (docs/protocol.md §1.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from osqsdk.extension._plugin import Response

if TYPE_CHECKING:
    from osqsdk.extension._wire.client import Reply

__all__ = ["RemoteCallError", "RemoteLogger", "call_extension"]


class RemoteCallError(Exception):
    """The extension's socket did not answer, or the call failed on the wire."""


def call_extension(socket_path: str, registry: str, item: str,
                   request: Mapping[str, str], *, timeout: float = 300.0) -> Reply:
    """Ping the extension at ``socket_path``, then call ``item`` of ``registry``."""
    from osqsdk.errors import ExtensionError
    from osqsdk.extension._wire.client import Client

    try:
        with Client(socket_path, timeout=10.0, manager=False) as probe:
            if probe.ping().code == 1:
                raise RemoteCallError(f"Extension socket not available: {socket_path}")
        with Client(socket_path, timeout=timeout, manager=False) as client:
            return client.call(registry, item, request)
    except ExtensionError as exc:
        raise RemoteCallError(f"Extension call failed: {exc}") from exc


class RemoteLogger:
    """A logger plugin in a running extension, called the way osqueryd calls it."""

    def __init__(self, socket_path: str, name: str, *, timeout: float = 300.0) -> None:
        self.socket_path = socket_path
        self.name = name
        self.timeout = timeout

    def call(self, request: Mapping[str, str]) -> Response:
        try:
            reply = call_extension(self.socket_path, "logger", self.name, request,
                                   timeout=self.timeout)
        except RemoteCallError as exc:
            return Response.failed(str(exc))
        return Response(reply.code, reply.message, reply.rows)
