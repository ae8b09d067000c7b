"""LokiReceiver: an HTTP server that takes pushes the way Loki's distributor does.

It follows the checklist of docs/loki.md §3: content types and encodings as in §1.2 (protobuf
in a raw snappy block; JSON plain, gzip or deflate; snappy JSON refused), the v1 JSON
rules and the legacy JSON schema on ``/api/prom/push``, PromQL label strings, per-stream
and per-entry validation with Loki's default limits and messages (§2.2), the tenant rules
(§1.7), the all-or-nothing ingestion rate limit, the ingester's per-stream rate limit,
1 h out-of-order window and duplicate dropping (§2.3, §2.5), and partial acceptance: the
valid part of a request is stored before a 400 or a per-stream 429 is answered (§2.1).

Fault injection: ``down()``/``up()`` (an outage: connections refused), ``slow(seconds)``,
``fail(status, times, retry_after=...)`` (scripted answers such as 429 storms or 500s,
nothing stored), ``reset(times)`` (the connection is reset without an answer).

What was stored is in ``streams()``/``lines()``; ``discarded`` counts drops by Loki's
reason names (``loki_discarded_samples_total``). Run it alone with
``osqsdk loki receiver --port 3100``; ``GET /double/stats`` gives the counts and
``GET /double/streams`` what it stored.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import gzip
import http.server
import json
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import cramjam

__all__ = ["LokiReceiver", "parse_label_string"]

_NS = 1_000_000_000
_MiB = 1 << 20
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TENANT = re.compile(r"[A-Za-z0-9!\-_.*'()]{1,150}\Z")
# Loki's service_name discovery order (docs/loki.md §2.1).
_SERVICE_SOURCES = ("service", "app", "application", "app_name", "name",
                    "app_kubernetes_io_name", "container", "container_name",
                    "k8s_container_name", "component", "workload", "job", "k8s_job_name")
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", "'": "'", '"': '"'}
# A stream's entries as decoded and stored: (timestamp in ns, line, structured metadata), and
# a request's streams: (label string, entries).
_Entries = list[tuple[int, str, tuple[tuple[str, str], ...]]]
_Streams = list[tuple[str, _Entries]]


class _Refused(Exception):
    """A whole request refused: nothing stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _rfc3339(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, _NS)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos:09d}".rstrip("0") if nanos else "") + "Z"


def _go_quote(value: str) -> str:
    out = []
    for ch in value:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def canonical(labels: list[tuple[str, str]]) -> str:
    """Loki's text for a label set: sorted by name, Go-quoted values."""
    return "{" + ", ".join(f"{k}={_go_quote(v)}" for k, v in sorted(labels)) + "}"


def parse_label_string(text: str) -> list[tuple[str, str]]:
    """Parse ``{name="value", ...}`` as PromQL's metric parser does (docs/loki.md §1.6).

    Raises ValueError with the position. Empty values are kept (the caller drops them).
    """
    pos, n = 0, len(text)

    def error(what: str) -> ValueError:
        return ValueError(f"1:{pos + 1}: parse error: {what}")

    def ws() -> None:
        nonlocal pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1

    def string() -> str:
        nonlocal pos
        quote = text[pos]
        pos += 1
        out: list[str] = []
        while True:
            if pos >= n:
                raise error("unterminated quoted string")
            ch = text[pos]
            if ch == quote:
                pos += 1
                return "".join(out)
            if quote != "`" and ch == "\n":
                raise error("unterminated quoted string")
            if quote != "`" and ch == "\\":
                pos += 1
                if pos >= n:
                    raise error("unterminated quoted string")
                esc = text[pos]
                if esc in _GO_ESCAPES:
                    out.append(_GO_ESCAPES[esc])
                    pos += 1
                elif esc in "xuU":
                    width = {"x": 2, "u": 4, "U": 8}[esc]
                    digits = text[pos + 1:pos + 1 + width]
                    if len(digits) != width or not all(c in "0123456789abcdefABCDEF"
                                                       for c in digits):
                        raise error(f"invalid escape sequence \\{esc}{digits}")
                    out.append(chr(int(digits, 16)))
                    pos += 1 + width
                elif esc in "01234567":
                    digits = text[pos:pos + 3]
                    if len(digits) != 3 or not all(c in "01234567" for c in digits):
                        raise error("invalid octal escape")
                    out.append(chr(int(digits, 8)))
                    pos += 3
                else:
                    raise error(f"unknown escape sequence \\{esc}")
                continue
            out.append(ch)
            pos += 1

    ws()
    if pos >= n or text[pos] != "{":
        raise error(f"unexpected {text[pos:pos + 1]!r}, expected '{{'")
    pos += 1
    labels: list[tuple[str, str]] = []
    while True:
        ws()
        if pos < n and text[pos] == "}":
            pos += 1
            break
        if pos < n and text[pos] == '"':
            name = string()
        else:
            match = _LABEL_NAME.match(text, pos)
            if not match:
                raise error(f"unexpected character inside braces: {text[pos:pos + 1]!r}")
            name = match.group()
            pos = match.end()
        ws()
        if pos >= n or text[pos] != "=":
            raise error("unexpected end of label matcher, expected '='")
        pos += 1
        ws()
        if pos >= n or text[pos] not in "\"'`":
            raise error("unexpected label value, expected a string")
        labels.append((name, string()))
        ws()
        if pos < n and text[pos] == ",":
            pos += 1
            continue
        if pos < n and text[pos] == "}":
            pos += 1
            break
        raise error("unexpected character after label value, expected ',' or '}'")
    ws()
    if pos != n:
        raise error(f"unexpected {text[pos:pos + 10]!r} after '}}'")
    return labels


class _Bucket:
    """A token bucket (rate bytes/s, burst bytes) on the receiver's clock."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.last = burst, now

    def take(self, amount: float, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if amount > self.tokens:
            return False
        self.tokens -= amount
        return True


class _Stream:
    __slots__ = ("bucket", "count", "entries", "highest", "labels", "last", "seen")

    def __init__(self, labels: str) -> None:
        self.labels = labels
        self.entries: list[tuple[int, str, tuple[tuple[str, str], ...]]] = []
        self.seen: set[int] = set()
        self.highest: int | None = None
        self.last: tuple[int, str, tuple[tuple[str, str], ...]] | None = None
        self.bucket: _Bucket | None = None
        self.count = 0


class LokiReceiver:
    """A Loki distributor double on 127.0.0.1. Use as a context manager or start()/stop().

    Limits default to Loki's (docs/loki.md §2.2); ``None`` switches a limit off. Times are in
    seconds, sizes in bytes. ``store=False`` keeps counts and duplicate detection only
    (for long benchmarks). ``clock`` returns Unix seconds.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_enabled: bool = False,
        required_authorization: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_recv_msg_size: int = 100 * _MiB,
        max_decompressed_size: int = 5000 * _MiB,
        max_line_size: int | None = 256 * 1024,
        max_label_names_per_series: int = 15,
        max_label_name_length: int = 1024,
        max_label_value_length: int = 2048,
        reject_old_samples_max_age: float | None = 7 * 86400,
        creation_grace_period: float | None = 600,
        out_of_order_window: float | None = 3600,
        allow_structured_metadata: bool = True,
        max_structured_metadata_size: int = 64 * 1024,
        max_structured_metadata_entries: int = 128,
        ingestion_rate_mb: float | None = 4,
        ingestion_burst_size_mb: float | None = 6,
        per_stream_rate_limit: float | None = 3 * _MiB,
        per_stream_rate_limit_burst: float | None = 15 * _MiB,
        max_streams_per_user: int | None = 5000,
        discover_service_name: bool = True,
        last_stream_error_only: bool = True,
        store: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.auth_enabled = auth_enabled
        self.required_authorization = required_authorization
        self.ssl_context = ssl_context
        self.max_recv_msg_size = max_recv_msg_size
        self.max_decompressed_size = max_decompressed_size
        self.max_line_size = max_line_size
        self.max_label_names_per_series = max_label_names_per_series
        self.max_label_name_length = max_label_name_length
        self.max_label_value_length = max_label_value_length
        self.reject_old_samples_max_age = reject_old_samples_max_age
        self.creation_grace_period = creation_grace_period
        self.out_of_order_window = out_of_order_window
        self.allow_structured_metadata = allow_structured_metadata
        self.max_structured_metadata_size = max_structured_metadata_size
        self.max_structured_metadata_entries = max_structured_metadata_entries
        self.ingestion_rate = ingestion_rate_mb * _MiB if ingestion_rate_mb else None
        self.ingestion_burst = (ingestion_burst_size_mb * _MiB if ingestion_burst_size_mb
                                else None)
        self.per_stream_rate_limit = per_stream_rate_limit
        self.per_stream_rate_limit_burst = per_stream_rate_limit_burst
        self.max_streams_per_user = max_streams_per_user
        self.discover_service_name = discover_service_name
        # Loki's ingester reports only the last stream's outcome of a request: an earlier
        # stream's refused entries can come back as 204 (docs/loki.md §2.1, quirk in instance.Push).
        self.last_stream_error_only = last_stream_error_only
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tenants: dict[str, dict[str, _Stream]] = {}
        self._rate: dict[str, _Bucket] = {}
        self.discarded: collections.Counter[str] = collections.Counter()
        self.discarded_bytes: collections.Counter[str] = collections.Counter()
        self.duplicates = 0
        self.entry_count = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=10000)
        self._faults: collections.deque[tuple[Any, ...]] = collections.deque()
        self._delay = 0.0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LokiReceiver:
        self.up()
        return self

    def up(self) -> None:
        """Listen (again, on the same port after ``down()``)."""
        if self._server is not None:
            return
        server = _Server((self.host, self.port), _Handler)
        server.double = self
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loki-receiver", daemon=True)
        self._thread.start()

    def down(self) -> None:
        """An outage: stop listening and cut every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)

    stop = down

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.down()
        try:
            yield
        finally:
            self.up()

    def __enter__(self) -> LokiReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def push_url(self) -> str:
        return self.url + "/loki/api/v1/push"

    # -- fault injection -------------------------------------------------------------------
    def fail(self, status: int, times: int = 1, *, body: str | None = None,
             retry_after: float | str | None = None) -> None:
        """Answer the next ``times`` pushes with ``status`` (nothing stored)."""
        text = body if body is not None else {
            429: "Ingestion rate limit exceeded", 500: "internal server error",
            503: "The server cannot accept more requests at this time."}.get(status, "error")
        for _ in range(times):
            self._faults.append(("status", status, text, retry_after))

    def reset(self, times: int = 1) -> None:
        """Reset the connection of the next ``times`` pushes without answering."""
        for _ in range(times):
            self._faults.append(("reset",))

    def slow(self, seconds: float) -> None:
        """Wait this long before handling each push (0: back to normal)."""
        self._delay = seconds

    # -- what was stored -------------------------------------------------------------------
    def streams(self, tenant: str | None = None) -> dict[str, _Entries]:
        with self._lock:
            tenant = tenant or ("fake" if not self.auth_enabled else next(iter(self._tenants), ""))
            return {labels: list(s.entries) for labels, s in self._tenants.get(tenant, {}).items()}

    def lines(self, tenant: str | None = None) -> list[str]:
        """Every stored line, in time order across streams."""
        entries = [e for es in self.streams(tenant).values() for e in es]
        return [line for _, line, _ in sorted(entries, key=lambda e: e[0])]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"entries": self.entry_count, "duplicates": self.duplicates,
                    "requests": sum(self.statuses.values()),
                    "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                    "discarded": dict(self.discarded),
                    "streams": sum(len(t) for t in self._tenants.values())}

    def wait_for_entries(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.entry_count < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def clear(self) -> None:
        with self._lock:
            self._tenants.clear()
            self._rate.clear()
            self.discarded.clear()
            self.discarded_bytes.clear()
            self.statuses.clear()
            self.requests.clear()
            self.duplicates = self.entry_count = 0

    # -- the distributor -------------------------------------------------------------------
    def handle(self, path: str, headers: Mapping[str, str],
               body: bytes) -> tuple[int, str, dict[str, str]]:
        """Process one push; returns (status, error text, extra headers)."""
        record: dict[str, Any] = {"path": path, "content_type": headers.get("Content-Type"),
                                  "content_encoding": headers.get("Content-Encoding"),
                                  "tenant_header": headers.get("X-Scope-OrgID"),
                                  "authorization": headers.get("Authorization"),
                                  "user_agent": headers.get("User-Agent"), "bytes": len(body)}
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault[0] == "status":
            _, status, text, retry_after = fault
            extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._account(record, status, 0)
            return status, text, extra
        try:
            status, text, entries = self._push(path, headers, body)
        except _Refused as refused:
            status, text, entries = refused.status, refused.message, 0
        self._account(record, status, entries)
        return status, text, {}

    def _account(self, record: dict[str, Any], status: int, entries: int) -> None:
        record.update(status=status, entries=entries)
        with self._changed:
            self.statuses[status] += 1
            self.requests.append(record)
            self._changed.notify_all()

    def _tenant(self, headers: Mapping[str, str]) -> str:
        if self.required_authorization is not None and \
                headers.get("Authorization") != self.required_authorization:
            raise _Refused(401, "unauthorized")  # what a gateway in front of Loki answers
        if not self.auth_enabled:
            return "fake"  # the header is ignored (docs/loki.md §1.7)
        org = headers.get("X-Scope-OrgID")
        if not org:
            raise _Refused(401, "no org id")
        if "|" in org:
            raise _Refused(400, "multiple org IDs present")
        if not _TENANT.match(org) or org in (".", ".."):
            raise _Refused(400, f"tenant ID '{org}' is not valid")
        return org

    def _decode(self, path: str, headers: Mapping[str, str], body: bytes) -> _Streams:
        if len(body) > self.max_recv_msg_size:
            raise _Refused(413, f"rpc error: code = ResourceExhausted desc = message size too "
                                f"large than max ({len(body)} vs {self.max_recv_msg_size})")
        ctype = headers.get("Content-Type")
        if not ctype or not ctype.split(";")[0].strip():
            raise _Refused(400, "mime: no media type")
        media = ctype.split(";")[0].strip().lower()
        encoding = (headers.get("Content-Encoding") or "").strip().lower()
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as exc:
                raise _Refused(400, f"gzip: {exc}") from None
        elif encoding == "deflate":
            try:
                body = zlib.decompress(body, -15)
            except zlib.error as exc:
                raise _Refused(400, f"flate: {exc}") from None
        elif encoding not in ("", "snappy"):
            raise _Refused(400, f'Content-Encoding "{encoding}" not supported')
        if len(body) > self.max_decompressed_size:
            raise _Refused(413, "request_body_too_large")
        if media == "application/json":
            # snappy is not undone for JSON: such a body fails to parse (docs/loki.md §1.2)
            if "/loki/api/v1" in path.lower():
                return self._json_v1(body)
            return self._json_legacy(body)
        return self._protobuf(body)

    def _protobuf(self, body: bytes) -> _Streams:
        from google.protobuf.message import DecodeError

        from osqsdk.loki._proto.push_pb2 import PushRequest

        try:
            if len(body) >= 1:
                declared = _snappy_decoded_len(body)
                if declared > self.max_decompressed_size:
                    raise _Refused(413, "request_body_too_large")
            raw = bytes(cramjam.snappy.decompress_raw(body))
        except _Refused:
            raise
        except Exception as exc:
            raise _Refused(400, f"snappy: corrupt input ({exc})") from None
        request = PushRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            raise _Refused(400, f"proto: {exc}") from None
        out = []
        for stream in request.streams:
            entries = [(e.timestamp.seconds * _NS + e.timestamp.nanos, e.line,
                        tuple((p.name, p.value) for p in e.structuredMetadata))
                       for e in stream.entries]
            out.append((stream.labels, entries))
        return out

    def _json_v1(self, body: bytes) -> _Streams:
        data = _json(body, "loghttp.PushRequest")
        if not isinstance(data, dict) or not isinstance(data.get("streams", []), list):
            raise _Refused(400, "loghttp.PushRequest.Streams: expect array")
        out = []
        for stream in data.get("streams") or []:
            if not isinstance(stream, dict):
                raise _Refused(400, "loghttp.Stream: expect object")
            labels = stream.get("stream") or {}
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise _Refused(400, "loghttp.Stream.stream: expect object of strings")
            # Loki writes the keys unquoted into a label string (docs/loki.md §1.3)
            text = canonical(list(labels.items()))
            entries = []
            for value in _array(stream.get("values"), "loghttp.Stream.values"):
                if not isinstance(value, list) or len(value) < 2:
                    raise _Refused(400, "loghttp.Entry: expect array of at least 2 elements")
                ts, line = value[0], value[1]
                if not isinstance(ts, str):
                    raise _Refused(400, "loghttp.Entry.timestamp: expect string")
                try:
                    ts_ns = int(ts, 10)
                except ValueError:
                    raise _Refused(400, f'strconv.ParseInt: parsing "{ts}": '
                                        "invalid syntax") from None
                if not isinstance(line, str):
                    raise _Refused(400, "loghttp.Entry.line: expect string")
                metadata: tuple[tuple[str, str], ...] = ()
                if len(value) > 2:
                    sm = value[2]
                    if not isinstance(sm, dict) or not all(isinstance(v, str) for v in sm.values()):
                        raise _Refused(400, "loghttp.Entry.structuredMetadata: expect object "
                                            "of strings")
                    metadata = tuple(sm.items())
                entries.append((ts_ns, line, metadata))
            out.append((text, entries))
        return out

    def _json_legacy(self, body: bytes) -> _Streams:
        data = _json(body, "logproto.PushRequest")
        if data is not None and not isinstance(data, dict):
            raise _Refused(400, "logproto.PushRequest: expect object")
        out: _Streams = []
        for stream in _array((data or {}).get("streams"), "logproto.PushRequest.streams"):
            if not isinstance(stream, dict) or not isinstance(stream.get("labels", ""), str):
                raise _Refused(400, "logproto.Stream: expect labels string")
            entries: _Entries = []
            for entry in _array(stream.get("entries"), "logproto.Stream.entries"):
                try:
                    ts_ns = _parse_rfc3339(entry["ts"])
                    line = entry["line"]
                except (KeyError, TypeError, ValueError) as exc:
                    raise _Refused(400, f"logproto.Entry: {exc}") from None
                if not isinstance(line, str):
                    raise _Refused(400, "logproto.Entry.line: expect string")
                entries.append((ts_ns, line, ()))
            out.append((stream.get("labels", ""), entries))
        return out

    def _push(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str, int]:
        tenant = self._tenant(headers)
        streams = self._decode(path, headers, body)
        now = self.clock()
        now_ns = int(now * _NS)
        parsed = []
        for text, entries in streams:
            try:
                labels = parse_label_string(text)
            except ValueError as exc:  # one bad stream refuses the whole request
                raise _Refused(400, f"couldn't parse labels: {exc}") from None
            parsed.append((text, [(k, v) for k, v in labels if v], entries))
        if not parsed:
            raise _Refused(422, "error at least one valid stream is required for ingestion")
        errors: list[str] = []
        discards: list[tuple[str, int, int]] = []
        valid: list[tuple[str, list[tuple[int, str, tuple[tuple[str, str], ...]]]]] = []
        for _text, labels, entries in parsed:
            names = [k for k, _ in labels]
            if self.discover_service_name and "service_name" not in names:
                service = next((v for k in _SERVICE_SOURCES for n, v in labels if n == k),
                               "unknown_service")
                labels.append(("service_name", service))
            canon = canonical(labels)
            problem, reason = self._check_stream(labels, canon)
            if problem is not None:
                errors.append(problem)
                discards.append((reason, len(entries), sum(len(e[1]) for e in entries)))
                continue
            kept = []
            for entry in entries:
                problem, reason = self._check_entry(entry, canon, now_ns)
                if problem is not None:
                    errors.append(problem)
                    discards.append((reason, 1, len(entry[1])))
                else:
                    kept.append(entry)
            if kept:
                valid.append((canon, kept))
        with self._changed:
            for reason, count, nbytes in discards:
                self.discarded[reason] += count
                self.discarded_bytes[reason] += nbytes
            total = sum(_entry_size(e) for _, es in valid for e in es)
            lines = sum(len(es) for _, es in valid)
            if valid and self.ingestion_rate is not None:
                bucket = self._rate.get(tenant)
                if bucket is None:
                    bucket = self._rate[tenant] = _Bucket(
                        self.ingestion_rate, self.ingestion_burst or self.ingestion_rate, now)
                if not bucket.take(total, now):
                    self.discarded["rate_limited"] += lines
                    self.discarded_bytes["rate_limited"] += total
                    return 429, (f"ingestion rate limit exceeded for user {tenant} (limit: "
                                 f"{int(self.ingestion_rate)} bytes/sec) while attempting to "
                                 f"ingest '{lines}' lines totaling '{total}' bytes, reduce log "
                                 "volume or contact your Loki administrator to see if the limit "
                                 "can be increased"), 0
            stored, ingester_error = self._ingest(tenant, valid, now)
            self._changed.notify_all()
        if ingester_error is not None:
            return ingester_error[0], ingester_error[1], stored
        if errors:
            return 400, _grouped(errors), stored
        return 204, "", stored

    def _check_stream(self, labels: list[tuple[str, str]], canon: str) -> tuple[str | None, str]:
        names = [k for k, _ in labels]
        counted = [k for k in names if k != "service_name"]
        if not labels:
            return "error at least one label pair is required per stream", "missing_labels"
        if len(counted) > self.max_label_names_per_series:
            return (f"entry for stream '{canon}' has {len(counted)} label names; limit "
                    f"{self.max_label_names_per_series}", "max_label_names_per_series")
        for name, value in labels:
            if len(name) > self.max_label_name_length:
                return f"stream '{canon}' has label name too long: '{name}'", "label_name_too_long"
            if len(value.encode("utf-8")) > self.max_label_value_length:
                return (f"stream '{canon}' has label value too long: '{value}'",
                        "label_value_too_long")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            return f"stream '{canon}' has duplicate label name: '{dup}'", "duplicate_label_names"
        return None, ""

    def _check_entry(self, entry: tuple[int, str, tuple[tuple[str, str], ...]], canon: str,
                     now_ns: int) -> tuple[str | None, str]:
        ts, line, metadata = entry
        if self.reject_old_samples_max_age is not None:
            oldest = now_ns - int(self.reject_old_samples_max_age * _NS)
            if ts < oldest:
                return (f"entry for stream '{canon}' has timestamp too old: {_rfc3339(ts)}, "
                        f"oldest acceptable timestamp is: {_rfc3339(oldest)}",
                        "greater_than_max_sample_age")
        if self.creation_grace_period is not None and \
                ts > now_ns + int(self.creation_grace_period * _NS):
            return (f"entry for stream '{canon}' has timestamp too new: {_rfc3339(ts)}",
                    "too_far_in_future")
        if self.max_line_size:
            size = len(line.encode("utf-8")) if len(line) * 4 > self.max_line_size else len(line)
            if size > self.max_line_size:
                return (f"max entry size '{self.max_line_size}' bytes exceeded for stream "
                        f"'{canon}' while adding an entry with length '{size}' bytes",
                        "line_too_long")
        if metadata:
            if not self.allow_structured_metadata:
                return (f"stream '{canon}' includes structured metadata, but this feature is "
                        "disallowed. Please see `limits_config.structured_metadata` or contact "
                        "your Loki administrator to enable it.", "disallowed_structured_metadata")
            size = sum(len(k) + len(v) for k, v in metadata)
            if size > self.max_structured_metadata_size:
                return (f"stream '{canon}' has structured metadata too large: '{size}' bytes, "
                        f"limit: '{self.max_structured_metadata_size}' bytes. Please see "
                        "`limits_config.max_structured_metadata_size` or contact your Loki "
                        "administrator to increase it.", "structured_metadata_too_large")
            if len(metadata) > self.max_structured_metadata_entries:
                return (f"stream '{canon}' has too many structured metadata labels: "
                        f"'{len(metadata)}', limit: '{self.max_structured_metadata_entries}'. "
                        "Please see `limits_config.max_structured_metadata_entries_count` or "
                        "contact your Loki administrator to increase it.",
                        "structured_metadata_too_many")
        return None, ""

    def _ingest(self, tenant: str, valid: _Streams,
                now: float) -> tuple[int, tuple[int, str] | None]:
        streams = self._tenants.setdefault(tenant, {})
        stored = 0
        result: tuple[int, str] | None = None
        window = int(self.out_of_order_window * _NS) if self.out_of_order_window else None
        for canon, entries in valid:
            stream = streams.get(canon)
            if stream is None:
                if self.max_streams_per_user and len(streams) >= self.max_streams_per_user:
                    self.discarded["stream_limit"] += len(entries)
                    outcome: tuple[int, str] | None = (429, (
                        f"maximum active stream limit exceeded when trying to create stream "
                        f"{canon}, reduce the number of active streams (reduce labels or reduce "
                        "label values), or contact your Loki administrator to see if the limit "
                        f"can be increased, user: '{tenant}'"))
                    if self.last_stream_error_only or result is None:
                        result = outcome
                    continue
                stream = streams[canon] = _Stream(canon)
                if self.per_stream_rate_limit:
                    stream.bucket = _Bucket(self.per_stream_rate_limit,
                                            self.per_stream_rate_limit_burst
                                            or self.per_stream_rate_limit, now)
            failures: list[str] = []
            last_was_rate = False
            for entry in entries:
                ts, line, metadata = entry
                if stream.bucket is not None and not stream.bucket.take(_entry_size(entry), now):
                    self.discarded["per_stream_rate_limit"] += 1
                    failures.append(
                        f"entry with timestamp {_rfc3339(ts)} ignored, reason: 'Per stream rate "
                        f"limit exceeded (limit: {self.per_stream_rate_limit}B/sec) while "
                        f"attempting to ingest for stream '{canon}' totaling {len(line)}B, "
                        "consider splitting a stream via additional labels or contact your Loki "
                        "administrator to see if the limit can be increased'")
                    last_was_rate = True
                    continue
                if (window is not None and stream.highest is not None
                        and ts < stream.highest - window):
                    self.discarded["too_far_behind"] += 1
                    failures.append(
                        f"entry with timestamp {_rfc3339(ts)} ignored, reason: 'entry too far "
                        f"behind, entry timestamp is: {_rfc3339(ts)}, oldest acceptable "
                        f"timestamp is: {_rfc3339(stream.highest - window)}'")
                    last_was_rate = False
                    continue
                key = hash((ts, line, metadata))
                if entry == stream.last or key in stream.seen:
                    self.duplicates += 1  # Loki drops exact duplicates silently (§2.5)
                    continue
                stream.seen.add(key)
                stream.last = entry
                if self.store:
                    stream.entries.append(entry)
                stream.count += 1
                stored += 1
                if stream.highest is None or ts > stream.highest:
                    stream.highest = ts
            outcome = None
            if failures:
                body = ",\n".join(failures[:10])
                outcome = (429 if last_was_rate else 400,
                           f"{body},\nuser '{tenant}', total ignored: {len(failures)} out of "
                           f"{len(entries)} for stream: {canon}")
            if self.last_stream_error_only or (outcome is not None and result is None):
                result = outcome
        self.entry_count += stored
        return stored, result


def _entry_size(entry: tuple[int, str, tuple[tuple[str, str], ...]]) -> int:
    # Loki's rate accounting: line + structured metadata, except metadata named "level".
    return len(entry[1]) + sum(len(k) + len(v) for k, v in entry[2] if k != "level")


def _grouped(errors: list[str]) -> str:
    counts = collections.Counter(errors)
    if len(counts) == 1 and len(errors) == 1:
        return errors[0]
    return "; ".join(f"{n} errors like: {msg}" for msg, n in counts.items())


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError included
        raise _Refused(400, f"{what}: {exc}") from None


def _array(value: Any, what: str) -> list[Any]:
    """A JSON array that may also be null or absent (Go decodes both as no elements)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Refused(400, f"{what}: expect array")
    return value


def _parse_rfc3339(text: str) -> int:
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
                         r"(Z|[+-]\d{2}:\d{2})", text)
    if not match:
        raise ValueError(f"parsing time {text!r} as RFC3339")
    base = datetime.datetime.fromisoformat(match.group(1) + (
        "+00:00" if match.group(3) == "Z" else match.group(3)))
    return int(base.timestamp()) * _NS + int((match.group(2) or "0").ljust(9, "0"))


def _snappy_decoded_len(body: bytes) -> int:
    # A snappy block starts with the decoded length as a uvarint (snappy.DecodedLen).
    value, shift = 0, 0
    for byte in body[:10]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    raise ValueError("bad length prefix")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    double: LokiReceiver


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.double._lock:
            self.server.double._conns.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.double._lock:
            self.server.double._conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, text: str = "", headers: Mapping[str, str] | None = None,
                content_type: str = "text/plain; charset=utf-8") -> None:
        data = (text + "\n").encode("utf-8") if text else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
            self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_GET(self) -> None:
        double = self.server.double
        if self.path == "/ready":
            self._answer(200, "ready")
        elif self.path == "/double/stats":
            self._answer(200, json.dumps(double.stats()), content_type="application/json")
        elif self.path == "/double/streams":
            stored = {labels: [[str(ts), line, dict(meta)] for ts, line, meta in entries]
                      for labels, entries in double.streams().items()}
            self._answer(200, json.dumps(stored), content_type="application/json")
        else:
            self._answer(404, "404 page not found")

    def do_POST(self) -> None:
        double = self.server.double
        path = self.path.split("?")[0]
        if path not in ("/loki/api/v1/push", "/api/prom/push"):
            self._read_body()
            self._answer(404, "404 page not found")
            return
        body = self._read_body()
        if double._faults and double._faults[0][0] == "reset":
            double._faults.popleft()
            # RST instead of an answer: SO_LINGER with a zero timeout, then close
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            with double._lock:
                double.statuses[-1] += 1
            return
        if double._delay:
            time.sleep(double._delay)
        status, text, extra = double.handle(path, dict(self.headers.items()), body)
        self._answer(status, text, extra)
