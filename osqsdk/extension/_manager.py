"""ManagerDouble: osqueryd's extension manager, as far as an extension can tell.

It reproduces what osqueryd does on its side of the socket (docs/protocol.md §1.3, §2.3-§2.7):
the replies and messages of every ExtensionManager method, registration rules in osqueryd's
order, uuid allocation, a connection per call with a liveness ping first, health checks that
drop an extension at its first failure, ``shutdown()`` to every extension on stop, and
removal of stale ``<socket>.*`` files. What it cannot do is run SQL: ``query`` and
``getQueryColumns`` go to the ``query`` callable you give it.
"""

from __future__ import annotations

import glob
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from osqsdk.errors import ExtensionError
from osqsdk.extension._launch import ExtensionProcess, launched_at
from osqsdk.extension._plugin import REGISTRIES, Response
from osqsdk.extension._wire import transport
from osqsdk.extension._wire.client import Client
from osqsdk.extension._wire.server import ThriftServer
from osqsdk.extension._wire.types import (
    ExtensionResponse,
    ExtensionStatus,
    InternalExtensionInfo,
    InternalOptionInfo,
)

__all__ = ["ManagerDouble", "RegisteredExtension"]

log = logging.getLogger("osqsdk.testing.manager")

# Plugins compiled into osqueryd 5.x on Linux, by registry: registering an item with one of
# these names fails as a conflict. Core tables come from the schema (see ManagerDouble).
CORE_PLUGINS: dict[str, frozenset[str]] = {
    "config": frozenset({"filesystem", "tls", "update"}),
    "database": frozenset({"ephemeral", "rocksdb"}),
    "distributed": frozenset({"tls"}),
    "enroll": frozenset({"tls"}),
    "logger": frozenset({"aws_firehose", "aws_kinesis", "filesystem", "kafka_producer",
                         "stdout", "syslog", "tls"}),
    "numeric_monitoring": frozenset({"filesystem"}),
    "sql": frozenset({"sql"}),
}

# osqueryd's options() entries the double reports unless told otherwise: (value, type).
DEFAULT_OPTIONS: dict[str, tuple[str, str]] = {
    "config_plugin": ("filesystem", "string"),
    "logger_plugin": ("filesystem", "string"),
    "distributed_plugin": ("tls", "string"),
    "disable_distributed": ("true", "bool"),
    "extensions_timeout": ("3", "string"),
    "extensions_interval": ("3", "string"),
    "extensions_default_index": ("true", "bool"),
    "logger_event_type": ("true", "bool"),
    "pack_delimiter": ("_", "string"),
    "host_identifier": ("hostname", "string"),
    "thrift_timeout": ("300", "uint32"),
}

# osqueryd probes an extension with a 10 s ping before every call (extensionPathActive).
_PROBE_TIMEOUT = 10.0


def _version_at_least(minimum: str, version: str) -> bool:
    # osquery's versionAtLeast: dot-separated numeric comparison, string fallback.
    if version in ("", "0.0.0"):
        return True
    try:
        return [int(x) for x in version.split(".")] >= [int(x) for x in minimum.split(".")]
    except ValueError:
        return version >= minimum


@dataclass
class RegisteredExtension:
    """One extension as the double knows it."""

    uuid: int
    name: str
    version: str
    sdk_version: str
    min_sdk_version: str
    registry: dict[str, dict[str, list[dict[str, str]]]]
    socket_path: str
    registered_at: float = field(default_factory=time.monotonic)
    checked: bool = False


class ExtensionExited(RuntimeError):
    """Every extension launched for a manager exited before the awaited name registered."""

    def __init__(self, name: str, processes: list[ExtensionProcess]) -> None:
        self.name = name
        self.processes = processes
        super().__init__(f"extension {name!r} will not register: "
                         + "; ".join(p.describe_exit() for p in processes))


class ManagerDouble:
    """Serve osqueryd's ExtensionManager on ``socket_path`` (a short temp path by default).

    ``health_interval`` is ``--extensions_interval`` (``None``: no health checks);
    ``timeout`` is ``--extensions_timeout``. ``core_tables`` are table names osqueryd
    already has (registering one conflicts); by default the bundled schema's tables.
    ``query(sql) -> (code, message, rows)`` answers query(); ``getQueryColumns`` gets
    ``columns(sql)`` likewise. ``core_call(registry, item, request) -> Response`` answers
    calls to core plugins. ``on_register``/``on_remove`` see every extension that
    registers or goes away (osqueryd attaches and detaches its tables at those points).
    """

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        health_interval: float | None = 0.5,
        timeout: float = 3.0,
        core_tables: Iterable[str] | None = None,
        options: Mapping[str, str] | None = None,
        query: Callable[[str], tuple[int, str, list[dict[str, str]]]] | None = None,
        columns: Callable[[str], tuple[int, str, list[dict[str, str]]]] | None = None,
        core_call: Callable[[str, str, Mapping[str, str]], Response] | None = None,
        on_register: Callable[[RegisteredExtension], None] | None = None,
        on_remove: Callable[[RegisteredExtension], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self._tmpdir: str | None = None
        if socket_path is None:
            # A short path: sun_path is 104-108 bytes and pytest's tmp_path can be long.
            self._tmpdir = tempfile.mkdtemp(prefix="osq-", dir="/tmp")
            socket_path = os.path.join(self._tmpdir, "osquery.em")
        self.socket_path = socket_path
        self.health_interval = health_interval
        self.timeout = timeout
        self._core: dict[str, frozenset[str]] = dict(CORE_PLUGINS)
        self._core["table"] = frozenset(core_tables if core_tables is not None
                                        else _schema_tables())
        self._options = {k: v for k, v in DEFAULT_OPTIONS.items()}
        for key, value in (options or {}).items():
            self._options[key] = (str(value), self._options.get(key, ("", "string"))[1])
        self._query = query
        self._columns = columns
        self._core_call = core_call
        self._on_register = on_register
        self._on_remove = on_remove
        self._random = random.Random(seed)
        self.extensions_by_uuid: dict[int, RegisteredExtension] = {}
        self.events: list[tuple[str, Any]] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server = ThriftServer(socket_path, self, service="ExtensionManager",
                                    max_workers=None, idle_timeout=None)
        self._stop = threading.Event()
        self._health: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ManagerDouble:
        for stale in glob.glob(glob.escape(self.socket_path) + ".*"):
            os.unlink(stale)  # osqueryd removes old extension sockets when it starts
        self._server.start()
        if self.health_interval is not None:
            self._health = threading.Thread(target=self._health_loop, daemon=True,
                                            name="osqsdk-manager-health")
            self._health.start()
        return self

    def stop(self, *, notify: bool = True) -> None:
        """Stop like osqueryd: shutdown() to every extension, then remove the sockets."""
        self._stop.set()
        if notify:
            for ext in list(self.extensions_by_uuid.values()):
                try:
                    with Client(ext.socket_path, timeout=2.0, manager=False) as client:
                        client.shutdown()
                except ExtensionError:
                    pass
        self._server.stop()
        if self._health is not None:
            self._health.join(5)
        for stale in glob.glob(glob.escape(self.socket_path) + ".*"):
            try:
                os.unlink(stale)
            except OSError:
                pass
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> ManagerDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------
    def wait_for(self, name: str, timeout: float = 10.0) -> RegisteredExtension:
        """Block until an extension called ``name`` is registered and serving.

        Raises ``ExtensionExited`` as soon as every extension process launched for this
        manager (``launch_extension``) has exited without ``name`` registering, naming
        each one's exit code and last stderr lines; ``TimeoutError`` after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for ext in self.extensions_by_uuid.values():
                    if ext.name == name and transport.socket_alive(ext.socket_path):
                        return ext
                children = launched_at(self.socket_path)
                if children and all(child.poll() is not None for child in children):
                    raise ExtensionExited(name, children)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    dead = [c.describe_exit() for c in children if c.returncode is not None]
                    raise TimeoutError(f"extension {name!r} did not register within {timeout}s"
                                       + "".join(f"; {d}" for d in dead))
                self._changed.wait(min(remaining, 0.05))

    def wait_gone(self, name: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while any(e.name == name for e in self.extensions_by_uuid.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"extension {name!r} still registered after {timeout}s")
                self._changed.wait(min(remaining, 0.05))

    def remove(self, uuid: int) -> None:
        """Drop an extension as a failed health check does (it is not told)."""
        with self._changed:
            ext = self.extensions_by_uuid.pop(uuid, None)
            if ext is not None:
                self.events.append(("removed", ext.name))
                self._changed.notify_all()
        if ext is not None and self._on_remove is not None:
            self._on_remove(ext)

    def call_extension(self, name: str, registry: str, item: str,
                       request: Mapping[str, str]) -> Response:
        """Call an extension's plugin the way osqueryd does: ping probe, then the call."""
        for ext in list(self.extensions_by_uuid.values()):
            if ext.name == name:
                return self._forward(ext, registry, item, request)
        raise LookupError(f"no extension named {name!r} is registered")

    # -- ExtensionManager service ------------------------------------------------------
    def ping(self) -> ExtensionStatus:
        return ExtensionStatus(code=0, message="pong", uuid=0)

    def shutdown(self) -> None:
        return None  # a no-op in osqueryd too

    def extensions(self) -> dict[int, InternalExtensionInfo]:
        with self._lock:
            return {uuid: InternalExtensionInfo(name=e.name, version=e.version,
                                                sdk_version=e.sdk_version,
                                                min_sdk_version=e.min_sdk_version)
                    for uuid, e in self.extensions_by_uuid.items()}

    def options(self) -> dict[str, InternalOptionInfo]:
        return {name: InternalOptionInfo(value=value, default_value=value, type=type_)
                for name, (value, type_) in self._options.items()}

    def registerExtension(self, info: InternalExtensionInfo,
                          registry: dict[str, dict[str, list[dict[str, str]]]]
                          ) -> ExtensionStatus:
        with self._changed:
            status = self._register(info, registry or {})
            self.events.append(("register", (info.name, status.code, status.message)))
            self._changed.notify_all()
            return status

    def _register(self, info: InternalExtensionInfo,
                  registry: dict[str, dict[str, list[dict[str, str]]]]) -> ExtensionStatus:
        def failed(message: str) -> ExtensionStatus:
            return ExtensionStatus(code=1, message=message, uuid=0)

        name = info.name or ""
        if any(e.name == name for e in self.extensions_by_uuid.values()):
            return failed("Duplicate extension registered")
        if not _version_at_least("1.7.7", info.sdk_version or ""):
            return failed("Incompatible extension SDK version")
        while True:
            uuid = self._random.randint(1, 65535)
            if uuid not in self.extensions_by_uuid:
                break
        # addBroadcast walks registries in std::map (sorted) order.
        for reg in sorted(registry):
            if reg not in REGISTRIES:
                return failed(f"Failed adding registry: Unknown registry: {reg}")
            for item, routes in registry[reg].items():
                if reg == "table" and not routes:
                    return failed("Failed adding registry: Invalid route info")
                if item in self._core.get(reg, ()) or self._owner(reg, item) is not None:
                    return failed(f"Failed adding registry: Registry item {item} conflicts "
                                  "with another item of the same name.")
                if reg == "table" and any("id" not in route for route in routes):
                    return failed("Failed adding registry: Invalid route info")
        ext = RegisteredExtension(
            uuid, name, info.version or "", info.sdk_version or "", info.min_sdk_version or "",
            {reg: {item: [dict(r) for r in routes] for item, routes in items.items()}
             for reg, items in registry.items()},
            f"{self.socket_path}.{uuid}")
        if self._on_register is not None:
            try:
                self._on_register(ext)
            except Exception as exc:  # e.g. a table the engine cannot attach
                return failed(f"Failed adding registry: {exc}")
        self.extensions_by_uuid[uuid] = ext
        return ExtensionStatus(code=0, message="OK", uuid=uuid)

    def deregisterExtension(self, uuid: int) -> ExtensionStatus:
        with self._changed:
            if uuid not in self.extensions_by_uuid:
                return ExtensionStatus(code=1, message="No extension UUID found", uuid=0)
            ext = self.extensions_by_uuid.pop(uuid)
            self.events.append(("deregister", ext.name))
            self._changed.notify_all()
        if self._on_remove is not None:
            self._on_remove(ext)
        return ExtensionStatus(code=0, message="OK", uuid=0)

    def call(self, registry: str, item: str, request: Mapping[str, bytes]) -> ExtensionResponse:
        req = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
               for k, v in request.items()}
        if registry not in REGISTRIES:
            return _response(Response.failed(f"Unknown registry requested: {registry}"))
        if item == "":
            key = {"config": "config_plugin", "logger": "logger_plugin",
                   "distributed": "distributed_plugin"}.get(registry)
            item = self._options[key][0] if key else ""
        owner = self._owner(registry, item)
        if owner is not None:
            return _response(self._forward(owner, registry, item, req))
        if item in self._core.get(registry, ()) and self._core_call is not None:
            return _response(self._core_call(registry, item, req))
        return _response(Response.failed(f"Cannot call registry item: {item}"))

    def query(self, sql: str) -> ExtensionResponse:
        if self._query is None:
            return _response(Response.failed("no such table: the manager double runs no SQL"))
        code, message, rows = self._query(sql)
        return _response(Response(code, message, rows if code == 0 else []))

    def getQueryColumns(self, sql: str) -> ExtensionResponse:
        if self._columns is None:
            return _response(Response.failed("no such table: the manager double runs no SQL"))
        code, message, rows = self._columns(sql)
        return _response(Response(code, message, rows if code == 0 else []))

    # -- internals ---------------------------------------------------------------------
    def _owner(self, registry: str, item: str) -> RegisteredExtension | None:
        for ext in self.extensions_by_uuid.values():
            if item in ext.registry.get(registry, {}):
                return ext
        return None

    def _forward(self, ext: RegisteredExtension, registry: str, item: str,
                 request: Mapping[str, str]) -> Response:
        if not self._probe(ext.socket_path):
            return Response.failed(f"Extension socket not available: {ext.socket_path}")
        try:
            with Client(ext.socket_path, timeout=300.0, manager=False) as client:
                reply = client.call(registry, item, request)
        except ExtensionError as exc:
            return Response.failed(f"Extension call failed: {exc}")
        return Response(reply.code, reply.message, reply.rows if reply.code == 0 else [])

    @staticmethod
    def _probe(path: str) -> bool:
        if not transport.socket_alive(path):
            return False
        try:
            with Client(path, timeout=_PROBE_TIMEOUT, manager=False) as client:
                return client.ping().code != 1  # only EXT_FAILED counts as down
        except ExtensionError:
            return False

    def _health_loop(self) -> None:
        interval = max(self.health_interval or 0.2, 0.2)
        while not self._stop.wait(interval):
            for ext in list(self.extensions_by_uuid.values()):
                if not ext.checked:
                    # The first check waits up to --extensions_timeout for the socket.
                    deadline = ext.registered_at + self.timeout
                    if not transport.socket_alive(ext.socket_path) and time.monotonic() < deadline:
                        continue
                    ext.checked = True
                if not self._probe(ext.socket_path):
                    log.info("extension %s (uuid %d) failed its health check", ext.name, ext.uuid)
                    self.remove(ext.uuid)


def _response(response: Response) -> ExtensionResponse:
    return ExtensionResponse(status=ExtensionStatus(code=response.code, message=response.message,
                                                    uuid=0),
                             response=list(response.rows))


def _schema_tables() -> frozenset[str]:
    try:
        from osqsdk.schema import default_schema
    except ImportError:
        return frozenset({"osquery_info", "processes", "time", "users"})
    return frozenset(default_schema().tables)
