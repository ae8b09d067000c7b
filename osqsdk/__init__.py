"""osqsdk: write osquery extensions in Python.

A table extension in full::

    import osqsdk

    @osqsdk.table("acme_users", columns=[osqsdk.Column("name"), osqsdk.Column("uid", "BIGINT")])
    def acme_users(context):
        yield {"name": "alice", "uid": 1000}

    if __name__ == "__main__":
        osqsdk.run("acme", [acme_users], version="1.0.0")

``import osqsdk`` loads the extension SDK only; the linter (``osqsdk.lint``) and the Loki
logger (``osqsdk.loki``) are separate subpackages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from osqsdk._version import __version__

# Names are imported on first use (PEP 562), so that ``import osqsdk.lint`` does not load
# Thrift and ``import osqsdk`` stays cheap.
_EXPORTS = {
    "Column": "osqsdk._osquery.columns",
    "ColumnOptions": "osqsdk._osquery.columns",
    "ColumnType": "osqsdk._osquery.columns",
    "ConfigPlugin": "osqsdk.extension._config",
    "ConfigProblem": "osqsdk._osquery.config",
    "DirectoryConfig": "osqsdk.extension._config",
    "DistributedPlugin": "osqsdk.extension._distributed",
    "DistributedQueries": "osqsdk.extension._distributed",
    "DistributedResult": "osqsdk.extension._distributed",
    "LoggerFailure": "osqsdk.extension._logger",
    "LoggerPlugin": "osqsdk.extension._logger",
    "QueryStats": "osqsdk.extension._distributed",
    "ResultFormat": "osqsdk._osquery.records",
    "ResultLog": "osqsdk._osquery.records",
    "Severity": "osqsdk._osquery.records",
    "StatusLog": "osqsdk._osquery.records",
    "Constraint": "osqsdk.extension._context",
    "ConstraintViolation": "osqsdk.errors",
    "EventTable": "osqsdk.extension._events",
    "ExitCode": "osqsdk.extension._server",
    "ExtensionClient": "osqsdk.extension._client",
    "ExtensionConnectionError": "osqsdk.errors",
    "ExtensionError": "osqsdk.errors",
    "ExtensionServer": "osqsdk.extension._server",
    "ExtensionTimeout": "osqsdk.errors",
    "OSQUERY_SDK_VERSION": "osqsdk.extension._server",
    "Operator": "osqsdk.extension._context",
    "OsqsdkError": "osqsdk.errors",
    "Plugin": "osqsdk.extension._plugin",
    "PluginDefinitionError": "osqsdk.errors",
    "ProtocolError": "osqsdk.errors",
    "QueryContext": "osqsdk.extension._context",
    "QueryError": "osqsdk.errors",
    "ReadOnlyTable": "osqsdk.errors",
    "RegistrationError": "osqsdk.errors",
    "Response": "osqsdk.extension._plugin",
    "TablePlugin": "osqsdk.extension._table",
    "TableWriteError": "osqsdk.errors",
    "ValueCoercionError": "osqsdk.errors",
    "coerce_value": "osqsdk.extension._table",
    "run": "osqsdk.extension._server",
    "table": "osqsdk.extension._table",
}

__all__ = [
    "OSQUERY_SDK_VERSION",
    "Column",
    "ColumnOptions",
    "ColumnType",
    "ConfigPlugin",
    "ConfigProblem",
    "Constraint",
    "ConstraintViolation",
    "DirectoryConfig",
    "DistributedPlugin",
    "DistributedQueries",
    "DistributedResult",
    "EventTable",
    "ExitCode",
    "ExtensionClient",
    "ExtensionConnectionError",
    "ExtensionError",
    "ExtensionServer",
    "ExtensionTimeout",
    "LoggerFailure",
    "LoggerPlugin",
    "Operator",
    "OsqsdkError",
    "Plugin",
    "PluginDefinitionError",
    "ProtocolError",
    "QueryContext",
    "QueryError",
    "QueryStats",
    "ReadOnlyTable",
    "RegistrationError",
    "Response",
    "ResultFormat",
    "ResultLog",
    "Severity",
    "StatusLog",
    "TablePlugin",
    "TableWriteError",
    "ValueCoercionError",
    "__version__",
    "coerce_value",
    "run",
    "table",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'osqsdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from osqsdk._osquery.columns import Column, ColumnOptions, ColumnType
    from osqsdk._osquery.config import ConfigProblem
    from osqsdk._osquery.records import ResultFormat, ResultLog, Severity, StatusLog
    from osqsdk.errors import (
        ConstraintViolation,
        ExtensionConnectionError,
        ExtensionError,
        ExtensionTimeout,
        OsqsdkError,
        PluginDefinitionError,
        ProtocolError,
        QueryError,
        ReadOnlyTable,
        RegistrationError,
        TableWriteError,
        ValueCoercionError,
    )
    from osqsdk.extension._client import ExtensionClient
    from osqsdk.extension._config import ConfigPlugin, DirectoryConfig
    from osqsdk.extension._context import Constraint, Operator, QueryContext
    from osqsdk.extension._distributed import (
        DistributedPlugin,
        DistributedQueries,
        DistributedResult,
        QueryStats,
    )
    from osqsdk.extension._events import EventTable
    from osqsdk.extension._logger import LoggerFailure, LoggerPlugin
    from osqsdk.extension._plugin import Plugin, Response
    from osqsdk.extension._server import OSQUERY_SDK_VERSION, ExitCode, ExtensionServer, run
    from osqsdk.extension._table import TablePlugin, coerce_value, table
