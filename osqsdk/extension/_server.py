"""ExtensionServer: wait for osqueryd, register, serve, watch, stop (docs/protocol.md §2)."""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from osqsdk.errors import (
    ExtensionError,
    PluginDefinitionError,
    RegistrationError,
    ValueCoercionError,
)
from osqsdk.extension._flags import DEFAULT_SOCKET, MIN_INTERVAL, ExtensionFlags, parse_flags
from osqsdk.extension._plugin import REGISTRIES, Plugin, Response
from osqsdk.extension._wire import transport
from osqsdk.extension._wire.client import Client
from osqsdk.extension._wire.server import ThriftServer
from osqsdk.extension._wire.types import ExtensionResponse, ExtensionStatus

__all__ = ["OSQUERY_SDK_VERSION", "ExitCode", "ExtensionServer", "run", "serve"]

log = logging.getLogger("osqsdk.server")

# The osquery SDK version sent at registration. osqueryd refuses sdk_version < 1.7.7
# (versionAtLeast in extensions.cpp); this is the protocol revision osqsdk implements.
OSQUERY_SDK_VERSION = "5.23.0"
# Registration attaches tables inside the RPC and can take seconds on a busy osqueryd
# (fleet #3836: a 1 s client timeout expired).
_REGISTER_TIMEOUT = 30.0
_WATCH_TIMEOUT = 30.0
_DEREGISTER_TIMEOUT = 5.0


class ExitCode(enum.IntEnum):
    """Exit codes of an osqsdk extension process."""

    OK = 0            #: stopped by shutdown(), SIGTERM/SIGINT, or osqueryd went away
    DROPPED = 1       #: osqueryd no longer lists this extension; osqueryd respawns autoloaded ones
    USAGE = 64        #: bad flags, socket path or plugin definitions
    UNAVAILABLE = 69  #: osqueryd's socket did not answer within --timeout
    REFUSED = 78      #: osqueryd refused the registration (its message is logged)


class ExtensionServer:
    """Serve ``plugins`` to the osqueryd listening on ``socket_path``.

    ``run()`` blocks until osqueryd asks for shutdown, goes away, or drops this extension,
    and returns the process exit code (``ExitCode``). ``start()``/``stop()`` are the
    non-blocking halves, for tests and embedding.
    """

    def __init__(
        self,
        name: str,
        plugins: Iterable[Plugin],
        *,
        version: str = "0.0.0",
        socket_path: str = DEFAULT_SOCKET,
        timeout: float = 3.0,
        interval: float = 3.0,
        max_workers: int = 32,
        sdk_version: str = OSQUERY_SDK_VERSION,
        min_sdk_version: str = "0.0.0",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise PluginDefinitionError("an extension needs a non-empty name")
        transport.check_manager_path(socket_path)
        self.name = name
        self.version = version
        self.sdk_version = sdk_version
        self.min_sdk_version = min_sdk_version
        self.manager_path = socket_path
        self.timeout = timeout
        self.interval = max(interval, MIN_INTERVAL)
        self.max_workers = max_workers
        self.plugins: dict[str, dict[str, Plugin]] = {}
        for plugin in plugins:
            self._add(plugin)
        self.uuid: int | None = None
        self.socket_path: str | None = None
        self._server: ThriftServer | None = None
        self._stop = threading.Event()
        self._exit_code = ExitCode.OK
        self._deregister_on_stop = True
        self._ok_reply: ExtensionResponse | None = None

    def _add(self, plugin: Plugin) -> None:
        if not isinstance(plugin, Plugin):
            from osqsdk.extension._compat import adapt  # osquery-python plugin objects

            plugin = adapt(plugin)
        if plugin.registry not in REGISTRIES:
            raise PluginDefinitionError(
                f"plugin {plugin.name!r}: unknown registry {plugin.registry!r}; osqueryd knows "
                + ", ".join(sorted(REGISTRIES)))
        items = self.plugins.setdefault(plugin.registry, {})
        if plugin.name in items:
            raise PluginDefinitionError(
                f"two {plugin.registry} plugins are named {plugin.name!r}")
        items[plugin.name] = plugin

    def registry(self) -> dict[str, dict[str, list[dict[str, str]]]]:
        """The ExtensionRegistry broadcast at registration (docs/protocol.md §2.4)."""
        return {reg: {name: p.routes() for name, p in items.items()}
                for reg, items in self.plugins.items()}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Wait for osqueryd, register and start serving. Raises ExtensionError."""
        self._wait_for_manager()
        with Client(self.manager_path, timeout=_REGISTER_TIMEOUT) as client:
            reply = client.register(self.name, self.version, self.sdk_version,
                                    self.min_sdk_version, self.registry())
        if reply.code != 0:
            raise RegistrationError(reply.message, reply.code)
        self.uuid = reply.uuid
        self.socket_path = f"{self.manager_path}.{self.uuid}"
        self._server = ThriftServer(self.socket_path, self, max_workers=self.max_workers)
        try:
            self._server.start()
        except ExtensionError:
            self._deregister()
            self._deregister_on_stop = False
            raise
        self._ok_reply = ExtensionResponse(
            status=ExtensionStatus(code=0, message="OK", uuid=self.uuid), response=[])
        self._server.constant(self._ok_reply)
        log.info("extension %r registered as uuid %d, serving %s", self.name, self.uuid,
                 self.socket_path)

    def _wait_for_manager(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            error: Exception | None = None
            if transport.socket_alive(self.manager_path):
                try:
                    with Client(self.manager_path, timeout=max(self.timeout, 1.0)) as client:
                        if client.ping().code != 1:
                            return
                except ExtensionError as exc:
                    error = exc
            if time.monotonic() >= deadline:
                directory = os.path.dirname(self.manager_path) or "."
                if not os.path.isdir(directory):
                    why = (f": directory {directory} does not exist (is osqueryd running with "
                           "this --extensions_socket?)")
                else:
                    why = f": {error}" if error else ": no socket there"
                raise ExtensionError(f"osqueryd's extensions socket {self.manager_path} is not "
                                     f"available after {self.timeout:g}s{why}")
            if self._stop.wait(0.2):
                raise ExtensionError("stopped while waiting for osqueryd")

    def run(self) -> int:
        """Start, then watch osqueryd until told to stop. Returns an ``ExitCode``."""
        # Handlers go in before registering: a SIGTERM that arrives between register() and
        # serving must still deregister and remove the socket, not kill the process.
        restore = self._install_signal_handlers()
        try:
            try:
                self.start()
            except RegistrationError as exc:
                log.error("extension %r: %s", self.name, exc)
                return ExitCode.REFUSED
            except ExtensionError as exc:
                if self._stop.is_set():
                    return self._exit_code
                log.error("extension %r: %s", self.name, exc)
                return ExitCode.UNAVAILABLE
            self._watch()
        finally:
            restore()
            self._cleanup()
        return self._exit_code

    def stop(self, code: int = ExitCode.OK) -> None:
        """Ask ``run()`` to return ``code``; safe from any thread, any number of times."""
        if not self._stop.is_set():
            self._exit_code = ExitCode(code)
            self._stop.set()

    def close(self) -> None:
        """Stop serving now (for ``start()`` without ``run()``)."""
        self.stop()
        self._cleanup()

    def _watch(self) -> None:
        # The C++ SDK's watcher (docs/protocol.md §2.6): manager socket gone or RPC failing means
        # osqueryd stopped (exit 0); our uuid missing from extensions() means osqueryd
        # dropped us after a failed health check (exit 1, so that it respawns us).
        while not self._stop.wait(self.interval):
            if not transport.socket_alive(self.manager_path):
                log.info("osquery core has gone away (%s is gone); stopping", self.manager_path)
                self._deregister_on_stop = False
                self.stop(ExitCode.OK)
                return
            try:
                with Client(self.manager_path, timeout=_WATCH_TIMEOUT) as client:
                    listed = client.extensions()
            except ExtensionError as exc:
                log.info("osquery core has gone away (%s); stopping", exc)
                self._deregister_on_stop = False
                self.stop(ExitCode.OK)
                return
            if self.uuid not in listed:
                log.error("osqueryd no longer lists extension %r (uuid %s); exiting so it can "
                          "be respawned", self.name, self.uuid)
                self._deregister_on_stop = False
                self.stop(ExitCode.DROPPED)
                return

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def stopping(signum: int) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            self.stop(ExitCode.OK)

        def handle(signum: int, frame: object) -> None:
            # On another thread: the main thread may hold the stop Event's lock (or the
            # logging lock) right where the signal interrupts it, and would deadlock.
            threading.Thread(target=stopping, args=(signum,), daemon=True).start()

        for sig in previous:
            signal.signal(sig, handle)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _cleanup(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._deregister_on_stop:
            self._deregister()
        self._deregister_on_stop = False

    def _deregister(self) -> None:
        if self.uuid is None or not transport.socket_alive(self.manager_path):
            return
        try:
            # osqueryd's watcher allows an extension alarm_timeout - 4 (11) seconds after
            # SIGTERM before SIGKILL; a busy osqueryd still gets a few to answer.
            with Client(self.manager_path, timeout=_DEREGISTER_TIMEOUT) as client:
                client.deregister(self.uuid)
        except ExtensionError as exc:
            log.debug("deregistering uuid %s failed: %s", self.uuid, exc)

    # -- the Extension service (called by the Thrift server's workers) -----------------
    def ping(self) -> ExtensionStatus:
        return ExtensionStatus(code=0, message="pong", uuid=self.uuid or 0)

    def shutdown(self) -> None:
        # osqueryd sends shutdown() to every extension when it stops (docs/protocol.md §2.7).
        log.info("osqueryd requested shutdown")
        self._deregister_on_stop = False
        self.stop(ExitCode.OK)

    def call(self, registry: str, item: str, request: Mapping[str, bytes]) -> ExtensionResponse:
        response = self.dispatch(registry, item, request)
        if (self._ok_reply is not None and response.code == 0 and not response.rows
                and response.message == "OK"):
            return self._ok_reply  # most logger calls' answer, built at start()
        return ExtensionResponse(
            status=ExtensionStatus(code=response.code, message=response.message,
                                   uuid=self.uuid or 0),
            response=response.rows)

    def dispatch(self, registry: str, item: str, request: Mapping[str, Any]) -> Response:
        """Route one call to its plugin; never raises."""
        items = self.plugins.get(registry)
        if items is None:
            return Response.failed(f"unknown registry {registry!r}; extension {self.name!r} "
                                   f"serves: {', '.join(sorted(self.plugins)) or 'nothing'}")
        plugin = items.get(item)
        if plugin is None:
            return Response.failed(f"unknown {registry} plugin {item!r}; extension {self.name!r} "
                                   f"serves: {', '.join(sorted(items))}")
        # Request values travel as bytes: undecodable bytes become surrogate escapes
        # (PEP 383), as os.listdir() does, so they round-trip to the original bytes.
        req = {k: v.decode("utf-8", "surrogateescape") if v.__class__ is bytes else v
               for k, v in request.items()}
        try:
            return plugin.call(req)
        except ValueCoercionError as exc:
            log.error("%s", exc)
            return Response.failed(str(exc))
        except Exception as exc:
            log.exception("%s plugin %r failed", registry, item)
            return Response.failed(
                f"{registry} plugin {item!r} failed: {type(exc).__name__}: {exc}")
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt or GeneratorExit raised by plugin code on a
            # worker thread: a failed call like any other; letting it through would end the
            # worker, and after a pool's worth of them nothing would answer osqueryd.
            log.error("%s plugin %r raised %s; answered as a failure", registry, item,
                      type(exc).__name__)
            return Response.failed(f"{registry} plugin {item!r} failed: {type(exc).__name__}")


def run(
    name: str,
    plugins: Iterable[Plugin],
    *,
    version: str = "0.0.0",
    argv: Sequence[str] | None = None,
    **options: Any,
) -> NoReturn:
    """Parse osqueryd's launch flags, serve ``plugins`` and exit with the ``ExitCode``.

    This is the whole ``main`` of an extension file::

        if __name__ == "__main__":
            osqsdk.run("acme", [acme_users], version="1.0.0")

    ``--spec`` prints the tables' schema JSON (osquery's published format) and exits.
    """
    sys.exit(serve(name, plugins, parse_flags(argv), version=version, **options))


def serve(name: str, plugins: Iterable[Plugin], flags: ExtensionFlags, *,
          version: str = "0.0.0", **options: Any) -> int:
    """Serve ``plugins`` as osqueryd's launch ``flags`` say; return the ``ExitCode``.

    The one way an extension is built and run from flags: ``osqsdk.run`` and
    ``osqsdk extension run FILE`` both come here.
    """
    _configure_logging(flags.verbose, name)
    try:
        server = ExtensionServer(name, list(plugins), version=version, socket_path=flags.socket,
                                 timeout=flags.timeout, interval=flags.interval, **options)
    except PluginDefinitionError as exc:
        log.error("%s", exc)
        return ExitCode.USAGE
    if flags.spec:
        json.dump(specs(server), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return ExitCode.OK
    if flags.unknown:
        log.debug("ignoring unknown flags: %s", " ".join(flags.unknown))
    return server.run()


def specs(server: ExtensionServer) -> list[dict[str, Any]]:
    """Schema JSON (osquery's published format) of every table the server serves."""
    return [p.spec() for p in server.plugins.get("table", {}).values() if hasattr(p, "spec")]


def _configure_logging(verbose: bool, name: str) -> None:
    root = logging.getLogger("osqsdk")
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s osqsdk[{name}] %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
