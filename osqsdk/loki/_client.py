"""LokiClient: spool entries, batch them per stream, push them with retries.

One worker thread owns the sending side: it reads the spool oldest first, fills a batch up
to ``batch_bytes`` or for at most ``batch_wait`` seconds after its first entry (promtail's
rule, docs/loki.md §4.1), sorts each stream's entries by time, pushes, and acknowledges the
batch in the spool once Loki has answered 2xx or the entries were deliberately dropped.
Callers only append to the spool, so a slow or absent Loki never holds them up. With
``encoder_process`` on (the logger plugin's default), labelling and encoding a batch happen
in a child process (``_encoder``), so that the callers' process keeps its time for them.

Retry policy (docs/loki.md §2.6, §4.1): 429, 5xx and transport errors are retried with
exponential backoff and jitter from ``min_backoff`` to ``max_backoff``, honouring
``Retry-After``; every retry logs a warning. Other 4xx are final: a 400 or 413 for a
request of several entries is split in halves and each half sent again, so that exactly
the entries Loki refuses are dropped and counted (Loki stores the valid part of a request
it answers 400, and drops exact duplicates, so resending that part is safe: docs/loki.md §2.1,
§2.5); a drop logs an error.

Delivery guarantee: at least once. An entry is resent only as the same bytes (same
timestamp, line and metadata), which Loki stores once.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import queue
import random
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import urllib3

from osqsdk._version import __version__
from osqsdk.loki._batch import RAW, Dropped, entry_bytes, prepare_batch
from osqsdk.loki._config import LokiConfig
from osqsdk.loki._encode import Body, encode
from osqsdk.loki._encoder import EncoderBatchError, EncoderError, EncoderProcess
from osqsdk.loki._errors import LokiConfigError
from osqsdk.loki._labels import Entry, Mapper, format_labels, sanitize_text
from osqsdk.loki._metrics import DropReason, LokiMetrics, MutateReason, Settlement
from osqsdk.loki._spool import Spool

__all__ = ["LokiClient"]

log = logging.getLogger("osqsdk.loki")

_NS = 1_000_000_000
# promtail and Alloy log at most the first line and 1 KiB of an error body (docs/loki.md §1.8).
MAX_ERROR_BODY = 1024
TRUNCATED_MARK = "…[truncated by osqsdk]"
# Splitting a refused request costs requests; past this many per batch, what is left of a
# request Loki refuses is dropped whole.
MAX_SPLIT_REQUESTS = 128
# Retry-After is honoured even above max_backoff, but not beyond this.
MAX_RETRY_AFTER_S = 300.0


# Statuses that refuse the entries themselves; every other failure is retried.
_ENTRY_REJECTED = frozenset({400, 413})
# What a person has to change when Loki keeps answering this (the entries wait in the spool).
_WHAT_TO_FIX = {
    401: "Loki refuses the credentials: check username/password_file or bearer_token_file; "
         "the entries wait in the spool",
    403: "Loki (or a proxy) forbids this client or tenant: check the tenant and the "
         "credentials' rights; the entries wait in the spool",
    404: "no push endpoint at this URL: check url (and any reverse-proxy path); the entries "
         "wait in the spool",
    405: "this URL does not take POST: check url; the entries wait in the spool",
    407: "a proxy wants credentials; the entries wait in the spool",
}


class _Aborted(Exception):
    """abort() was called while a batch was being sent."""


# A batch's streams, or a function giving them (batches the encoder process encoded)
Streams = list[tuple[str, list[Entry]]] | Callable[[], list[tuple[str, list[Entry]]]]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _first_line(data: bytes) -> str:
    text = data[:MAX_ERROR_BODY].decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


def make_pool(config: LokiConfig) -> Any:
    """A keep-alive urllib3 pool for the push URL, TLS verified unless told otherwise."""
    options: dict[str, Any] = {
        "maxsize": 2, "block": False, "retries": False,
        "timeout": urllib3.Timeout(connect=min(config.timeout, 10.0), read=config.timeout),
    }
    if config.url.startswith("https:"):
        if config.insecure_skip_verify:
            options.update(cert_reqs="CERT_NONE", assert_hostname=False)
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS certificate verification of %s is OFF (insecure_skip_verify)",
                        config.redacted_url())
        else:
            options.update(cert_reqs="CERT_REQUIRED", ca_certs=config.ca_file)
        if config.cert_file:
            options.update(cert_file=config.cert_file, key_file=config.key_file)
        _check_tls_files(config)
    return urllib3.connection_from_url(config.url, **options)


def _check_tls_files(config: LokiConfig) -> None:
    """Load ca_file, cert_file and key_file now: a missing or broken file is a configuration
    error at start, not a failure retried forever at every push."""
    import ssl

    context = ssl.create_default_context()
    for name in ("ca_file", "cert_file"):
        if getattr(config, name) is None:
            continue
        try:
            if name == "ca_file":
                context.load_verify_locations(config.ca_file)
            else:
                context.load_cert_chain(config.cert_file or "", config.key_file)
        except OSError as exc:  # ssl.SSLError is an OSError too
            detail = exc.strerror or getattr(exc, "reason", None) or type(exc).__name__
            raise LokiConfigError(f"{name}: cannot be used: {detail}", name) from None


class LokiClient:
    """Ship entries to Loki through a durable spool.

    ``push`` and ``push_entries`` return once the entries are in the spool. ``flush`` waits
    for what was pushed so far to be acknowledged, ``close`` drains for up to
    ``drain_timeout`` seconds and stops (what is left stays spooled for the next start);
    ``abort`` stops retrying at once. ``pool`` replaces the HTTP connection pool (anything
    with urllib3's ``urlopen``), the seam for tests.
    """

    def __init__(self, config: LokiConfig, *, metrics: LokiMetrics | None = None,
                 pool: Any = None, start: bool = True) -> None:
        if not config.spool_dir:
            raise LokiConfigError("spool_dir: the client needs a spool directory", "spool_dir")
        self.config = config
        self.metrics = metrics if metrics is not None else LokiMetrics()
        dropped_before = self.metrics.dropped_total()
        self.spool = Spool(config.spool_dir, max_bytes=config.spool_max_bytes,
                           segment_bytes=config.segment_bytes,
                           fsync_interval=config.fsync_interval,
                           memory_bytes=config.memory_tail_bytes,
                           on_drop=self.metrics.drop_locked)
        first_seq = self.spool.last_seq
        self.metrics.spool_max_bytes.set(config.spool_max_bytes)
        # received = the backlog (and what opening the spool counted as lost) + appended
        self.metrics.track_spool(
            self.spool.lock, lambda: self.spool.entries,
            lambda: self.spool.disk_bytes + self.spool.held_bytes,
            lambda: self.spool.last_seq - first_seq,
            self.spool.entries + self.metrics.dropped_total() - dropped_before)
        self._line_limit = config.max_line_bytes
        self._pool = pool if pool is not None else make_pool(config)
        self._path = urllib3.util.parse_url(config.url).request_uri
        self._headers = self._base_headers(config)
        self._stopping = threading.Event()
        self._aborted = threading.Event()
        self._pending: list[tuple[int, Entry, int]] = []
        self._split_budget = 0
        self._settling = Settlement()  # the batch the sender is delivering
        self._flushing = 0
        self._flush_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._metrics_server: Any = None
        self._encoder: EncoderProcess | None = None
        #: osquery records to Loki entries (labels cached), for lines spooled raw
        self.mapper = Mapper(config)
        self._thread = threading.Thread(target=self._run_batcher, name="osqsdk-loki-batcher",
                                        daemon=True)
        self._sender = threading.Thread(target=self._run_sender, name="osqsdk-loki-sender",
                                        daemon=True)
        if config.metrics_port is not None:
            try:
                self._metrics_server = self.metrics.serve(config.metrics_port,
                                                          config.metrics_addr)
            except OSError as exc:  # port in use, unknown address
                self.spool.close()
                raise LokiConfigError(
                    f"metrics_port: cannot serve metrics on {config.metrics_addr}:"
                    f"{config.metrics_port}: {exc.strerror or exc}", "metrics_port") from None
        if start:
            self.start()

    @staticmethod
    def _base_headers(config: LokiConfig) -> dict[str, str]:
        headers = {"User-Agent": f"osqsdk-loki/{__version__}", **config.headers}
        if config.tenant:
            headers["X-Scope-OrgID"] = config.tenant
        if config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {config.bearer_token.reveal()}"
        elif config.username is not None:
            password = config.password.reveal() if config.password is not None else ""
            token = base64.b64encode(f"{config.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    # -- accepting -----------------------------------------------------------------------
    def push(self, labels: Mapping[str, str] | str, line: str, ts_ns: int | None = None,
             metadata: Sequence[tuple[str, str]] = ()) -> int:
        """Spool one entry; ``labels`` is a mapping or a label string. Returns its seq."""
        if not isinstance(labels, str):
            labels = format_labels(labels)
        entry = Entry(labels, time.time_ns() if ts_ns is None else ts_ns, line,
                      tuple((k, sanitize_text(v)) for k, v in metadata) if metadata else ())
        if len(line) * 4 > self._line_limit:
            return self.push_entries((entry,))
        return self.spool.append_one(entry)

    def push_entries(self, entries: Sequence[Entry], *, subsecond: bool = False,
                     meta: bytes | None = None) -> int:
        """Spool entries (checked against max_line_bytes); returns the last seq."""
        limit = self.config.max_line_bytes
        if len(entries) == 1 and meta is None and len(entries[0].line) * 4 <= limit:
            return self.spool.append_one(entries[0], subsecond=subsecond)
        checked: Sequence[Entry] = entries
        for index, entry in enumerate(entries):
            if len(entry.line) * 4 > limit and len(entry.line.encode("utf-8")) > limit:
                checked = self._limit_lines(entries, index)
                break
        return self.spool.append(checked, subsecond=subsecond, meta=meta)

    def push_result_line(self, line: str) -> int:
        """Spool one of osqueryd's result or snapshot lines as it came and return its seq.

        Parsing it and choosing its labels wait until it is shipped, in the sending thread:
        the caller (osqueryd, waiting for the logger's answer) pays only for the write.
        A line that is not osquery's JSON is shipped with ``log_type="unparsed"``.
        """
        if len(line) * 4 <= self._line_limit:  # surely within max_line_bytes
            return self.spool.append_one(Entry(RAW, time.time_ns(), line))
        return self.push_entries((Entry(RAW, time.time_ns(), line),))

    def _limit_lines(self, entries: Sequence[Entry], start: int) -> list[Entry]:
        limit = self.config.max_line_bytes
        out = list(entries[:start])
        for entry in entries[start:]:
            raw = entry.line.encode("utf-8")
            if len(raw) <= limit:
                out.append(entry)
            elif self.config.line_too_long == "drop":
                self.metrics.drop(DropReason.LINE_TOO_LONG, 1, len(raw), intake=True)
                log.error("dropped a line of %d bytes for stream %s: over max_line_bytes=%d",
                          len(raw), entry.labels, limit)
            else:
                mark = TRUNCATED_MARK.encode("utf-8")
                cut = raw[:limit - len(mark)].decode("utf-8", "ignore")
                out.append(entry._replace(line=cut + TRUNCATED_MARK))
                self.metrics.mutated_entries.labels(MutateReason.LINE_TOO_LONG.value).inc()
                log.warning("truncated a line of %d bytes for stream %s to max_line_bytes=%d",
                            len(raw), entry.labels, limit)
        return out

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            if self.config.encoder_process and self._encoder is None:
                try:
                    self._encoder = EncoderProcess(self.config)
                except EncoderError as exc:
                    log.warning("%s; encoding batches in this process", exc)
            self._thread.start()
            self._sender.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Send what is spooled now (without waiting for batch_wait) and wait until it is
        acknowledged or dropped. Returns False on timeout."""
        with self._flush_lock:
            self._flushing += 1
        try:
            self.spool.wake()
            return self.spool.wait_acked(self.spool.last_seq, timeout)
        finally:
            with self._flush_lock:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Send what is spooled for up to ``timeout`` seconds (default ``drain_timeout``),
        then stop. Returns True when nothing was left. Unsent entries stay in the spool."""
        timeout = self.config.drain_timeout if timeout is None else timeout
        self._stopping.set()
        drained = self.flush(timeout) if self._thread.is_alive() else self.spool.entries == 0
        self.abort()
        return drained

    def abort(self) -> None:
        """Stop now: no more retries; what is not acknowledged stays in the spool."""
        self._stopping.set()
        self._aborted.set()
        encoder = self._encoder
        if encoder is not None:  # no more batches: a batch being encoded ends now
            encoder.kill()
        if not self.spool.closed:
            self.spool.wake()
        for thread in (self._thread, self._sender):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(self.config.timeout + 5)
        if not self._thread.is_alive():  # else the batcher closes it on its way out
            encoder, self._encoder = self._encoder, None
            if encoder is not None:
                encoder.close()
        self.spool.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    def __enter__(self) -> LokiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------
    # Two threads: the batcher reads the spool and encodes the next request while the
    # sender waits for Loki's answer to the current one; a queue of one hands them over,
    # so at most two batches are in memory and acknowledgements stay in spool order.
    def _run_batcher(self) -> None:
        # Between batches this thread also counts the result rows the logger handed over
        # (osquery_results_total), so that osqueryd's calls seldom wait for that.
        count_rows = self.metrics.results.count_pending
        try:
            while not self._aborted.is_set():
                batch = self._collect()
                count_rows(wait=False)
                if not batch:
                    continue
                prepared = self._prepare(batch)
                while not self._aborted.is_set():
                    count_rows(wait=False)
                    try:
                        self._queue.put(prepared, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception:  # never die silently: the spool keeps the entries
            log.exception("the Loki batcher stopped on an unexpected error; entries stay in "
                          "the spool %s", self.spool.directory)
            self._aborted.set()
        finally:
            encoder, self._encoder = self._encoder, None
            if encoder is not None:
                encoder.close()

    def _run_sender(self) -> None:
        try:
            while not self._aborted.is_set():
                try:
                    last_seq, streams, body, nbytes, settlement = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                # sent and dropped entries are counted when the spool takes the batch off
                # its books, in one step with it (docs/loki.md §8)
                self._settling = settlement
                if body is not None:
                    self._split_budget = MAX_SPLIT_REQUESTS
                    try:
                        self._deliver(streams, body, nbytes)
                    except _Aborted:
                        return
                self.spool.ack(last_seq, partial(self.metrics.settle_locked, settlement))
        except Exception:
            log.exception("the Loki sender stopped on an unexpected error; entries stay in "
                          "the spool %s", self.spool.directory)
            self._aborted.set()

    def _collect(self) -> list[tuple[int, Entry, int]]:
        limit = self.config.batch_bytes
        wait = self.config.batch_wait
        batch: list[tuple[int, Entry, int]] = []
        size = 0
        started = 0.0
        while not self._aborted.is_set():
            if self._pending:
                got, self._pending = self._pending, []
            else:
                hurry = self._stopping.is_set() or self._flushing > 0
                if batch:
                    remaining = started + wait - time.monotonic()
                    if remaining <= 0:
                        return batch
                    got = self.spool.read(limit - size, 0.0 if hurry else remaining,
                                          wait_bytes=limit - size)
                else:
                    # an empty batch: look again at least every batch_wait/10 (promtail's
                    # tick), so that stop requests are seen
                    got = self.spool.read(limit, max(0.01, wait / 10))
                if not got:
                    if not batch or hurry or time.monotonic() >= started + wait:
                        return batch
                    continue
            for index, item in enumerate(got):
                if batch and size + item[2] > limit:
                    self._pending = got[index:]
                    return batch
                if not batch:
                    started = time.monotonic()
                batch.append(item)
                size += item[2]
            if size >= limit:
                return batch
        return batch

    def _prepare(self, batch: list[tuple[int, Entry, int]]) -> tuple[
            int, Streams, Body | None, int, Settlement]:
        config = self.config
        settlement = Settlement()
        now_ns = time.time_ns()
        encoder = self._encoder
        if encoder is not None:
            try:
                encoded = encoder.encode(batch, now_ns)
            except EncoderBatchError as exc:  # this batch only: encoded here
                log.warning("%s; encoded in this process", exc)
            except EncoderError as exc:
                self._encoder = None
                encoder.kill()
                encoder.close()
                if not self._aborted.is_set():
                    log.warning("%s; encoding batches in this process from now on", exc)
            else:
                self._report(encoded.dropped, encoded.unreadable, settlement)
                body = (Body(encoded.body, encoded.headers, encoded.entries)
                        if encoded.body is not None else None)

                def streams() -> list[tuple[str, list[Entry]]]:
                    # only when Loki refuses the request (to split it or name what is
                    # dropped): the same streams again, here
                    return prepare_batch(self.mapper, config, batch, now_ns).items

                return batch[-1][0], streams, body, encoded.nbytes, settlement
        prepared = prepare_batch(self.mapper, config, batch, now_ns)
        self._report(prepared.dropped, prepared.unreadable, settlement)
        items = prepared.items
        body = encode(items, config.encoding, config.compression) if items else None
        return batch[-1][0], items, body, prepared.nbytes, settlement

    def _report(self, dropped: list[Dropped], unreadable: list[str],
                settlement: Settlement) -> None:
        for message in unreadable:
            log.error("%s", message)
        for reason, entry, why in dropped:
            self._drop([entry], reason, why, settlement)

    def _deliver(self, streams: Streams, body: Body | None = None,
                 nbytes: int | None = None) -> None:
        attempt = 0
        if body is None:
            body = encode(_resolve(streams), self.config.encoding, self.config.compression)
        while True:
            status, text, retry_after = self._post(body)
            count = body.entries
            if 200 <= status < 300:
                self._settling.sent += count
                self.metrics.sent_bytes.inc(
                    nbytes if nbytes is not None
                    else sum(entry_bytes(e) for _, es in _resolve(streams) for e in es))
                self.metrics.last_success.set(time.time())
                if attempt:
                    log.info("Loki accepted a batch of %d entries after %d retries", count,
                             attempt)
                return
            if status in (400, 413) and count > 1 and self._split_budget > 1:
                # Find out which entries Loki refuses: it stored the rest of a 400 already
                # and drops exact duplicates (docs/loki.md §2.1, §2.5); a 413 stored nothing.
                self._split_budget -= 2
                first, second = _halves(_resolve(streams))
                self._deliver(first)
                self._deliver(second)
                return
            if status in _ENTRY_REJECTED:
                # Loki refused these entries themselves: sending them again cannot succeed
                reason = DropReason.REJECTED if status == 400 else DropReason.TOO_LARGE
                self._drop([e for _, es in _resolve(streams) for e in es], reason,
                           f"Loki answered {status}: {text}")
                return
            # Anything else is the endpoint, the credentials or the server, not the entries:
            # they stay in the spool and are retried (a credential rotation or an ingress
            # mistake must not lose data; promtail drops them, grafana/loki#11593).
            reason = (DropReason.RATE_LIMITED if status == 429 else
                      DropReason.NETWORK_ERROR if status < 0 else
                      DropReason.SERVER_ERROR if status >= 500 else
                      DropReason.UNAUTHORIZED if status in (401, 403, 407) else
                      DropReason.CLIENT_ERROR)
            if status == 429 and self.config.drop_rate_limited:
                self._drop([e for _, es in _resolve(streams) for e in es], reason,
                           f"Loki answered 429 and drop_rate_limited is set: {text}")
                return
            attempt += 1
            if self.config.max_retries and attempt >= self.config.max_retries:
                self._drop([e for _, es in _resolve(streams) for e in es], reason,
                           f"no retries left after {attempt} attempts; last: {text}")
                return
            delay = self._backoff(attempt, retry_after)
            self.metrics.retries.inc()
            self.metrics.retried_entries.inc(count)
            fix = _WHAT_TO_FIX.get(status, "")
            log.warning("push of %d entries failed (%s); retry %d in %.2fs%s", count,
                        f"{status}: {text}" if status > 0 else text, attempt, delay,
                        f"; {fix}" if fix else "")
            if self._aborted.wait(delay):
                raise _Aborted()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # A float power with a capped exponent: retrying forever must not overflow.
        base = min(self.config.max_backoff,
                   self.config.min_backoff * 2.0 ** min(attempt - 1, 1000))
        delay = min(self.config.max_backoff, random.uniform(base, 2 * base))
        if retry_after is not None:  # the server's wish wins over our backoff, up to 5 min
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
        return delay

    def _drop(self, entries: Sequence[Entry], reason: DropReason, why: str,
              settlement: Settlement | None = None) -> None:
        """Log a drop now; its entries are counted when the batch is acknowledged."""
        nbytes = sum(entry_bytes(e) for e in entries)
        (settlement or self._settling).dropped.append((reason.value, len(entries)))
        self.metrics.dropped_bytes.labels(reason.value).inc(nbytes)
        streams = sorted({e.labels for e in entries})
        log.error("dropped %d entries (%s) of stream%s %s: %s", len(entries), reason.value,
                  "s" if len(streams) > 1 else "", ", ".join(streams[:3])
                  + (" ..." if len(streams) > 3 else ""), why)

    def _post(self, body: Body) -> tuple[int, str, float | None]:
        headers = dict(self._headers)
        headers.update(body.headers)
        started = time.perf_counter()
        try:
            response = self._pool.urlopen("POST", self._path, body=body.data, headers=headers,
                                          retries=False, redirect=False, preload_content=False,
                                          assert_same_host=False)
            try:
                status = response.status
                data = response.read(MAX_ERROR_BODY) if not 200 <= status < 300 else b""
                retry_after = _retry_after(response.headers.get("Retry-After"))
                response.drain_conn()
            finally:
                response.release_conn()
            text = self.config.scrub(_first_line(data))  # a proxy may echo the request
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # urllib3's messages carry the request URL, query string included
            status, text, retry_after = -1, f"no answer from {self.config.redacted_url()}: " \
                f"{type(exc).__name__}: {self.config.scrub(_describe(exc))}", None
        self.metrics.request_duration.labels(str(status)).observe(time.perf_counter() - started)
        return status, text, retry_after


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    return text[:300]


def _resolve(streams: Streams) -> list[tuple[str, list[Entry]]]:
    return streams() if callable(streams) else streams


def _halves(streams: list[tuple[str, list[Entry]]]) -> tuple[list[tuple[str, list[Entry]]],
                                                             list[tuple[str, list[Entry]]]]:
    total = sum(len(entries) for _, entries in streams)
    half = total // 2
    first: list[tuple[str, list[Entry]]] = []
    second: list[tuple[str, list[Entry]]] = []
    taken = 0
    for labels, entries in streams:
        if taken >= half:
            second.append((labels, entries))
        elif taken + len(entries) <= half:
            first.append((labels, entries))
            taken += len(entries)
        else:
            cut = half - taken
            first.append((labels, entries[:cut]))
            second.append((labels, entries[cut:]))
            taken = half
    return first, second

