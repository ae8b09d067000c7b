"""Engine: osquery's SQL on SQLite virtual tables, without osqueryd."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from osqsdk.errors import PluginDefinitionError, QueryError
from osqsdk.extension._plugin import Plugin
from osqsdk.extension._table import TablePlugin
from osqsdk.runner import _functions
from osqsdk.runner._authorizer import osqueryd_authorizer
from osqsdk.runner._fixtures import Fixtures
from osqsdk.runner._sources import FixtureSource, PluginSource, RemoteSource
from osqsdk.runner._values import result_text
from osqsdk.runner._vtable import CallRecord, TableError, VirtualTableModule

if TYPE_CHECKING:
    from osqsdk.extension._manager import ManagerDouble

__all__ = ["Engine", "QueryResult"]

# Platform names in the schema, by the build osqueryd would be.
_PLATFORM_ALIASES = {"darwin": {"darwin", "macos", "posix"}, "linux": {"linux", "posix"},
                     "windows": {"windows"}, "freebsd": {"freebsd", "posix"}}


@dataclass
class QueryResult:
    """Rows of one query: ``columns`` in SELECT order, ``rows`` as SQLite typed them."""

    columns: list[str]
    rows: list[dict[str, Any]]

    def strings(self) -> list[dict[str, str]]:
        """The rows as osqueryd returns and logs them: every value a string, NULL as ""."""
        return [{k: result_text(v) for k, v in row.items()} for row in self.rows]


#: The runner's limits per query (Engine arguments; --timeout and --max-rows on the CLI).
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_VALUE_BYTES = 100 * 1024 * 1024


class Engine:
    """osquery's SQL engine, locally: SQLite with osquery's virtual tables and functions.

    Core tables come from the schema (``osqsdk.schema.default_schema()`` by default) and
    answer from ``fixtures`` (empty, or an error with ``strict_fixtures``); extension tables
    are added with ``add_plugin`` (in this process), ``add_file`` (a Python file of osqsdk or
    osquery-python plugins) or ``add_remote`` (a running extension's socket). Planning,
    constraints, the context JSON and value typing follow osqueryd (see ``_vtable``).
    ``calls`` records every ``generate`` with its context.

    A query runs at most ``timeout`` seconds and returns at most ``max_rows`` rows (a
    recursive CTE that never ends is stopped with a QueryError saying so, as osqueryd's
    watchdog would stop it); a string or blob is at most ``max_value_bytes``.
    """

    def __init__(self, *, schema: Any = None, fixtures: Fixtures | None = None,
                 platform: str = "linux", strict_fixtures: bool = False,
                 default_index: bool = True, core_tables: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, max_rows: int = DEFAULT_MAX_ROWS,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
        if schema is None:
            from osqsdk.schema import default_schema

            schema = default_schema()
        self.schema = schema
        self.fixtures = fixtures if fixtures is not None else Fixtures()
        self.platform = platform
        self.default_index = default_index
        self.tick = 0
        self._lock = threading.RLock()
        self.connection = apsw.Connection(":memory:")
        # what osqueryd's authorizer denies (ATTACH, VACUUM INTO, most pragmas) fails here too
        self.connection.authorizer = osqueryd_authorizer
        self.timeout = timeout
        self.max_rows = max_rows
        self.connection.limit(apsw.SQLITE_LIMIT_LENGTH, max_value_bytes)
        self._deadline = float("inf")
        self.connection.set_progress_handler(self._past_deadline, 10_000)
        _functions.register(self.connection)
        self.module = VirtualTableModule(self.connection)
        self.tables: dict[str, Any] = {}
        self.plugins: dict[str, dict[str, Plugin]] = {}
        self.remote_loggers: dict[str, Any] = {}
        if core_tables:
            wanted = _PLATFORM_ALIASES.get(platform, {platform})
            for table in schema:
                if table.platforms and not wanted & set(table.platforms):
                    continue
                self._attach(FixtureSource(table, self._fixture_rows(table.name),
                                           strict=strict_fixtures))

    @property
    def calls(self) -> deque[CallRecord]:
        return self.module.calls

    def _fixture_rows(self, name: str) -> Callable[[], list[dict[str, Any]] | None]:
        return lambda: self.fixtures.rows(name, self.tick)

    def _attach(self, source: Any) -> None:
        self.module.attach(source)
        self.tables[source.name] = source

    # -- extension tables ----------------------------------------------------------------
    def _check_new(self, name: str) -> None:
        if name in self.tables:
            # osqueryd refuses the registration (docs/protocol.md §2.3).
            raise PluginDefinitionError(
                f"Registry item {name} conflicts with another item of the same name.")

    def add_plugin(self, plugin: Plugin) -> None:
        """Add an in-process plugin: tables become virtual tables, others are kept for the
        scheduler (loggers) and for ``plugin(registry, name)``."""
        if not isinstance(plugin, Plugin):
            from osqsdk.extension._compat import adapt

            plugin = adapt(plugin)
        with self._lock:
            if isinstance(plugin, TablePlugin):
                self._check_new(plugin.name)
                self._attach(PluginSource(plugin, default_index=self.default_index))
            self.plugins.setdefault(plugin.registry, {})[plugin.name] = plugin

    def add_file(self, path: str | Path) -> list[Plugin]:
        """Add every plugin a Python file defines (osqsdk or osquery-python)."""
        from osqsdk.extension._loader import load_file

        loaded = load_file(path)
        for plugin in loaded.plugins:
            self.add_plugin(plugin)
        return loaded.plugins

    def add_remote(self, socket_path: str, name: str,
                   routes: Sequence[Mapping[str, str]]) -> None:
        """Add a table served by a running extension at ``socket_path``."""
        with self._lock:
            self._check_new(name)
            self._attach(RemoteSource(socket_path, name, routes, default_index=self.default_index))

    def remove(self, name: str) -> None:
        with self._lock:
            source = self.tables.pop(name, None)
            if source is not None:
                self.module.detach(name, source.aliases)

    def plugin(self, registry: str, name: str) -> Plugin | None:
        return self.plugins.get(registry, {}).get(name)

    # -- running extensions, the way osqueryd hosts them ------------------------------------
    def serve(self, socket_path: str | None = None, **options: Any) -> ManagerDouble:
        """Start an extension manager on ``socket_path`` backed by this engine.

        Extensions that register there get their tables attached (called over Thrift),
        their loggers become available as ``remote_loggers[name]``, and ``query()`` and
        ``getQueryColumns()`` on the socket run SQL here. Returns the started
        ``ManagerDouble``; stop it to shut the extensions down.
        """
        from osqsdk.extension._manager import ManagerDouble

        manager = ManagerDouble(socket_path, core_tables=list(self.tables),
                                query=self._socket_query, columns=self._socket_columns,
                                on_register=self._attach_extension,
                                on_remove=self._detach_extension, **options)
        return manager.start()

    def _attach_extension(self, ext: Any) -> None:
        from osqsdk.runner._remote import RemoteLogger

        for name, routes in ext.registry.get("table", {}).items():
            self.add_remote(ext.socket_path, name, routes)
        for name in ext.registry.get("logger", {}):
            self.remote_loggers[name] = RemoteLogger(ext.socket_path, name)

    def _detach_extension(self, ext: Any) -> None:
        for name in ext.registry.get("table", {}):
            self.remove(name)
        for name in ext.registry.get("logger", {}):
            self.remote_loggers.pop(name, None)

    def _socket_query(self, sql: str) -> tuple[int, str, list[dict[str, str]]]:
        try:
            return 0, "OK", self.query(sql).strings()
        except QueryError as exc:
            return 1, exc.message, []

    def _socket_columns(self, sql: str) -> tuple[int, str, list[dict[str, str]]]:
        try:
            return 0, "OK", [{name: type_} for name, type_ in self.query_columns(sql)]
        except QueryError as exc:
            return 1, exc.message, []

    def logger(self, name: str) -> Any:
        """The logger plugin called ``name``: in this process or in a served extension."""
        return self.plugin("logger", name) or self.remote_loggers.get(name)

    # -- SQL -----------------------------------------------------------------------------
    def _past_deadline(self) -> bool:
        return time.monotonic() > self._deadline  # True: SQLite interrupts the statement

    def query(self, sql: str) -> QueryResult:
        """Run ``sql``; raises QueryError with SQLite's (or the table's) message, or with
        the limit it went past (``timeout``, ``max_rows``)."""
        with self._lock:
            cursor = self.connection.cursor()
            columns: list[str] = []
            rows: list[dict[str, Any]] = []
            self._deadline = time.monotonic() + self.timeout
            try:
                cursor.execute(sql)
                for row in cursor:
                    if not columns:
                        columns = [d[0] for d in cursor.getdescription()]
                    if len(rows) >= self.max_rows:
                        raise QueryError(sql, f"the query returned more than {self.max_rows} "
                                              "rows, the runner's limit (max_rows)")
                    rows.append(dict(zip(columns, row)))
                if not columns:
                    try:
                        columns = [d[0] for d in cursor.getdescription()]
                    except apsw.ExecutionCompleteError:
                        columns = []
            except TableError as exc:
                raise QueryError(sql, exc.message) from None
            except apsw.InterruptError:
                raise QueryError(sql, f"the query ran longer than {self.timeout:g} s, the "
                                      "runner's limit (timeout); osqueryd's watchdog stops "
                                      "such a query too") from None
            except apsw.Error as exc:
                raise QueryError(sql, _sqlite_message(exc)) from None
            finally:
                self._deadline = float("inf")
                cursor.close()
            return QueryResult(columns, rows)

    def query_columns(self, sql: str) -> list[tuple[str, str]]:
        """Result columns and declared types, as osqueryd's getQueryColumns answers."""
        with self._lock:
            cursor = self.connection.cursor()
            # Prepare without running: an exec tracer that refuses execution still leaves
            # the statement's description (names and declared types) readable.
            cursor.exec_trace = lambda *args: False
            try:
                cursor.execute(sql)
            except apsw.ExecTraceAbort:
                pass
            except TableError as exc:
                raise QueryError(sql, exc.message) from None
            except apsw.Error as exc:
                raise QueryError(sql, _sqlite_message(exc)) from None
            try:
                description = cursor.getdescription()
            except apsw.ExecutionCompleteError:
                return []
            return [(name, decl or "UNKNOWN") for name, decl in description]

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sqlite_message(exc: apsw.Error) -> str:
    # apsw prefixes SQLite's text with the exception class ("SQLError: no such table: x").
    text = str(exc)
    head, sep, rest = text.partition(": ")
    return rest if sep and head.endswith("Error") else text
