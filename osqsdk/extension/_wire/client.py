"""A Thrift client for osqueryd's manager socket or an extension's socket.

One ``Client`` is one connection; calls on it are serialized by a lock (a Thrift connection
carries one call at a time). osqueryd itself opens a connection per call, and so does
osqsdk's watcher: a manager that restarted is then noticed instead of a dead connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.protocol.TProtocol import TProtocolException
from thrift.Thrift import TApplicationException
from thrift.transport.TTransport import TBufferedTransport, TTransportException

from osqsdk.errors import (
    ExtensionConnectionError,
    ExtensionError,
    ExtensionTimeout,
    ProtocolError,
)
from osqsdk.extension._wire import transport
from osqsdk.extension._wire._gen import Extension, ExtensionManager
from osqsdk.extension._wire._gen.ttypes import (
    ExtensionResponse,
    ExtensionStatus,
    InternalExtensionInfo,
)
from osqsdk.extension._wire.server import MAX_STRING_BYTES, _ConnectionSocket

__all__ = ["Client", "Reply", "map_errors"]

# Rows of a query() reply: a client may legitimately receive millions.
_MAX_REPLY_ITEMS = 1 << 24


class Reply:
    """A status plus rows, the shape of osquery's ExtensionResponse in plain types."""

    __slots__ = ("code", "message", "rows", "uuid")

    def __init__(self, code: int, message: str, uuid: int = 0,
                 rows: list[dict[str, str]] | None = None):
        self.code = code
        self.message = message
        self.uuid = uuid
        self.rows = rows if rows is not None else []

    @classmethod
    def from_status(cls, status: ExtensionStatus | None,
                    rows: list[dict[str, str]] | None = None) -> Reply:
        if status is None:  # C++ reads a missing status as a default one: code 0
            return cls(0, "", 0, rows)
        return cls(status.code or 0, status.message or "", status.uuid or 0, rows)

    @classmethod
    def from_response(cls, response: ExtensionResponse | None) -> Reply:
        if response is None:
            raise ProtocolError("the peer returned no ExtensionResponse")
        return cls.from_status(response.status, list(response.response or ()))

    def __repr__(self) -> str:
        return (f"Reply(code={self.code}, message={self.message!r}, uuid={self.uuid}, "
                f"rows={len(self.rows)})")


@contextlib.contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Translate Thrift and socket exceptions into osqsdk.errors, naming the operation."""
    try:
        yield
    except ExtensionError:
        raise
    except TimeoutError as exc:
        raise ExtensionTimeout(f"{what}: timed out") from exc
    except TTransportException as exc:
        if exc.type == TTransportException.TIMED_OUT or isinstance(exc.inner, socket.timeout):
            raise ExtensionTimeout(f"{what}: timed out") from exc
        raise ExtensionConnectionError(f"{what}: {exc.message or exc}") from exc
    except TApplicationException as exc:
        raise ProtocolError(f"{what}: the peer failed the call: {exc.message or exc}") from exc
    except (TProtocolException, OverflowError, TypeError) as exc:
        # thrift's C codec reports an over-limit container as TypeError("got wrong ttype").
        raise ProtocolError(f"{what}: malformed or oversized message: {exc}") from exc
    except OSError as exc:
        raise ExtensionConnectionError(f"{what}: {exc.strerror or exc}") from exc


class Client:
    """A connection to ``path``; ``manager=False`` speaks only the Extension service."""

    def __init__(self, path: str, *, timeout: float | None = 5.0, manager: bool = True) -> None:
        self.path = path
        self._sock = transport.connect(path, timeout)
        trans = TBufferedTransport(_ConnectionSocket(self._sock), rbuf_size=64 * 1024)
        proto = TBinaryProtocolAccelerated(trans, string_length_limit=MAX_STRING_BYTES,
                                           container_length_limit=_MAX_REPLY_ITEMS)
        self._thrift: Any = (ExtensionManager if manager else Extension).Client(proto)
        self._lock = threading.Lock()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def _invoke(self, method: str, *args: Any) -> Any:
        with self._lock, map_errors(f"{method} on {self.path}"):
            return getattr(self._thrift, method)(*args)

    # -- Extension service -------------------------------------------------------------
    def ping(self) -> Reply:
        return Reply.from_status(self._invoke("ping"))

    def call(self, registry: str, item: str, request: Mapping[str, str | bytes]) -> Reply:
        return Reply.from_response(self._invoke("call", registry, item, dict(request)))

    def shutdown(self) -> None:
        self._invoke("shutdown")

    # -- ExtensionManager service ------------------------------------------------------
    def extensions(self) -> dict[int, dict[str, str]]:
        result = self._invoke("extensions") or {}
        return {uuid: _info_dict(info) for uuid, info in result.items()}

    def options(self) -> dict[str, dict[str, str]]:
        result = self._invoke("options") or {}
        return {name: {"value": o.value or "", "default_value": o.default_value or "",
                       "type": o.type or ""} for name, o in result.items()}

    def register(self, name: str, version: str, sdk_version: str, min_sdk_version: str,
                 registry: Mapping[str, Mapping[str, list[dict[str, str]]]]) -> Reply:
        info = InternalExtensionInfo(name=name, version=version, sdk_version=sdk_version,
                                     min_sdk_version=min_sdk_version)
        wire = {reg: {item: list(routes) for item, routes in items.items()}
                for reg, items in registry.items()}
        return Reply.from_status(self._invoke("registerExtension", info, wire))

    def deregister(self, uuid: int) -> Reply:
        return Reply.from_status(self._invoke("deregisterExtension", uuid))

    def query(self, sql: str) -> Reply:
        return Reply.from_response(self._invoke("query", sql))

    def get_query_columns(self, sql: str) -> Reply:
        return Reply.from_response(self._invoke("getQueryColumns", sql))


def _info_dict(info: InternalExtensionInfo) -> dict[str, str]:
    return {"name": info.name or "", "version": info.version or "",
            "sdk_version": info.sdk_version or "", "min_sdk_version": info.min_sdk_version or ""}
