"""Ship osquery results and status logs to Grafana Loki, with nothing lost.

- ``LokiLogger``: the logger plugin osqueryd sends its logs to (``--logger_plugin=loki``);
  it answers once a line is in the on-disk spool and ships it on its own time.
- ``LokiClient``: the spool + batching + retrying push client underneath, usable alone.
- ``LokiConfig`` / ``load_config``: settings, from a TOML file, the environment or flags.
- ``Spool``: the durable queue (checksummed segments, acknowledgement cursor).

``import osqsdk.loki`` loads neither Thrift, click nor sqlglot.
"""

from __future__ import annotations

from osqsdk.loki._client import LokiClient
from osqsdk.loki._config import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_WAIT_S,
    DEFAULT_FSYNC_INTERVAL_S,
    DEFAULT_LABELS,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MIN_BACKOFF_S,
    DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_STATIC_LABELS,
    DEFAULT_TIMEOUT_S,
    LokiConfig,
    Secret,
    load_config,
)
from osqsdk.loki._errors import LokiConfigError, LokiError, SpoolError
from osqsdk.loki._labels import Entry, Mapper, format_labels
from osqsdk.loki._logger import LokiLogger
from osqsdk.loki._metrics import DropReason, LokiMetrics, MutateReason
from osqsdk.loki._spool import Spool

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_WAIT_S",
    "DEFAULT_FSYNC_INTERVAL_S",
    "DEFAULT_LABELS",
    "DEFAULT_MAX_BACKOFF_S",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MIN_BACKOFF_S",
    "DEFAULT_SPOOL_MAX_BYTES",
    "DEFAULT_STATIC_LABELS",
    "DEFAULT_TIMEOUT_S",
    "DropReason",
    "Entry",
    "LokiClient",
    "LokiConfig",
    "LokiConfigError",
    "LokiError",
    "LokiLogger",
    "LokiMetrics",
    "Mapper",
    "MutateReason",
    "Secret",
    "Spool",
    "SpoolError",
    "format_labels",
    "load_config",
]
