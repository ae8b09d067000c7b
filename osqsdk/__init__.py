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
    "Column": "osqsdk._columns",
    "ColumnOptions": "osqsdk._columns",
    "ColumnType": "osqsdk._columns",
    "ConfigPlugin": "osqsdk._config",
    "ConfigProblem": "osqsdk._config",
    "DirectoryConfig": "osqsdk._config",
    "DistributedPlugin": "osqsdk._distributed",
    "DistributedQueries": "osqsdk._distributed",
    "DistributedResult": "osqsdk._distributed",
    "LoggerFailure": "osqsdk._logger",
    "LoggerPlugin": "osqsdk._logger",
    "QueryStats": "osqsdk._distributed",
    "ResultFormat": "osqsdk._records",
    "ResultLog": "osqsdk._records",
    "Severity": "osqsdk._records",
    "StatusLog": "osqsdk._records",
    "Constraint": "osqsdk._context",
    "ConstraintViolation": "osqsdk.errors",
    "EventTable": "osqsdk._events",
    "ExitCode": "osqsdk._server",
    "ExtensionClient": "osqsdk._client",
    "ExtensionConnectionError": "osqsdk.errors",
    "ExtensionError": "osqsdk.errors",
    "ExtensionServer": "osqsdk._server",
    "ExtensionTimeout": "osqsdk.errors",
    "OSQUERY_SDK_VERSION": "osqsdk._server",
    "Operator": "osqsdk._context",
    "OsqsdkError": "osqsdk.errors",
    "Plugin": "osqsdk._plugin",
    "PluginDefinitionError": "osqsdk.errors",
    "ProtocolError": "osqsdk.errors",
    "QueryContext": "osqsdk._context",
    "QueryError": "osqsdk.errors",
    "ReadOnlyTable": "osqsdk.errors",
    "RegistrationError": "osqsdk.errors",
    "Response": "osqsdk._plugin",
    "TablePlugin": "osqsdk._table",
    "TableWriteError": "osqsdk.errors",
    "ValueCoercionError": "osqsdk.errors",
    "coerce_value": "osqsdk._table",
    "run": "osqsdk._server",
    "table": "osqsdk._table",
}

__all__ = sorted([*_EXPORTS, "__version__"])


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
    from osqsdk._client import ExtensionClient
    from osqsdk._columns import Column, ColumnOptions, ColumnType
    from osqsdk._config import ConfigPlugin, ConfigProblem, DirectoryConfig
    from osqsdk._events import EventTable
    from osqsdk._distributed import (
        DistributedPlugin,
        DistributedQueries,
        DistributedResult,
        QueryStats,
    )
    from osqsdk._logger import LoggerFailure, LoggerPlugin
    from osqsdk._records import ResultFormat, ResultLog, Severity, StatusLog
    from osqsdk._context import Constraint, Operator, QueryContext
    from osqsdk._plugin import Plugin, Response
    from osqsdk._server import OSQUERY_SDK_VERSION, ExitCode, ExtensionServer, run
    from osqsdk._table import TablePlugin, coerce_value, table
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
