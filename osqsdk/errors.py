"""Every exception osqsdk raises, in one tree.

::

    OsqsdkError
    ├── ExtensionError                 talking to osqueryd (or another extension) failed
    │   ├── ExtensionConnectionError   socket missing, refused, closed mid-call
    │   ├── ExtensionTimeout           no answer within the timeout
    │   ├── ProtocolError              the peer sent something that is not osquery's protocol
    │   ├── RegistrationError          osqueryd refused registerExtension (carries its message)
    │   └── QueryError                 osqueryd's query()/getQueryColumns() returned an error
    ├── PluginDefinitionError(ValueError)  a plugin or column declared wrongly
    ├── ValueCoercionError(ValueError)     a row value that osqueryd would misread
    ├── TableWriteError                    raise from insert/update/delete handlers
    │   ├── ConstraintViolation            answered as osqueryd's "constraint" status
    │   └── ReadOnlyTable                  answered as osqueryd's "readonly" status
    ├── SchemaError(ValueError)            unreadable or invalid schema data
    └── LokiError                          (osqsdk.loki) the Loki logger
        ├── LokiConfigError(ValueError)    a setting is missing or invalid
        └── SpoolError                     the spool directory cannot be used

Errors that cross the Thrift socket never travel as exceptions: the server turns them into a
status code and message (osquery's ExtensionStatus), so osqueryd always gets an answer.
"""

from __future__ import annotations

__all__ = [
    "ConstraintViolation",
    "ExtensionConnectionError",
    "ExtensionError",
    "ExtensionTimeout",
    "OsqsdkError",
    "PluginDefinitionError",
    "ProtocolError",
    "QueryError",
    "ReadOnlyTable",
    "RegistrationError",
    "SchemaError",
    "TableWriteError",
    "ValueCoercionError",
]


class OsqsdkError(Exception):
    """Base class of every osqsdk exception."""


class ExtensionError(OsqsdkError):
    """Talking to osqueryd's extension manager or to an extension failed."""


class ExtensionConnectionError(ExtensionError, ConnectionError):
    """The socket is missing, refused the connection, or closed during a call."""


class ExtensionTimeout(ExtensionError, TimeoutError):
    """The peer did not answer within the timeout."""


class ProtocolError(ExtensionError):
    """The peer answered with something that is not osquery's Thrift protocol."""


class RegistrationError(ExtensionError):
    """osqueryd refused to register the extension.

    ``message`` is osqueryd's own text, for example ``Duplicate extension registered``.
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(f"osqueryd refused the registration: {message}")
        self.message = message
        self.code = code


class QueryError(ExtensionError):
    """osqueryd could not run a query; ``message`` is SQLite's or osqueryd's text."""

    def __init__(self, sql: str, message: str, code: int = 1) -> None:
        super().__init__(f"{message} (query: {sql})")
        self.sql = sql
        self.message = message
        self.code = code


class PluginDefinitionError(OsqsdkError, ValueError):
    """A plugin, column or server was declared in a way osqueryd would reject."""


class ValueCoercionError(OsqsdkError, ValueError):
    """A value returned by ``generate`` cannot be sent so that osqueryd reads it right."""


class TableWriteError(OsqsdkError):
    """Raise from a writable table's handler to fail the write with ``message``."""


class ConstraintViolation(TableWriteError):
    """Raise from insert/update/delete to fail the statement with SQLITE_CONSTRAINT."""


class ReadOnlyTable(TableWriteError):
    """Raise from a write handler to answer osqueryd's ``readonly`` status."""


class SchemaError(OsqsdkError, ValueError):
    """Schema data could not be read or does not have the expected shape."""

