"""Where the runner's tables get rows: in-process plugins, running extensions, fixtures."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from osqsdk._osquery.columns import ColumnOptions, ColumnType
from osqsdk.extension._table import TablePlugin, coerce_value
from osqsdk.runner._remote import RemoteCallError, call_extension
from osqsdk.runner._vtable import ColumnInfo, TableError

if TYPE_CHECKING:
    from osqsdk.extension._wire.client import Reply

__all__ = ["FixtureSource", "PluginSource", "RemoteSource", "columns_from_routes"]


def columns_from_routes(routes: Sequence[Mapping[str, str]], *, extension: bool,
                        default_index: bool = True) -> tuple[list[ColumnInfo], list[str]]:
    """Columns and table aliases from a table's routes, as osqueryd's xCreate reads them."""
    columns: list[ColumnInfo] = []
    aliases: list[str] = []
    for route in routes:
        kind = route.get("id")
        if kind == "column" and "name" in route and "type" in route:
            try:
                options = ColumnOptions(int(route.get("op", "0") or 0))
            except ValueError:
                options = ColumnOptions.DEFAULT
            # --extensions_default_index: extension columns without options are INDEX.
            if extension and default_index and options == ColumnOptions.DEFAULT:
                options = ColumnOptions.INDEX
            try:
                type_ = ColumnType.parse(route["type"])
            except ValueError:
                type_ = ColumnType.TEXT
            columns.append(ColumnInfo(route["name"], type_, options))
        elif kind == "alias" and route.get("alias"):
            aliases.append(route["alias"])
    for route in routes:
        if route.get("id") == "columnAlias" and route.get("name") and route.get("target"):
            target = next((i for i, c in enumerate(columns) if c.name == route["target"]), None)
            if target is not None:
                columns.append(ColumnInfo(route["name"], columns[target].type,
                                          ColumnOptions.HIDDEN, alias_of=target))
    return columns, aliases


class PluginSource:
    """A TablePlugin in this process, called through the same request/response as over
    Thrift (so its values are coerced exactly as osqueryd would receive them)."""

    def __init__(self, plugin: TablePlugin, *, default_index: bool = True) -> None:
        self.plugin = plugin
        self.name = plugin.name
        self.columns, self.aliases = columns_from_routes(plugin.routes(), extension=True,
                                                         default_index=default_index)
        self.writable = True  # osqueryd wires xUpdate for every extension table

    def generate(self, context: str | None) -> list[dict[str, Any]]:
        request = {"action": "generate"}
        if context is not None:
            request["context"] = context
        try:
            response = self.plugin.call(request)
        except Exception as exc:  # what the extension server would answer
            raise TableError(
                f"table plugin {self.name!r} failed: {type(exc).__name__}: {exc}") from exc
        if response.code != 0:
            raise TableError(response.message)
        return response.rows

    def write(self, request: dict[str, str]) -> list[dict[str, str]]:
        return self.plugin.call(request).rows


class RemoteSource:
    """A table served by a running extension, called over its Thrift socket the way
    osqueryd calls it: a ping probe, then the call, each on a new connection."""

    def __init__(self, socket_path: str, name: str, routes: Sequence[Mapping[str, str]], *,
                 default_index: bool = True, timeout: float = 300.0) -> None:
        self.socket_path = socket_path
        self.name = name
        self.columns, self.aliases = columns_from_routes(routes, extension=True,
                                                         default_index=default_index)
        self.writable = True
        self.timeout = timeout

    def _call(self, request: dict[str, str]) -> Reply:
        try:
            return call_extension(self.socket_path, "table", self.name, request,
                                  timeout=self.timeout)
        except RemoteCallError as exc:
            raise TableError(str(exc)) from exc

    def generate(self, context: str | None) -> list[dict[str, Any]]:
        request = {"action": "generate"}
        if context is not None:
            request["context"] = context
        reply = self._call(request)
        if reply.code != 0:
            raise TableError(reply.message)
        return reply.rows

    def write(self, request: dict[str, str]) -> list[dict[str, str]]:
        reply = self._call(request)
        return reply.rows if reply.code == 0 else []


class FixtureSource:
    """A core osquery table answering from fixture rows (per tick)."""

    def __init__(self, table: Any, rows: Callable[[], list[dict[str, Any]] | None],
                 *, strict: bool = False) -> None:
        self.name = table.name
        self.table = table
        self._rows = rows
        self.strict = strict
        self.writable = False
        columns: list[ColumnInfo] = []
        for column in table.columns:
            options = ColumnOptions.DEFAULT
            for flag, bit in ((column.index, ColumnOptions.INDEX),
                              (column.required, ColumnOptions.REQUIRED),
                              (column.additional, ColumnOptions.ADDITIONAL),
                              (column.optimized, ColumnOptions.OPTIMIZED),
                              (column.hidden, ColumnOptions.HIDDEN)):
                if flag:
                    options |= bit
            columns.append(ColumnInfo(column.name, column.type, options))
        for target, column in enumerate(table.columns):
            for alias in column.aliases:
                columns.append(ColumnInfo(alias, column.type, ColumnOptions.HIDDEN,
                                          alias_of=target))
        self.columns = columns
        self.aliases = list(table.aliases)
        self._types = {c.name: c.type for c in columns if c.alias_of is None}

    def generate(self, context: str | None) -> list[dict[str, Any]]:
        rows = self._rows()
        if rows is None:
            if self.strict:
                raise TableError(f"no fixture for table {self.name} (strict fixtures)")
            return []
        return [{k: coerce_value(v, self._types.get(k, ColumnType.TEXT), k)
                 for k, v in row.items() if v is not None} for row in rows]

    def write(self, request: dict[str, str]) -> list[dict[str, str]]:
        return [{"status": "readonly"}]
