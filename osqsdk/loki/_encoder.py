"""The encoder process: labels and encodes batches away from the process osqueryd calls.

Python runs one thread at a time in a process. Parsing, labelling, sorting and encoding a
batch of a thousand result lines takes the sending thread ten milliseconds or more, during
which the thread answering osqueryd waits its turn. With ``encoder_process`` on, the
sending thread hands each batch to this helper (``main()`` below in an isolated ``python
-I``, a child of the logger fed through a pipe) and gets back the request body, so that the
logger's own process spends its time on osqueryd's calls and on the spool.

The child holds nothing that is not also in the spool: a batch it cannot encode is
encoded in the parent; when it fails or is killed, so is that batch and every one after
it; when the parent dies, the child reads end-of-file and exits. Frames both ways are
``<u32 header><u32 body>`` lengths, a JSON header, then that many body bytes.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any, Protocol

import orjson

from osqsdk.loki._batch import Dropped, prepare_batch
from osqsdk.loki._config import LokiConfig
from osqsdk.loki._encode import encode
from osqsdk.loki._labels import Entry, Mapper
from osqsdk.loki._metrics import DropReason

__all__ = ["Encoded", "EncoderBatchError", "EncoderError", "EncoderProcess"]

_FRAME = struct.Struct("<II")
# How the child starts: ``python -I -c _BOOTSTRAP <sys.path entries of the parent>``.
_BOOTSTRAP = ("import sys; sys.path[:0] = sys.argv[1:]; "
              "from osqsdk.loki._encoder import main; sys.exit(main())")
#: The variable that tells a built .ext which role to start in (extension/_frozen.py).
FROZEN_ROLE_ENV = "OSQSDK_FROZEN_ROLE"
# What the child needs of the configuration: the mapping and the time limits.
_SETTINGS = ("static_labels", "labels", "structured_metadata", "max_age", "max_future",
             "encoding", "compression")


class EncoderError(Exception):
    """The encoder process failed or went away."""


class EncoderBatchError(EncoderError):
    """The encoder process answered that it could not encode this batch (it goes on)."""


class Encoded:
    """A batch as the encoder process returned it."""

    __slots__ = ("body", "dropped", "entries", "headers", "nbytes", "unreadable")

    def __init__(self, body: bytes | None, headers: dict[str, str], entries: int, nbytes: int,
                 dropped: list[Dropped], unreadable: list[str]) -> None:
        self.body, self.headers, self.entries = body, headers, entries
        self.nbytes, self.dropped, self.unreadable = nbytes, dropped, unreadable


def _frame(header: Any, body: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    return _FRAME.pack(len(head), len(body)) + head + body


class _Reader(Protocol):
    """What frames are read from: a binary stream, or a _TimedReader."""

    def read(self, size: int, /) -> bytes | None: ...


def _read_exact(stream: _Reader, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("the other end closed the pipe")
    return data


def _read_frame(stream: _Reader) -> tuple[Any, bytes]:
    head_len, body_len = _FRAME.unpack(_read_exact(stream, _FRAME.size))
    header = orjson.loads(_read_exact(stream, head_len))
    return header, _read_exact(stream, body_len) if body_len else b""


class _TimedReader:
    """Reads from a pipe, each read waiting at most ``timeout`` seconds."""

    def __init__(self, fd: int, timeout: float) -> None:
        self._fd, self._timeout = fd, timeout

    def read(self, size: int) -> bytes:
        parts, left = [], size
        while left:
            ready, _, _ = select.select([self._fd], [], [], self._timeout)
            if not ready:
                raise EOFError(f"no answer within {self._timeout:.0f}s")
            chunk = os.read(self._fd, min(left, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)


def _entry(item: Sequence[Any]) -> Entry:
    labels, ts, line, metadata = item
    # int(): a dropped entry's time comes as text (it may be past what JSON numbers carry)
    return Entry(labels, int(ts), line, tuple(map(tuple, metadata)) if metadata else ())


class EncoderProcess:
    """The parent's handle on one encoder process (used by one thread at a time)."""

    def __init__(self, config: Any, timeout: float = 10.0) -> None:
        if not sys.executable:
            raise EncoderError("no Python interpreter to start the encoder process with")
        # No OSQSDK_LOKI_* variables: the child needs no credentials.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OSQSDK_LOKI_")}
        if getattr(sys, "frozen", False):
            # A built .ext (osqsdk extension build): sys.executable is the artifact itself,
            # which runs main() below when started in this role (extension/_frozen.py).
            argv = [sys.executable]
            env[FROZEN_ROLE_ENV] = "loki-encoder"
        else:
            # Isolated (-I): no PYTHON* variables, user site or working directory on the
            # path (under osqueryd this runs as root); osqsdk comes from where this process
            # got it.
            argv = [sys.executable, "-I", "-c", _BOOTSTRAP, *[p for p in sys.path if p]]
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          env=env, cwd="/", close_fds=True)
        except (OSError, ValueError, TypeError) as exc:
            raise EncoderError(f"cannot start the encoder process: {exc}") from None
        self._timeout = timeout
        # stdin=PIPE and stdout=PIPE: Popen has opened both
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._reader = _TimedReader(self._proc.stdout.fileno(), timeout)
        try:
            os.set_blocking(self._stdin.fileno(), False)
            settings = {name: getattr(config, name) for name in _SETTINGS}
            for name in ("static_labels", "labels", "structured_metadata"):
                settings[name] = dict(settings[name])
            self._send(settings)
        except BaseException:
            self.kill()
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, header: Any) -> None:
        view = memoryview(_frame(header))
        try:
            fd = self._stdin.fileno()
            while view:
                _, ready, _ = select.select([], [fd], [], self._timeout)
                if not ready:
                    raise EncoderError(f"the encoder process took no input for "
                                       f"{self._timeout:.0f}s")
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:  # the pipe filled up since select()
                    continue
        except (OSError, ValueError) as exc:  # a broken pipe, or closed already
            raise EncoderError(f"the encoder process is gone ({exc})") from None

    def encode(self, batch: Sequence[tuple[int, Entry, int]], now_ns: int) -> Encoded:
        """Label, filter, sort and encode ``batch`` as ``prepare_batch`` and ``encode`` do
        here. Raises EncoderError when the process cannot answer."""
        try:
            self._send({"now_ns": now_ns, "batch": [
                (seq, e.labels, e.ts_ns, e.line, e.metadata, size) for seq, e, size in batch]})
        except TypeError as exc:  # orjson: text it cannot encode; nothing was sent
            raise EncoderBatchError(f"the batch cannot be sent to the encoder process "
                                    f"({exc})") from None
        try:
            header, body = _read_frame(self._reader)
        except (OSError, EOFError, ValueError) as exc:
            raise EncoderError(f"no answer from the encoder process ({exc})") from None
        if "error" in header:
            raise EncoderBatchError(f"the encoder process could not encode a batch: "
                                    f"{header['error']}")
        try:
            dropped = [Dropped(DropReason(reason), _entry(entry), why)
                       for reason, entry, why in header["dropped"]]
            return Encoded(body if header["entries"] else None, dict(header["headers"]),
                           int(header["entries"]), int(header["nbytes"]), dropped,
                           [str(m) for m in header["unreadable"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise EncoderError(f"the encoder process answered something else than a batch "
                               f"({type(exc).__name__}: {exc})") from None

    def kill(self) -> None:
        """Stop the child now (a caller waiting for its answer gets EncoderError)."""
        try:
            self._proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        """Let the child exit (end of its input) and reap it."""
        try:
            self._stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def main() -> int:
    """The child: read batches until end of input, answer each with its request body."""
    # Ctrl-C reaches the whole process group; the parent decides when this one stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Frames go out on a copy of stdout; anything else printed goes to stderr.
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    stdin = sys.stdin.buffer
    try:
        config = LokiConfig(url="http://encoder.invalid", **_read_frame(stdin)[0])
    except EOFError:
        return 0
    mapper = Mapper(config)
    while True:
        try:
            request, _ = _read_frame(stdin)
        except EOFError:
            return 0
        try:
            batch = [(seq, _entry(entry), size)
                     for seq, *entry, size in request["batch"]]
            prepared = prepare_batch(mapper, config, batch, request["now_ns"])
            if prepared.items:
                body = encode(prepared.items, config.encoding, config.compression)
                data, headers, entries = body.data, dict(body.headers), body.entries
            else:
                data, headers, entries = b"", {}, 0
            header = {"entries": entries, "nbytes": prepared.nbytes, "headers": headers,
                      "dropped": [(d.reason.value, (d.entry.labels, str(d.entry.ts_ns),
                                                     d.entry.line, d.entry.metadata), d.why)
                                  for d in prepared.dropped],
                      "unreadable": prepared.unreadable}
            frame = _frame(header, data)
        except Exception as exc:  # answered, so that the parent encodes this one itself
            frame = _frame({"error": f"{type(exc).__name__}: {exc}"})
        try:
            stdout.write(frame)
            stdout.flush()
        except OSError:  # the parent is gone
            return 0


