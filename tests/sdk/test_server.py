"""The extension lifecycle against the manager double (docs/protocol.md §2), with real sockets."""

import json
import os
import signal
import socket
import stat
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TMessageType
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport, TMemoryBuffer

import osqsdk
from osqsdk import Column, ExitCode, ExtensionServer, PluginDefinitionError, TablePlugin
from osqsdk.extension._logger import LoggerPlugin
from osqsdk.extension._wire._gen import Extension
from osqsdk.extension._wire.client import Client
from osqsdk.testing import ManagerDouble
from tests.conftest import wait_until

FILES = Path(__file__).parent / "files"
BASIC = FILES / "basic_ext.py"


def users_table():
    return TablePlugin("acme_users", [Column("name"), Column("uid", "BIGINT")],
                       lambda ctx: [{"name": "alice", "uid": 1000}])


def serve(manager, *plugins, **options):
    server = ExtensionServer("inproc", list(plugins) or [users_table()],
                             socket_path=manager.socket_path, timeout=2, interval=0.2, **options)
    server.start()
    return server


# -- registration and serving ------------------------------------------------------------
def test_extension_registers_and_serves_its_socket(manager, spawn):
    proc = spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    assert ext.version == "1.0.0" and ext.sdk_version == osqsdk.OSQUERY_SDK_VERSION
    assert ext.socket_path == f"{manager.socket_path}.{ext.uuid}"
    assert set(ext.registry["table"]) == {"acme_users", "acme_slow", "acme_echo"}
    assert ext.registry["table"]["acme_users"][1] == {"id": "column", "name": "uid",
                                                      "type": "BIGINT", "op": "1"}
    mode = os.stat(ext.socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600  # owner-only
    with Client(ext.socket_path, manager=False) as client:
        pong = client.ping()
    assert (pong.code, pong.message, pong.uuid) == (0, "pong", ext.uuid)
    response = manager.call_extension("acme", "table", "acme_users", {
        "action": "generate",
        "context": json.dumps({"constraints": [{"name": "uid", "list": [{"op": 2, "expr": "1001"}],
                                                "affinity": "BIGINT"}]})})
    assert response.rows == [{"name": "bob", "uid": "1001"}]
    proc.stop()


def test_osqueryds_launch_argv_forms_and_unknown_flags_are_accepted(manager):
    from tests.conftest import ExtensionProcess

    proc = ExtensionProcess([sys.executable, str(BASIC), "--verbose",
                             f"--socket={manager.socket_path}",
                             "--timeout=3", "--interval=0", "--some-future-flag", "x"])
    try:
        manager.wait_for("acme")
    finally:
        proc.stop()


def test_ping_and_calls_are_answered_while_a_slow_generate_runs(manager, spawn, tmp_path,
                                                                monkeypatch):
    # The slow generate ends only when the test says so, after the other calls were
    # answered: a call queued behind it would never be answered, whatever the host's speed.
    release = tmp_path / "release"
    monkeypatch.setenv("SLOW_UNTIL", str(release))
    spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    done = {}
    slow = threading.Thread(target=lambda: done.setdefault(
        "r", manager.call_extension("acme", "table", "acme_slow", {"action": "generate"})))
    slow.start()
    try:
        assert wait_until(lambda: (tmp_path / "release.started").exists(), timeout=30)
        answered = []
        other = threading.Thread(target=lambda: answered.append(manager.call_extension(
            "acme", "table", "acme_users", {"action": "generate"}).code), daemon=True)
        other.start()
        other.join(20)
        assert answered == [0], "a call waited behind the slow generate"
        _ping(ext.socket_path)
        assert slow.is_alive()
    finally:
        release.touch()
        slow.join(30)
    assert done["r"].rows == [{"x": "done"}]


def test_calls_in_progress_are_bounded_by_max_workers(manager):
    release = threading.Event()
    running, most = [0], [0]
    lock = threading.Lock()

    def blocker(ctx):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return [{"x": "1"}]

    server = serve(manager, TablePlugin("blocker", [Column("x")], blocker), max_workers=3)
    try:
        results = []
        callers = [threading.Thread(target=lambda: results.append(manager.call_extension(
            "inproc", "table", "blocker", {"action": "generate"}))) for _ in range(8)]
        for t in callers:
            t.start()
        assert wait_until(lambda: most[0] >= 3, timeout=30)  # three generates at once
        time.sleep(0.3)  # time for a fourth, were there one
        assert most[0] == 3  # the others wait for a worker
        release.set()
        for t in callers:
            t.join(15)
        assert len(results) == 8 and all(r.rows == [{"x": "1"}] for r in results)
        assert most[0] == 3
    finally:
        release.set()
        server.close()


def _ping(socket_path: str) -> None:
    """A ping answered within 10 s (the client's timeout), or the test fails."""
    with Client(socket_path, timeout=10.0, manager=False) as client:
        assert client.ping().code == 0


def test_pings_are_answered_while_idle_connections_are_held(manager):
    import socket as socketlib

    server = serve(manager, max_workers=4)
    ext = manager.wait_for("inproc")
    idle = []
    try:
        for _ in range(40):  # ten times the workers, connected and silent
            sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
            sock.connect(ext.socket_path)
            idle.append(sock)
        time.sleep(0.3)
        # answered at all: the client gives up after 10 s, an idle connection holds 30 s
        _ping(ext.socket_path)
        assert manager.call_extension("inproc", "table", "acme_users",
                                      {"action": "generate"}).code == 0
    finally:
        for sock in idle:
            sock.close()
        server.close()


def test_pings_are_answered_while_every_worker_runs_a_slow_generate(manager):
    release = threading.Event()
    slow = TablePlugin("slow", [Column("x")], lambda ctx: release.wait(20) and [{"x": "1"}])
    server = serve(manager, slow, max_workers=4)
    ext = manager.wait_for("inproc")
    callers = [threading.Thread(target=manager.call_extension,
                                args=("inproc", "table", "slow", {"action": "generate"}))
               for _ in range(10)]  # more than the workers
    try:
        for t in callers:
            t.start()
        time.sleep(0.5)
        for _ in range(5):  # answered at all: the client gives up at 10 s, the generates at 20
            _ping(ext.socket_path)
    finally:
        release.set()
        for t in callers:
            t.join(30)
        server.close()


def test_stop_ends_every_worker_and_removes_the_socket(manager):
    server = serve(manager, max_workers=4)
    with ThreadPoolExecutor(4) as pool:  # enough calls at once to start several workers
        list(pool.map(lambda _: manager.call_extension(
            "inproc", "table", "acme_users", {"action": "generate"}), range(40)))
    workers = [t for t in threading.enumerate() if t.name.startswith("osqsdk-worker")]
    assert workers
    server.close()
    for thread in workers:
        thread.join(30)
    assert not [t for t in workers if t.is_alive()]
    assert not os.path.exists(server.socket_path)


def test_unknown_registry_item_and_action_answer_status_1(manager):
    server = serve(manager)
    try:
        for registry, item, request, message in [
            ("logger", "x", {}, "unknown registry 'logger'"),
            ("table", "nope", {"action": "generate"}, "unknown table plugin 'nope'"),
            ("table", "acme_users", {"action": "drop"}, "unknown action 'drop'"),
        ]:
            response = manager.call_extension("inproc", registry, item, request)
            assert response.code == 1 and message in response.message
    finally:
        server.close()


def test_a_generate_that_raises_is_status_1_and_the_server_stays_up(manager, caplog):
    def boom(ctx):
        raise KeyError("missing thing")

    server = serve(manager, users_table(), TablePlugin("boom", [Column("x")], boom))
    try:
        response = manager.call_extension("inproc", "table", "boom", {"action": "generate"})
        assert response.code == 1
        assert response.message == "table plugin 'boom' failed: KeyError: 'missing thing'"
        assert "table plugin 'boom' failed" in caplog.text
        assert manager.call_extension("inproc", "table", "acme_users",
                                      {"action": "generate"}).code == 0
    finally:
        server.close()


def test_non_utf8_request_values_round_trip_as_bytes(manager, spawn):
    spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    context = (b'{"constraints":[{"name":"expr","list":[{"op":2,"expr":"caf\xe9"}],'
               b'"affinity":"TEXT"}]}')
    with Client(ext.socket_path, manager=False) as client:
        reply = client.call("table", "acme_echo", {"action": b"generate", "context": context})
    assert reply.code == 0
    assert reply.rows[0]["hexed"] == b"caf\xe9".hex()


def test_a_response_too_large_for_osqueryd_is_refused_with_a_message(manager):
    big = TablePlugin("big", [Column("x")], lambda ctx: [{"x": "y" * 1000} for _ in range(200)])
    server = serve(manager, big)
    server._server._max_reply = 100_000  # stand-in for osqueryd's 100 MiB Thrift limit
    try:
        response = manager.call_extension("inproc", "table", "big", {"action": "generate"})
        assert response.code == 1
        assert "exceeds osqueryd's Thrift message limit" in response.message
        assert "200 rows" in response.message
    finally:
        server.close()


# -- malformed input on the socket ------------------------------------------------------
def raw_exchange(path, payload, read=True, timeout=5.0):
    """Send payload; return what comes back before the peer closes or ``timeout`` passes."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    sock.connect(path)
    sock.sendall(payload)
    data = b""
    if read:
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > 8:
                    break
        except TimeoutError:
            pass
    sock.close()
    return data


@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\n\r\n",                                   # not Thrift at all
    struct.pack("!iI", -2147418111, 4) + b"ca",                   # truncated method name
    struct.pack("!I", 0x80010001) + struct.pack("!I", 4) + b"call" + struct.pack("!i", 1)
    + b"\x0b\x00\x01" + struct.pack("!i", 2**31 - 1),             # a 2 GiB string claimed
    struct.pack("!I", 0x80010001) + struct.pack("!I", 4) + b"call" + struct.pack("!i", 1)
    + b"\x0d\x00\x03\x0b\x0b" + struct.pack("!i", 2**30),          # a 2^30-entry map claimed
    b"\x00" * 64,
])
def test_garbage_on_the_socket_drops_that_connection_only(manager, payload):
    server = serve(manager)
    try:
        raw_exchange(server.socket_path, payload)
        with Client(server.socket_path, manager=False) as client:
            assert client.ping().code == 0
        assert manager.call_extension("inproc", "table", "acme_users",
                                      {"action": "generate"}).code == 0
    finally:
        server.close()


def header(mtype, name, seqid=7):
    return struct.pack("!I", 0x80010000 | mtype) + struct.pack("!i", len(name)) + name \
        + struct.pack("!i", seqid)


@pytest.mark.parametrize("message, reply", [
    (header(1, b"ping"), header(2, b"ping")),
    # the old non-strict form: name length, name, type byte, seqid
    (struct.pack("!i", 4) + b"ping" + b"\x01" + struct.pack("!i", 7), header(2, b"ping")),
    # a name shorter than the 4 bytes read ahead, unknown: an exception reply
    (struct.pack("!i", 2) + b"xy" + b"\x01" + struct.pack("!i", 7), header(3, b"xy")),
], ids=["strict", "non-strict", "non-strict-short-unknown"])
def test_either_binary_message_form_is_answered(manager, message, reply):
    server = serve(manager)
    try:
        assert raw_exchange(server.socket_path, message + b"\x00", timeout=60).startswith(reply)
    finally:
        server.close()


def call_message(seqid: int, line: str) -> bytes:
    buf = TMemoryBuffer()
    prot = TBinaryProtocol(buf)
    prot.writeMessageBegin("call", TMessageType.CALL, seqid)
    Extension.call_args(registry="logger", item="lines",
                        request={"string": line.encode()}).write(prot)
    prot.writeMessageEnd()
    return buf.getvalue()


def read_call_replies(sock: socket.socket, count: int) -> list[tuple[int, tuple]]:
    trans = TSocket()
    trans.handle = sock
    prot = TBinaryProtocol(TBufferedTransport(trans))
    replies = []
    for _ in range(count):
        name, mtype, seqid = prot.readMessageBegin()
        assert (name, mtype) == ("call", TMessageType.REPLY)
        result = Extension.call_result()
        result.read(prot)
        status = result.success.status
        replies.append((seqid, (status.code, status.message, status.uuid, result.success.response)))
    return replies


def logged_line(size: int = 0) -> str:
    return json.dumps({"name": "q", "hostIdentifier": "h", "unixTime": 1, "action": "added",
                       "columns": {"pad": "x" * size}})


def test_calls_arriving_in_pieces_or_back_to_back_are_each_answered(manager):
    # osqueryd's client writes a call in one go, but a socket may deliver it in pieces, and
    # a peer may send the next call before reading the answer; the OK answer is encoded
    # once and must still carry each call's own seqid.
    server = serve(manager, LoggerPlugin("lines"))
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(60)
            sock.connect(server.socket_path)
            message = call_message(41, logged_line())
            for i in range(0, len(message), 7):
                sock.sendall(message[i:i + 7])
                time.sleep(0.001)
            ok = (0, "OK", server.uuid, [])
            assert read_call_replies(sock, 1) == [(41, ok)]
            # three calls in one write, the middle one bigger than the server's read buffer
            sock.sendall(call_message(42, logged_line()) + call_message(43, logged_line(200_000))
                         + call_message(44, logged_line()))
            assert read_call_replies(sock, 3) == [(42, ok), (43, ok), (44, ok)]
    finally:
        server.close()


def test_unknown_method_gets_a_thrift_application_exception(manager):
    server = serve(manager)
    try:
        with Client(server.socket_path, manager=True) as client:
            with pytest.raises(osqsdk.ProtocolError, match="Unknown function extensions"):
                client.extensions()
            assert client.ping().code == 0  # same connection still usable
    finally:
        server.close()


# -- lifecycle ---------------------------------------------------------------------------
def test_manager_gone_means_exit_0(manager, spawn):
    proc = spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    manager.stop(notify=False)  # osqueryd crashed: no shutdown(), its socket is gone
    assert proc.wait() == ExitCode.OK
    assert "osquery core has gone away" in proc.stderr
    assert not os.path.exists(ext.socket_path)


def test_dropped_by_osqueryd_means_exit_1(manager, spawn):
    proc = spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    manager.remove(ext.uuid)  # what a failed health check does; the extension is not told
    assert proc.wait() == ExitCode.DROPPED
    assert "no longer lists extension 'acme'" in proc.stderr


def test_shutdown_request_stops_cleanly_and_removes_the_socket(manager, spawn):
    proc = spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    with Client(ext.socket_path, manager=False) as client:
        client.shutdown()  # answered (not oneway)
    assert proc.wait() == ExitCode.OK
    assert not os.path.exists(ext.socket_path)


def test_sigterm_stops_cleanly_deregisters_and_removes_the_socket(manager, spawn):
    proc = spawn(BASIC, manager.socket_path)
    ext = manager.wait_for("acme")
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.wait() == ExitCode.OK
    assert not os.path.exists(ext.socket_path)
    assert ("deregister", "acme") in manager.events


def test_sigterm_while_registering_still_deregisters_and_removes_the_socket(spawn, tmp_path):
    # The signal lands while register() is in flight, before the extension serves.
    procs = []
    with ManagerDouble(health_interval=0.3, core_tables=[],
                       on_register=lambda ext: procs[0].proc.send_signal(signal.SIGTERM)) as m:
        procs.append(spawn(BASIC, m.socket_path))
        assert procs[0].wait() == ExitCode.OK
        assert ("deregister", "acme") in m.events
        assert not [p for p in os.listdir(os.path.dirname(m.socket_path))
                    if p.startswith("osquery.em.")]


def test_health_check_drops_a_killed_extension(manager, spawn):
    proc = spawn(BASIC, manager.socket_path)
    manager.wait_for("acme")
    proc.proc.kill()
    manager.wait_gone("acme", timeout=30)
    assert ("removed", "acme") in manager.events


def test_extension_started_before_osqueryd_waits_for_it(spawn):
    import tempfile

    path = os.path.join(tempfile.mkdtemp(prefix="osq-", dir="/tmp"), "osquery.em")
    proc = spawn(BASIC, path, timeout="10")
    time.sleep(0.5)
    with ManagerDouble(path, health_interval=0.3, core_tables=[]) as late:
        late.wait_for("acme")
    proc.stop()


def test_no_osqueryd_within_timeout_is_exit_69(spawn, tmp_path):
    path = "/tmp/osqsdk-absent-" + str(os.getpid()) + ".em"
    proc = spawn(BASIC, path, timeout="0.5")
    start = time.monotonic()
    assert proc.wait(60) == ExitCode.UNAVAILABLE
    assert time.monotonic() - start < 30  # gave up after its timeout, not later
    assert f"{path} is not available after 0.5s" in proc.stderr


def test_missing_socket_directory_is_named(spawn):
    proc = spawn(BASIC, "/tmp/osqsdk-no-such-dir/osquery.em", timeout="0.2")
    assert proc.wait() == ExitCode.UNAVAILABLE
    assert "directory /tmp/osqsdk-no-such-dir does not exist" in proc.stderr


def test_socket_path_too_long_is_refused_up_front(spawn):
    path = "/tmp/" + "x" * 120 + "/osquery.em"
    proc = spawn(BASIC, path)
    assert proc.wait() == ExitCode.USAGE
    assert "extensions socket path is" in proc.stderr
    assert "use a shorter --socket path" in proc.stderr
    with pytest.raises(PluginDefinitionError):
        ExtensionServer("x", [users_table()], socket_path=path)


def test_duplicate_extension_name_is_refused_with_osqueryds_message(manager, spawn):
    first = spawn(BASIC, manager.socket_path)
    manager.wait_for("acme")
    second = spawn(BASIC, manager.socket_path)
    assert second.wait() == ExitCode.REFUSED
    assert "osqueryd refused the registration: Duplicate extension registered" in second.stderr
    first.stop()


def test_duplicate_item_is_refused_with_osqueryds_message(manager, spawn):
    proc = spawn(BASIC, manager.socket_path, "--with-core-name")
    assert proc.wait() == ExitCode.REFUSED
    assert ("Failed adding registry: Registry item time conflicts with another item of the "
            "same name.") in proc.stderr


def test_table_without_columns_is_refused_before_registering():
    with pytest.raises(PluginDefinitionError, match="Invalid route info"):
        TablePlugin("empty", [], lambda ctx: [])


def test_bad_plugin_definitions_are_caught_by_the_server():
    plugin = users_table()
    with pytest.raises(PluginDefinitionError, match="two table plugins are named 'acme_users'"):
        ExtensionServer("x", [plugin, users_table()], socket_path="/tmp/x.em")
    with pytest.raises(PluginDefinitionError, match="neither an osqsdk nor an osquery-python"):
        ExtensionServer("x", [object()], socket_path="/tmp/x.em")
    with pytest.raises(PluginDefinitionError, match="non-empty name"):
        ExtensionServer("", [plugin], socket_path="/tmp/x.em")


def test_spec_flag_prints_schema_json(spawn):
    proc = spawn(BASIC, "/tmp/unused.em", "--spec")
    assert proc.wait() == 0
    tables = json.loads(proc.stdout)
    assert [t["name"] for t in tables] == ["acme_users", "acme_slow", "acme_echo"]
    assert tables[0]["columns"][1] == {"name": "uid", "description": "", "type": "bigint",
                                       "notes": "", "hidden": False, "required": False,
                                       "index": True, "additional": False, "optimized": False,
                                       "aliases": []}


def test_stop_is_idempotent_and_safe_from_a_handler(manager):
    holder = {}

    def stop_from_inside(ctx):
        holder["server"].stop()
        holder["server"].stop()
        return [{"x": "bye"}]

    server = serve(manager, TablePlugin("stopper", [Column("x")], stop_from_inside))
    holder["server"] = server
    assert manager.call_extension("inproc", "table", "stopper",
                                  {"action": "generate"}).rows == [{"x": "bye"}]
    server.close()
    server.close()
    assert not os.path.exists(server.socket_path)


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_base_exceptions_from_a_plugin_never_cost_a_worker(manager, error):
    def boom(ctx):
        raise error

    server = serve(manager, users_table(), TablePlugin("boom", [Column("x")], boom),
                   max_workers=2)
    try:
        for _ in range(6):  # three times the pool: a lost worker would leave none
            response = manager.call_extension("inproc", "table", "boom", {"action": "generate"})
            assert response.code == 1
            assert response.message == f"table plugin 'boom' failed: {type(error).__name__}"
        assert manager.call_extension("inproc", "table", "acme_users",
                                      {"action": "generate"}).code == 0
    finally:
        server.close()
