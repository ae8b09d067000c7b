"""A logger plugin in a running extension, called over its socket as osqueryd calls it."""

from __future__ import annotations

from collections.abc import Mapping

from osqsdk.extension._plugin import Response

__all__ = ["RemoteLogger"]


class RemoteLogger:
    """A logger plugin in a running extension, called the way osqueryd calls it."""

    def __init__(self, socket_path: str, name: str, *, timeout: float = 300.0) -> None:
        self.socket_path = socket_path
        self.name = name
        self.timeout = timeout

    def call(self, request: Mapping[str, str]) -> Response:
        from osqsdk.errors import ExtensionError
        from osqsdk.extension._wire.client import Client

        try:
            with Client(self.socket_path, timeout=10.0, manager=False) as probe:
                if probe.ping().code == 1:
                    return Response.failed(f"Extension socket not available: {self.socket_path}")
            with Client(self.socket_path, timeout=self.timeout, manager=False) as client:
                reply = client.call("logger", self.name, request)
        except ExtensionError as exc:
            return Response.failed(f"Extension call failed: {exc}")
        return Response(reply.code, reply.message, reply.rows)
