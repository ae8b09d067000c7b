"""Run osquery-python (3.x) plugin classes unchanged under osqsdk's server.

They keep their code and gain osqsdk's behaviour: a threaded server, values coerced as
osqsdk documents (``True`` → ``1``, ``None`` → NULL instead of ``"True"``/``"None"``),
logger ``init``/``features`` answered so that osqueryd does not send status logs the
plugin would reject, and errors in plugin code reported instead of killing the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from osqsdk._osquery.columns import Column, ColumnType
from osqsdk.errors import PluginDefinitionError
from osqsdk.extension._context import QueryContext
from osqsdk.extension._plugin import Plugin, Response
from osqsdk.extension._table import TablePlugin

__all__ = ["adapt", "osquery_python_registrations"]


def _osquery() -> Any:
    try:
        import osquery  # osquery-python
    except ImportError:
        return None
    return osquery


@contextlib.contextmanager
def osquery_python_registrations() -> Iterator[list[Any]]:
    """Collect the plugins osquery-python's ``@register_plugin`` registers inside the block.

    ``register_plugin`` returns None, so a module's attributes do not hold the plugins; its
    singleton ExtensionManager keeps them in class-level dicts (extension_manager.py), and
    silently ignores a name registered twice. The block runs with empty dicts, so that every
    load sees its own registrations, and the previous ones are put back afterwards.
    """
    found: list[Any] = []
    osquery = _osquery()
    if osquery is None:
        yield found
        return
    manager_cls = type(osquery.ExtensionManager())
    saved = manager_cls._plugins, manager_cls._registry
    manager_cls._plugins, manager_cls._registry = {}, {}
    try:
        yield found
        found.extend(p for items in manager_cls._plugins.values() for p in items.values())
    finally:
        manager_cls._plugins, manager_cls._registry = saved


def adapt(obj: Any) -> Plugin:
    """Wrap an osquery-python plugin (class or instance) as an osqsdk Plugin."""
    osquery = _osquery()
    if osquery is None or not (isinstance(obj, osquery.BasePlugin)
                               or (isinstance(obj, type) and issubclass(obj, osquery.BasePlugin))):
        raise PluginDefinitionError(f"{obj!r} is neither an osqsdk nor an osquery-python plugin")
    if isinstance(obj, type):
        obj = obj()  # osquery-python plugins are singletons
    if isinstance(obj, osquery.TablePlugin):
        return _table(obj)
    if isinstance(obj, osquery.LoggerPlugin):
        return _CompatLogger(obj)
    if isinstance(obj, osquery.ConfigPlugin):
        return _CompatConfig(obj)
    return _CompatGeneric(obj)


def _table(obj: Any) -> TablePlugin:
    columns = []
    for column in obj.columns():
        try:
            columns.append(Column(column.name, ColumnType.parse(column.type)))
        except (AttributeError, ValueError) as exc:
            raise PluginDefinitionError(f"osquery-python table {obj.name()!r}: {exc}") from None

    def generate(context: QueryContext) -> Any:
        return obj.generate(context.raw)  # osquery-python passes the parsed context dict

    # osqueryd ignores keys that are not columns; osquery-python plugins rely on that.
    return TablePlugin(obj.name(), columns, generate, strict_keys=False)


def _status(status: Any) -> Response:
    if status is None:
        return Response.ok()
    return Response(int(getattr(status, "code", 0) or 0), getattr(status, "message", "") or "", [])


class _CompatPlugin(Plugin):
    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.name = obj.name()
        self.registry = obj.registry_name()

    def routes(self) -> list[dict[str, str]]:
        return list(self.obj.routes())


class _CompatLogger(_CompatPlugin):
    def call(self, request: Mapping[str, str]) -> Response:
        if "string" in request:
            return _status(self.obj.log_string(request["string"]))
        if "snapshot" in request:
            return _status(self.obj.log_snapshot(request["snapshot"]))
        if "health" in request:
            return _status(self.obj.log_health(request["health"]))
        if request.get("action") == "features":
            # osquery-python has no status-log hook; answering "unknown action" (code 1)
            # reads as "send status logs" (docs/protocol.md §4.1), which it then rejects.
            return Response(0, "OK", [])
        if "init" in request or "status" in request or "event" in request:
            return Response.ok()
        return Response.failed(f"logger {self.name!r}: unknown request {sorted(request)}")


class _CompatConfig(_CompatPlugin):
    def call(self, request: Mapping[str, str]) -> Response:
        action = request.get("action")
        if action == "genConfig":
            return Response.ok([dict(row) for row in self.obj.content()])
        if action == "genPack":
            return Response.failed(f"config {self.name!r}: osquery-python config plugins "
                                   "cannot serve packs by name")
        return Response.failed(f"config {self.name!r}: unknown action {action!r}")


class _CompatGeneric(_CompatPlugin):
    def call(self, request: Mapping[str, str]) -> Response:
        reply = self.obj.call(dict(request))
        status = _status(getattr(reply, "status", None))
        return Response(status.code, status.message, list(getattr(reply, "response", None) or []))
