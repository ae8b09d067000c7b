"""LokiConfig: every setting of the Loki logger, its default, and where values come from.

Defaults start from the values Loki's own clients use (promtail and Alloy: batch 1 MiB or
1 s, backoff 0.5 s to 5 min, 10 s timeout; docs/loki.md §4.1, §4.2) and from Loki's default
validation limits (docs/loki.md §2.2), so that what osqsdk sends passes a stock Loki.

Sources, highest priority first: explicit keyword overrides (command-line flags), the
environment (``OSQSDK_LOKI_<SETTING>``), a TOML file (``OSQSDK_LOKI_CONFIG`` or an explicit
path), the defaults below. Errors name the file and line, the variable or the flag.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osqsdk.loki._errors import LokiConfigError

__all__ = [
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_BATCH_WAIT_S",
    "DEFAULT_DRAIN_TIMEOUT_S",
    "DEFAULT_FSYNC_INTERVAL_S",
    "DEFAULT_LABELS",
    "DEFAULT_MAX_AGE_S",
    "DEFAULT_MAX_BACKOFF_S",
    "DEFAULT_MAX_FUTURE_S",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MEMORY_TAIL_BYTES",
    "DEFAULT_MIN_BACKOFF_S",
    "DEFAULT_PUSH_PATH",
    "DEFAULT_SEGMENT_BYTES",
    "DEFAULT_SPOOL_MAX_BYTES",
    "DEFAULT_STATIC_LABELS",
    "DEFAULT_TIMEOUT_S",
    "LABEL_SOURCES",
    "METADATA_SOURCES",
    "LokiConfig",
    "Secret",
    "load_config",
]

DEFAULT_PUSH_PATH = "/loki/api/v1/push"
DEFAULT_BATCH_BYTES = 1 << 20          # promtail/Alloy batch_size (line + metadata bytes)
DEFAULT_BATCH_WAIT_S = 1.0             # promtail/Alloy batch_wait
DEFAULT_TIMEOUT_S = 10.0               # promtail/Alloy timeout / remote_timeout
DEFAULT_MIN_BACKOFF_S = 0.5            # promtail/Alloy min_period
DEFAULT_MAX_BACKOFF_S = 300.0          # promtail/Alloy max_period (5 min)
# promtail gives up after 10 tries (~8.5 min) and loses the batch (loki#915); with a disk
# spool behind it, retrying forever is the safer default (docs/loki.md §7). 0 = forever.
DEFAULT_MAX_RETRIES = 0
DEFAULT_MAX_LINE_BYTES = 256 * 1024    # Loki max_line_size
DEFAULT_MAX_AGE_S = 7 * 86400          # Loki reject_old_samples_max_age
DEFAULT_MAX_FUTURE_S = 600             # Loki creation_grace_period
DEFAULT_SPOOL_MAX_BYTES = 1 << 30
DEFAULT_SEGMENT_BYTES = 16 << 20
DEFAULT_FSYNC_INTERVAL_S = 1.0
DEFAULT_MEMORY_TAIL_BYTES = 16 << 20   # lines held in memory while the disk is full
DEFAULT_DRAIN_TIMEOUT_S = 5.0
DEFAULT_STATIC_LABELS: Mapping[str, str] = {"job": "osquery"}
DEFAULT_LABELS: Mapping[str, str] = {"name": "name", "host": "host", "action": "action",
                                     "log_type": "log_type"}

# Loki's burst (ingestion_burst_size_mb, 6 MiB) bounds what one request may carry; a bigger
# request is answered 429 forever (docs/loki.md §2.2).
MAX_BATCH_BYTES = 6 << 20
# Loki's max_label_names_per_series (docs/loki.md §2.2).
MAX_LABELS = 15
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# Tenant IDs Loki accepts: at most 150 of these characters, not "." or ".." (docs/loki.md §1.7).
_TENANT = re.compile(r"[A-Za-z0-9!\-_.*'()]{1,150}\Z")

# What a label may be made of: bounded values only. Row columns, counters and times are
# never labels (docs/loki.md §4.7); they stay in the line or go to structured metadata.
LABEL_SOURCES = frozenset({"name", "host", "action", "log_type", "severity", "epoch"})
METADATA_SOURCES = LABEL_SOURCES | {"counter", "calendar_time", "unix_time"}
_DECORATION = "decoration:"


class Secret:
    """A credential: usable by the client, never shown by repr(), str() or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class LokiConfig:
    """Settings of the Loki client, spool and osquery mapping. Validated on creation."""

    url: str
    tenant: str | None = None
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    bearer_token: Secret | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    #: Skip TLS certificate checks. Off by default; for test setups only.
    insecure_skip_verify: bool = False
    timeout: float = DEFAULT_TIMEOUT_S
    #: "protobuf" (snappy-compressed, what promtail and Alloy send) or "json".
    encoding: str = "protobuf"
    #: For JSON only: "gzip" or "none". Loki does not accept snappy-compressed JSON.
    compression: str = "gzip"
    batch_bytes: int = DEFAULT_BATCH_BYTES
    batch_wait: float = DEFAULT_BATCH_WAIT_S
    min_backoff: float = DEFAULT_MIN_BACKOFF_S
    max_backoff: float = DEFAULT_MAX_BACKOFF_S
    max_retries: int = DEFAULT_MAX_RETRIES
    #: Drop a batch answered 429 instead of retrying it (promtail's drop_rate_limited_batches).
    drop_rate_limited: bool = False
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: What to do with a line over max_line_bytes: "truncate" or "drop" (counted either way).
    line_too_long: str = "truncate"
    #: Entries older than this (seconds) when sent are dropped as too_old; 0 = never.
    max_age: float = DEFAULT_MAX_AGE_S
    #: Entries this far (seconds) in the future when sent are dropped as too_new; 0 = never.
    max_future: float = DEFAULT_MAX_FUTURE_S
    static_labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STATIC_LABELS))
    #: Loki label name -> source (see LABEL_SOURCES, or "decoration:<key>").
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    #: Structured metadata name -> source (see METADATA_SOURCES, or "decoration:<key>").
    structured_metadata: Mapping[str, str] = field(default_factory=dict)
    spool_dir: str | None = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    #: Seconds between fsyncs of the spool; 0 = fsync before every answer (group commit).
    fsync_interval: float = DEFAULT_FSYNC_INTERVAL_S
    memory_tail_bytes: int = DEFAULT_MEMORY_TAIL_BYTES
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    plugin_name: str = "loki"
    #: Label and encode batches in a helper process (``_encoder``), leaving this one's
    #: time to its callers. None: on in the logger plugin, off in a LokiClient of its own.
    encoder_process: bool | None = None

    def __post_init__(self) -> None:
        url, username, password = _split_url(self.url)
        object.__setattr__(self, "url", url)
        if username is not None and self.username is None:
            object.__setattr__(self, "username", username)
            if password is not None and self.password is None:
                object.__setattr__(self, "password", Secret(password))
        for name in ("password", "bearer_token"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value))
            value = getattr(self, name)
            if value is not None and _HEADER_BREAKING.search(value.reveal()):
                # would break the Authorization header (and end up in a traceback); the
                # value itself is never shown
                raise LokiConfigError(f"{name}: contains a line break or another control "
                                      "character (a stray newline from an env file?)", name)
        if self.bearer_token is not None and self.username is not None:
            raise LokiConfigError("bearer_token: give either a bearer token or basic auth "
                                  "(username/password), not both", "bearer_token")
        if self.password is not None and self.username is None:
            raise LokiConfigError("password: a password needs a username", "password")
        if self.tenant is not None and (not _TENANT.match(self.tenant)
                                        or self.tenant in (".", "..")):
            raise LokiConfigError(
                f"tenant: {self.tenant!r} is not a tenant ID Loki accepts (at most 150 of "
                "A-Z a-z 0-9 ! - _ . * ' ( ), not '.' or '..')", "tenant")
        for key in self.headers:
            if key.lower() in ("x-scope-orgid", "authorization", "content-type",
                               "content-encoding"):
                raise LokiConfigError(f"headers: {key!r} is set by osqsdk itself; use tenant, "
                                      "username/password or bearer_token", "headers")
        if self.key_file is not None and self.cert_file is None:
            raise LokiConfigError("key_file: a client key needs cert_file too", "key_file")
        _positive(self, "timeout", "batch_wait", "batch_bytes", "max_line_bytes",
                  "spool_max_bytes", "segment_bytes")
        _not_negative(self, "min_backoff", "max_backoff", "max_retries", "max_age",
                      "max_future", "fsync_interval", "memory_tail_bytes", "drain_timeout")
        if self.max_backoff < self.min_backoff:
            raise LokiConfigError("max_backoff: must not be below min_backoff", "max_backoff")
        if self.batch_bytes > MAX_BATCH_BYTES:
            raise LokiConfigError(
                f"batch_bytes: {self.batch_bytes} is over Loki's default burst of "
                f"{MAX_BATCH_BYTES} bytes; such a request could never be accepted",
                "batch_bytes")
        if self.encoding not in ("protobuf", "json"):
            raise LokiConfigError(f"encoding: {self.encoding!r} is not 'protobuf' or 'json'",
                                  "encoding")
        if self.compression not in ("gzip", "none"):
            raise LokiConfigError(f"compression: {self.compression!r} is not 'gzip' or "
                                  "'none'", "compression")
        if self.line_too_long not in ("truncate", "drop"):
            raise LokiConfigError(f"line_too_long: {self.line_too_long!r} is not 'truncate' "
                                  "or 'drop'", "line_too_long")
        if self.max_line_bytes < 64:
            raise LokiConfigError("max_line_bytes: must be at least 64", "max_line_bytes")
        if self.segment_bytes * 4 > self.spool_max_bytes:
            # Drop-oldest works a segment at a time; keep that a small part of the cap.
            object.__setattr__(self, "segment_bytes", max(4096, self.spool_max_bytes // 4))
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise LokiConfigError(f"metrics_port: {self.metrics_port} is not a port number",
                                  "metrics_port")
        if not self.plugin_name:
            raise LokiConfigError("plugin_name: must not be empty", "plugin_name")
        self._check_labels()

    def _check_labels(self) -> None:
        seen: set[str] = set()
        for what, mapping in (("static_labels", self.static_labels), ("labels", self.labels)):
            for name, value in mapping.items():
                if not LABEL_NAME.match(name) or name.startswith("__"):
                    raise LokiConfigError(
                        f"{what}: {name!r} is not a Loki label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                        "not starting with '__')", what)
                if name in seen:
                    raise LokiConfigError(f"{what}: label {name!r} is defined twice", what)
                seen.add(name)
                if what == "labels":
                    _check_source(what, name, value, LABEL_SOURCES)
                elif not isinstance(value, str):
                    raise LokiConfigError(f"{what}: value of {name!r} must be a string", what)
        if len(seen) > MAX_LABELS:
            raise LokiConfigError(
                f"labels: {len(seen)} labels; Loki accepts at most {MAX_LABELS} per stream",
                "labels")
        for name, value in self.structured_metadata.items():
            if not LABEL_NAME.match(name):
                raise LokiConfigError(f"structured_metadata: {name!r} is not a valid name",
                                      "structured_metadata")
            _check_source("structured_metadata", name, value, METADATA_SOURCES)

    def redacted_url(self) -> str:
        """The URL as it may appear in logs: no credentials, query values replaced."""
        return _redact_query(self.url)

    def scrub(self, text: str) -> str:
        """``text`` (an error from the network, say) with every secret this configuration
        holds replaced by ``***``: the password, the bearer token, the URL's query values."""
        secrets = [s.reveal() for s in (self.password, self.bearer_token) if s is not None]
        query = urllib.parse.urlsplit(self.url).query
        secrets += [v for _, v in urllib.parse.parse_qsl(query, keep_blank_values=False)]
        if query:
            secrets.append(query)
        for secret in sorted(set(secrets), key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
                quoted = urllib.parse.quote(secret, safe="")
                if quoted != secret:
                    text = text.replace(quoted, "***")
        return text


def _check_source(what: str, name: str, value: Any, allowed: frozenset[str]) -> None:
    if not isinstance(value, str):
        raise LokiConfigError(f"{what}: source of {name!r} must be a string", what)
    if value.startswith(_DECORATION) and len(value) > len(_DECORATION):
        return
    if value not in allowed:
        raise LokiConfigError(
            f"{what}: {name!r} has source {value!r}; use one of {', '.join(sorted(allowed))} "
            "or decoration:<key>", what)


def _positive(config: LokiConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise LokiConfigError(f"{name}: must be a positive number, got {value!r}", name)


def _not_negative(config: LokiConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise LokiConfigError(f"{name}: must be a number >= 0, got {value!r}", name)


_HEADER_BREAKING = re.compile(r"[\x00-\x1f\x7f]")
_CREDENTIAL_CHARS = ("url: the URL's credentials cannot be read; percent-encode '#', '/', '?' "
                     "and '@' in a user name or password (%23, %2F, %3F, %40), or give "
                     "username and password_file instead")


def _redact_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    query = "&".join(f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query,
                                                                 keep_blank_values=True))
    return urllib.parse.urlunsplit(parts._replace(query=query or "***"))


def _split_url(url: Any) -> tuple[str, str | None, str | None]:
    if not isinstance(url, str) or not url:
        raise LokiConfigError("url: Loki's URL is required (e.g. http://loki:3100)", "url")
    # Never echo the URL, or any part of it: it may carry a password.
    if _HEADER_BREAKING.search(url):
        raise LokiConfigError("url: contains a line break or another control character",
                              "url")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # an unbalanced IPv6 bracket; the message quotes nothing
        raise LokiConfigError(f"url: not a valid URL: {exc}", "url") from None
    if "@" in url and "@" not in parts.netloc:
        # userinfo cut short by an unencoded '#', '/' or '?': its first part would be read
        # as host and port, and echoed by the port's error message
        raise LokiConfigError(_CREDENTIAL_CHARS, "url")
    try:
        port = parts.port  # read after the last '@' only: no credential in its message
    except ValueError as exc:
        raise LokiConfigError(f"url: not a valid URL: {exc}", "url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LokiConfigError("url: must be an http:// or https:// URL with a host", "url")
    username = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc += f":{port}"
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PUSH_PATH
    return (urllib.parse.urlunsplit((parts.scheme, netloc, path, parts.query, "")), username,
            password)


# -- loading -----------------------------------------------------------------------------
_FIELDS = {f.name: f for f in dataclasses.fields(LokiConfig)}
_MAPPINGS = {"headers", "static_labels", "labels", "structured_metadata"}
_SECRETS = {"password", "bearer_token"}
_FILE_KEYS = {"password_file": "password", "bearer_token_file": "bearer_token"}
_BOOLS = {"insecure_skip_verify", "drop_rate_limited", "encoder_process"}
_INTS = {"batch_bytes", "max_retries", "max_line_bytes", "spool_max_bytes", "segment_bytes",
         "memory_tail_bytes", "metrics_port"}
_FLOATS = {"timeout", "batch_wait", "min_backoff", "max_backoff", "max_age", "max_future",
           "fsync_interval", "drain_timeout"}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*\Z", re.I)
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """``"1048576"``, ``"512KiB"``, ``"1MiB"``, ``"1MB"`` (powers of 1024 either way)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 1048576, 512KiB, 1MiB)")
    unit = (match.group(2) or "B").upper()[:1]
    return int(float(match.group(1)) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])


def parse_duration(text: str) -> float:
    """``"1.5"`` (seconds), ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"7d"``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 1.5, 500ms, 10s, 5m, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _parse_mapping(text: str) -> dict[str, str]:
    """``"name=name,host=host"``; an empty string is an empty mapping."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _convert(name: str, value: Any) -> Any:
    """Convert a text value (environment, flag) or a TOML value to the field's type."""
    if value is None:
        return None
    if name in _MAPPINGS:
        if isinstance(value, Mapping):
            if not all(isinstance(v, str) for v in value.values()):
                raise ValueError("every value must be a string")
            return dict(value)
        if isinstance(value, str):
            return _parse_mapping(value)
        raise ValueError("must be a table of strings")
    if name in _BOOLS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return _parse_bool(value)
        raise ValueError("must be true or false")
    if name in _INTS:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return parse_size(value) if name != "max_retries" and name != "metrics_port" \
                else int(value)
        raise ValueError("must be a whole number")
    if name in _FLOATS:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return parse_duration(value)
        raise ValueError("must be a number of seconds")
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _read_secret_file(path: str) -> Secret:
    try:
        with open(path, encoding="utf-8") as f:
            return Secret(f.read().strip())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def _toml_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^[ \t]*(\[[ \t]*{re.escape(key)}[ \t]*\]"
                         rf"|{re.escape(key)}[ \t]*=)", re.M)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _load_file(path: str) -> tuple[dict[str, Any], dict[str, str]]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise LokiConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise LokiConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise LokiConfigError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in data.items():
        line = _toml_line(text, key)
        where = f"{path}:{line}" if line else path
        name = _FILE_KEYS.get(key, key)
        if name not in _FIELDS:
            raise LokiConfigError(f"{where}: unknown setting {key!r}")
        try:
            values[name] = (_read_secret_file(_convert(key, value)) if key in _FILE_KEYS
                            else _convert(name, value))
        except ValueError as exc:
            raise LokiConfigError(f"{where}: {key}: {exc}") from None
        origins[name] = where
    return values, origins


def _load_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    prefix = "OSQSDK_LOKI_"
    for var, text in env.items():
        if not var.startswith(prefix) or var == prefix + "CONFIG":
            continue
        key = var[len(prefix):].lower()
        name = _FILE_KEYS.get(key, key)
        if name not in _FIELDS:
            raise LokiConfigError(f"environment variable {var}: unknown setting {key!r}")
        try:
            values[name] = (_read_secret_file(text) if key in _FILE_KEYS
                            else Secret(text) if name in _SECRETS else _convert(name, text))
        except ValueError as exc:
            raise LokiConfigError(f"environment variable {var}: {exc}") from None
        origins[name] = f"environment variable {var}"
    return values, origins


def load_config(
    file: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flag_prefix: str = "--",
    **overrides: Any,
) -> LokiConfig:
    """Build a LokiConfig from a TOML file, the environment and explicit overrides.

    ``file`` defaults to ``$OSQSDK_LOKI_CONFIG`` when set. Overrides whose value is None
    are ignored, so command-line options can be passed through as they are. Overrides may
    be text (as typed on a command line) or typed values; messages name them as flags
    ``{flag_prefix}setting-name``. Secret files (``password_file``,
    ``bearer_token_file``) are read here; their content is never logged.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    path = os.fspath(file) if file is not None else env.get("OSQSDK_LOKI_CONFIG") or None
    if path:
        file_values, file_origins = _load_file(path)
        values.update(file_values)
        origins.update(file_origins)
    env_values, env_origins = _load_env(env)
    values.update(env_values)
    origins.update(env_origins)
    for key, value in overrides.items():
        if value is None:
            continue
        name = _FILE_KEYS.get(key, key)
        if name not in _FIELDS:
            raise LokiConfigError(f"unknown setting {key!r}")
        try:
            if key in _FILE_KEYS:
                values[name] = _read_secret_file(value)
            elif name in _SECRETS:
                values[name] = value if isinstance(value, Secret) else Secret(str(value))
            else:
                values[name] = _convert(name, value)
        except ValueError as exc:
            raise LokiConfigError(f"option {flag_prefix}{key.replace('_', '-')}: {exc}"
                                  ) from None
        origins[name] = f"option {flag_prefix}{key.replace('_', '-')}"
    if "url" not in values:
        raise LokiConfigError("url: Loki's URL is required: set url in the config file, "
                              f"OSQSDK_LOKI_URL, or {flag_prefix}url")
    try:
        return LokiConfig(**values)
    except LokiConfigError as exc:
        origin = origins.get(exc.setting) if exc.setting else None
        message = str(exc)
        raise LokiConfigError(f"{origin}: {message}" if origin else message,
                              exc.setting) from None
