"""Exceptions of the Loki logger (subclasses of osqsdk.OsqsdkError).

::

    OsqsdkError
    └── LokiError
        ├── LokiConfigError(ValueError)   a setting is missing or invalid (names its source)
        └── SpoolError                    the spool directory cannot be used
"""

from __future__ import annotations

from osqsdk.errors import OsqsdkError

__all__ = ["LokiConfigError", "LokiError", "SpoolError"]


class LokiError(OsqsdkError):
    """Base class of the Loki logger's exceptions."""


class LokiConfigError(LokiError, ValueError):
    """A setting is missing or invalid; the message names where it came from.

    ``setting`` is the name of the setting at fault, when there is one.
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class SpoolError(LokiError):
    """The spool directory cannot be opened, locked or written at start-up."""
