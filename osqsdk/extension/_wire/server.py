"""A threaded Thrift server for osquery's two services, on a unix socket.

Why not thrift's own TServer classes: osqueryd opens one connection per call and pings on
another connection first (docs/protocol.md §1.1), so the server must answer pings while a slow
``generate`` runs (a bounded pool, not TSimpleServer), stop on request and remove its
socket file (TThreadPoolServer's workers never return), and refuse replies that osqueryd
could not read (Thrift's 100 MiB default message limit) with a status instead of a reply
osqueryd fails on. Encoding and decoding are thrift's C codec (TBinaryProtocolAccelerated).
"""

from __future__ import annotations

import ctypes
import logging
import operator
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from thrift.protocol import fastbinary
from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolAccelerated
from thrift.protocol.TProtocol import TProtocolException
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import CReadableTransport, TMemoryBuffer, TTransportException

from osqsdk.extension._wire import transport
from osqsdk.extension._wire._gen import Extension, ExtensionManager
from osqsdk.extension._wire._gen.ttypes import ExtensionResponse, ExtensionStatus

__all__ = ["MAX_REPLY_BYTES", "ThriftServer"]

log = logging.getLogger("osqsdk.server")

# osqueryd links Thrift 0.17, whose TConfiguration caps a message at 100 MiB: a bigger reply
# makes osqueryd's read fail ("MaxMessageSize reached", osquery-go #134).
MAX_REPLY_BYTES = 100 * 1024 * 1024
# Limits on what a peer may make us allocate: one string (a logger line or a config) and one
# container (the entries of a request map or registry). Requests from osqueryd are small maps.
MAX_STRING_BYTES = 100 * 1024 * 1024
MAX_CONTAINER_ITEMS = 1 << 20
_MAX_RECV = 1 << 20
_ALWAYS_ANSWERED = frozenset({"ping", "shutdown"})  # never wait for a worker
_LARGE = 8 << 20  # bytes of one request past which memory is returned after it
_READ_BUFFER = 64 * 1024
# Replies up to this size go out in one send (header and body joined).
_COALESCE = 64 * 1024
_I32 = struct.Struct("!i")
_HEAD = struct.Struct("!ii")
_REPLY_PREFIX: dict[str, bytes] = {}
_decode = fastbinary.decode_binary


@dataclass(frozen=True)
class _Method:
    args: type
    spec: list[Any]      # [args, args.thrift_spec]: what thrift's C decoder reads it by
    result: type | None  # None: oneway
    fields: tuple[str, ...]
    handler: Callable[..., Any]
    arguments: Callable[[Any], tuple[Any, ...]]  # the handler's arguments from args


class _Reader(CReadableTransport):
    """The read side of one connection, in the shape thrift's C decoder reads from.

    TBufferedTransport does the same through four Python calls per refill; a call from
    osqueryd arrives in one recv() and is read here in one.
    """

    cstringio_buf: BytesIO = BytesIO(b"")  # a plain attribute, where the base has a property

    def __init__(self, conn: socket.socket) -> None:
        self._recv = conn.recv
        self.cstringio_buf = BytesIO(b"")
        self.large = False  # a request of _LARGE bytes or more was read

    def _more(self, size: int) -> bytes:
        # never ask recv() for more than a chunk: it allocates what it is asked for
        data = self._recv(min(max(size, _READ_BUFFER), _MAX_RECV))
        if not data:
            raise TTransportException(TTransportException.END_OF_FILE, "peer closed")
        return data

    def read_exact(self, size: int) -> bytes:
        data = self.cstringio_buf.read(size)
        if len(data) < size:
            data = self.cstringio_refill(data, size).read(size)
        return data

    def cstringio_refill(self, partialread: bytes, reqlen: int) -> BytesIO:
        # chunks joined once: reading a request is linear in its size (a += loop was
        # quadratic: 99 MB took about 15 s)
        if reqlen >= _LARGE:
            self.large = True
        chunks = [partialread]
        have = len(partialread)
        while have < reqlen:
            chunk = self._more(reqlen - have)
            chunks.append(chunk)
            have += len(chunk)
        self.cstringio_buf = BytesIO(b"".join(chunks))
        return self.cstringio_buf

    # what TBinaryProtocol's Python methods use (skipping an unknown method's arguments)
    read = readAll = read_exact


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def _return_memory() -> None:
    """After a large request: hand glibc's freed arena memory back to the system, so that
    a burst of large calls does not leave the extension holding it."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _read_message_begin(reader: _Reader) -> tuple[str, int, int]:
    """TBinaryProtocol.readMessageBegin in two buffer reads instead of a dozen calls."""
    word, size = _HEAD.unpack(reader.read_exact(8))
    if word < 0:  # strict: VERSION_1 | type, name length, name, seqid (what osqueryd sends)
        if word & TBinaryProtocol.VERSION_MASK != TBinaryProtocol.VERSION_1:
            raise TProtocolException(TProtocolException.BAD_VERSION,
                                     f"bad version in readMessageBegin: {word}")
        if size < 0 or size > MAX_STRING_BYTES:
            raise TProtocolException(TProtocolException.SIZE_LIMIT, "method name too long")
        rest = reader.read_exact(size + 4)
        return rest[:size].decode("utf-8"), word & TBinaryProtocol.TYPE_MASK, \
            _I32.unpack_from(rest, size)[0]
    # the old non-strict form: name length, name, type byte, seqid (4 bytes of it read)
    if word > MAX_STRING_BYTES:
        raise TProtocolException(TProtocolException.SIZE_LIMIT, "method name too long")
    rest = _I32.pack(size) + reader.read_exact(word + 1)
    return rest[:word].decode("utf-8"), rest[word], _I32.unpack_from(rest, word + 1)[0]


def _one_argument(field: str) -> Callable[[Any], tuple[Any, ...]]:
    def arguments(args: Any) -> tuple[Any, ...]:
        return (getattr(args, field),)
    return arguments


def _no_arguments(args: Any) -> tuple[Any, ...]:
    return ()


def _methods(service: str, handler: object) -> dict[str, _Method]:
    names = ["ping", "call", "shutdown"]
    modules = {name: Extension for name in names}
    if service == "ExtensionManager":
        extra = ["extensions", "options", "registerExtension", "deregisterExtension", "query",
                 "getQueryColumns"]
        names += extra
        modules.update({name: ExtensionManager for name in extra})
    table = {}
    for name in names:
        module = modules[name]
        args = getattr(module, f"{name}_args")
        fields = tuple(spec[2] for spec in args.thrift_spec if spec)
        arguments: Callable[[Any], tuple[Any, ...]]
        if len(fields) > 1:
            arguments = operator.attrgetter(*fields)
        elif fields:
            arguments = _one_argument(fields[0])
        else:
            arguments = _no_arguments
        table[name] = _Method(args, [args, args.thrift_spec],
                              getattr(module, f"{name}_result"), fields,
                              getattr(handler, name), arguments)
    return table


class _ConnectionSocket(TSocket):
    """A TSocket around an already accepted connection."""

    def __init__(self, conn: socket.socket) -> None:
        super().__init__()
        self.handle = conn


def _escape_surrogates(response: ExtensionResponse) -> None:
    # Text from os.listdir() and friends carries undecodable bytes as lone surrogates
    # (PEP 383); Thrift's UTF-8 encoder refuses them. Send the original bytes instead.
    def fix(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return value.encode("utf-8", "surrogateescape")
        return value

    response.response = [{fix(k): fix(v) for k, v in row.items()}
                         for row in response.response or ()]
    if response.status is not None and response.status.message is not None:
        response.status.message = fix(response.status.message)


class _Acceptors:
    """Up to ``size`` threads that each accept a connection and serve it themselves.

    osqueryd opens two connections per call (a ping probe, then the call; docs/protocol.md §1.1):
    handing each from an accept thread to a worker cost two thread wake-ups per connection.
    Here the thread that accepts serves; when it was the last one waiting in accept(), it
    starts another (up to ``size``), so pings are answered while a slow call runs.
    Connections beyond that wait in the listen backlog.
    """

    def __init__(self, listener: socket.socket, size: int,
                 serve: Callable[[socket.socket], None], stopped: threading.Event) -> None:
        self._listener = listener
        self._size = size
        self._serve = serve
        self._stopped = stopped
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # threads in accept()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._spawn()

    def _spawn(self) -> None:  # with self._lock held
        thread = threading.Thread(target=self._run, daemon=True,
                                  name=f"osqsdk-worker-{len(self._threads)}")
        self._threads.append(thread)
        self._waiting += 1
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": serve with those there are
            self._threads.pop()
            self._waiting -= 1
            log.error("could not start another worker thread: %s", exc)

    def _run(self) -> None:
        listener, stopped, lock = self._listener, self._stopped, self._lock
        while True:
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                if stopped.is_set() or listener.fileno() < 0:
                    with lock:
                        self._waiting -= 1
                    return
                log.error("accept() on %s failed: %s", listener.getsockname(), exc)
                time.sleep(0.1)  # EMFILE and friends: do not spin
                continue
            with lock:
                self._waiting -= 1
                if not self._waiting and len(self._threads) < self._size and not stopped.is_set():
                    self._spawn()
            if stopped.is_set():
                conn.close()
                return
            self._serve(conn)
            with lock:
                self._waiting += 1
            if stopped.is_set():
                with lock:
                    self._waiting -= 1
                return

    def wake(self, path: str) -> None:
        """Unblock every thread waiting in accept() (after ``stopped`` is set)."""
        with self._lock:
            waiting = self._waiting
        for _ in range(waiting):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    s.connect(path)
            except OSError:
                continue
        try:  # Linux also wakes accept() on a listening socket that is shut down
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class ThriftServer:
    """Serve one of osquery's Thrift services on a unix socket.

    ``handler`` has one method per Thrift method, taking the arguments by position.
    ``max_workers`` bounds the handler calls in progress (a slow plugin holds one), except
    ``ping`` and ``shutdown``, which are always answered at once; ``max_connections``
    bounds the threads that accept and read connections, so that idle or slow clients hold
    a thread but never a worker. ``None`` for both gives a thread per connection and no
    bound (the manager double, whose clients keep connections open).
    """

    def __init__(
        self,
        path: str,
        handler: object,
        *,
        service: str = "Extension",
        max_workers: int | None = 32,
        max_connections: int | None = 512,
        max_pending: int = 256,
        idle_timeout: float | None = 30.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.path = path
        self._methods = _methods(service, handler)
        self._max_workers = max_workers
        self._max_connections = max_connections if max_workers is not None else None
        # Calls in progress; ping and shutdown are not counted: osqueryd's health check must
        # get its answer while every worker is busy (issue: 32 held connections silenced
        # the extension and osqueryd dropped it)
        self._calls = threading.BoundedSemaphore(max_workers) if max_workers else None
        self._max_pending = max_pending
        self._idle_timeout = idle_timeout
        self._max_reply = max_reply_bytes
        self._listener: socket.socket | None = None
        self._pool: _Acceptors | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()  # open connections
        self._busy: set[socket.socket] = set()   # connections with a call in progress
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        # id(value) -> (value, {method: encoded result}): answers encoded once (constant())
        self._constants: dict[int, tuple[Any, dict[str, bytes]]] = {}

    def constant(self, value: object) -> None:
        """Declare that ``value``, when a handler returns it, never changes: its reply is
        encoded once and reused (the plain OK answer most logger calls get)."""
        self._constants[id(value)] = (value, {})

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Bind the socket (owner-only) and start accepting connections."""
        self._listener = transport.listen(self.path, backlog=self._max_pending)
        if self._max_connections:
            self._pool = _Acceptors(self._listener, self._max_connections, self._serve,
                                    self._stopped)
            self._pool.start()
            return
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._accept_loop, name="osqsdk-accept", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let calls in progress finish for up to ``grace`` seconds, close
        every connection and remove the socket file. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(grace)
        if self._pool is not None:
            self._pool.wake(self.path)
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                busy = bool(self._busy)
                conns = list(self._conns - self._busy) if busy else list(self._conns)
            for conn in conns:  # idle ones: wake their reader so the worker exits
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if not busy or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        with self._lock:
            leftover = list(self._conns)
        for conn in leftover:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._pool is not None:
            self._pool.join(max(0.1, deadline - time.monotonic()))
        if self._listener is not None:
            self._listener.close()
            try:
                if os.path.exists(self.path):
                    os.unlink(self.path)
            except OSError as exc:
                log.warning("could not remove socket %s: %s", self.path, exc)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    @property
    def running(self) -> bool:
        started = self._thread is not None or self._pool is not None
        return started and not self._stopped.is_set()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopped.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self._listener:
                        return
                    try:
                        conn, _ = self._listener.accept()
                    except OSError:
                        continue
                    self._dispatch_connection(conn)

    def _dispatch_connection(self, conn: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(conn,), daemon=True,
                         name="osqsdk-conn").start()

    # -- one connection ----------------------------------------------------------------
    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
        try:
            if self._idle_timeout is not None:
                # A kernel timeout on a blocking socket, not socket.settimeout(): Python
                # implements the latter with non-blocking I/O and a poll() per chunk, which
                # costs a large reply a dozen wakeups.
                seconds = int(self._idle_timeout)
                micros = int((self._idle_timeout - seconds) * 1e6)
                timeval = struct.pack("ll", seconds, micros)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
            reader = _Reader(conn)
            iprot = TBinaryProtocolAccelerated(
                reader, string_length_limit=MAX_STRING_BYTES,
                container_length_limit=MAX_CONTAINER_ITEMS)
            busy = self._busy
            while not self._stopped.is_set():
                try:
                    name, mtype, seqid = _read_message_begin(reader)
                except (TTransportException, OSError):
                    break  # peer closed (osqueryd closes after every call) or idled out
                busy.add(conn)  # set.add/discard are atomic; stop() reads a copy
                try:
                    header, body = self._process(iprot, name, mtype, seqid)
                    if len(body) < _COALESCE:
                        conn.sendall(header + body)  # one send for the usual small reply
                    else:
                        conn.sendall(header)
                        conn.sendall(body)
                finally:
                    busy.discard(conn)
                    if reader.large:
                        reader.large = False
                        reader.cstringio_buf = BytesIO(b"")
                        _return_memory()
        except (TTransportException, OSError) as exc:
            log.debug("connection on %s ended: %s", self.path, exc)
        except Exception:  # a malformed message must not take the server down
            log.exception("dropping a connection on %s after a protocol error", self.path)
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._busy.discard(conn)
            conn.close()

    def _process(self, iprot: TBinaryProtocolAccelerated, name: str, mtype: int,
                 seqid: int) -> tuple[bytes, bytes]:
        method = self._methods.get(name)
        if method is None or mtype not in (TMessageType.CALL, TMessageType.ONEWAY):
            iprot.skip(TType.STRUCT)
            iprot.readMessageEnd()
            error = TApplicationException(TApplicationException.UNKNOWN_METHOD,
                                          f"Unknown function {name}")
            return self._encode(name, TMessageType.EXCEPTION, seqid, error), b""
        args = method.args()
        _decode(args, iprot, method.spec)  # what args.read(iprot) ends up calling
        limit = self._calls if name not in _ALWAYS_ANSWERED else None
        try:
            if limit is None:
                value = method.handler(*method.arguments(args))
            else:
                with limit:
                    value = method.handler(*method.arguments(args))
        except Exception as exc:
            log.exception("handler for %s failed", name)
            error = TApplicationException(TApplicationException.INTERNAL_ERROR,
                                          f"{name} failed: {type(exc).__name__}: {exc}")
            return self._encode(name, TMessageType.EXCEPTION, seqid, error), b""
        if mtype == TMessageType.ONEWAY:
            return b"", b""
        constant = self._constants.get(id(value))
        if constant is not None and constant[0] is value:
            body = constant[1].get(name)
            if body is not None:
                return self._reply_header(name, seqid), body
        if method.result is None:  # a oneway method called as a call: nothing to answer
            return b"", b""
        result = method.result()
        if hasattr(result, "success"):  # void methods (shutdown) have an empty result
            result.success = value
        try:
            reply = self._encode_reply(name, seqid, result)
        except UnicodeEncodeError:
            if not isinstance(value, ExtensionResponse):
                raise
            _escape_surrogates(value)
            reply = self._encode_reply(name, seqid, result)
        if constant is not None and constant[0] is value:
            constant[1][name] = reply[1]
        size = len(reply[0]) + len(reply[1])
        if size > self._max_reply and isinstance(value, ExtensionResponse):
            rows = len(value.response or ())
            log.error("reply to %s is %d bytes (%d rows), over osqueryd's %d-byte limit",
                      name, size, rows, self._max_reply)
            result.success = ExtensionResponse(
                status=ExtensionStatus(
                    code=1,
                    message=f"response of {size} bytes ({rows} rows) exceeds osqueryd's "
                            f"Thrift message limit of {self._max_reply} bytes; "
                            "add constraints to the query or return fewer rows"),
                response=[])
            reply = self._encode_reply(name, seqid, result)
        return reply

    @staticmethod
    def _encode(name: str, mtype: int, seqid: int, payload: Any) -> bytes:
        buf = TMemoryBuffer()
        oprot = TBinaryProtocolAccelerated(buf)
        oprot.writeMessageBegin(name, mtype, seqid)
        payload.write(oprot)
        oprot.writeMessageEnd()
        data: bytes = buf.getvalue()
        return data

    @staticmethod
    def _reply_header(name: str, seqid: int) -> bytes:
        # the strict binary message header: i32 VERSION_1|REPLY, the method name, i32 seqid
        # (TBinaryProtocol.writeMessageBegin)
        prefix = _REPLY_PREFIX.get(name)
        if prefix is None:
            buf = TMemoryBuffer()
            TBinaryProtocolAccelerated(buf).writeMessageBegin(name, TMessageType.REPLY, 0)
            prefix = _REPLY_PREFIX.setdefault(name, buf.getvalue()[:-4])
        return prefix + _I32.pack(seqid)

    @classmethod
    def _encode_reply(cls, name: str, seqid: int, result: Any) -> tuple[bytes, bytes]:
        # The result struct straight from the C codec (what result.write() does, minus two
        # copies of a reply that can be megabytes), behind the message header.
        return (cls._reply_header(name, seqid),
                fastbinary.encode_binary(result, [result.__class__, result.thrift_spec]))
