"""osqsdk against Apache Thrift's C++ runtime, the library osqueryd links.

osqueryd_standin plays osqueryd calling an extension (and checks the values it reads back);
manager_standin plays osqueryd's manager the extension registers with.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from osqsdk import ExitCode
from tests.conftest import ExtensionProcess

FIXTURE = Path(__file__).parent / "fixture_extension.py"


class CppManager:
    def __init__(self, peers: Path, *flags: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="osqc-", dir="/tmp")
        self.socket = os.path.join(self.dir, "osquery.em")
        self.proc = subprocess.Popen([str(peers / "manager_standin"), self.socket, *flags],
                                     stdout=subprocess.PIPE, text=True)
        assert json.loads(self.proc.stdout.readline())["event"] == "listening"
        self.events: list[dict] = []

    def next_event(self, kind: str) -> dict:
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == kind:
                return event
        raise AssertionError(f"manager exited before a {kind!r} event; saw {self.events}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=10)


@pytest.fixture
def cpp_manager(cpp_peers):
    managers = []

    def start(*flags):
        m = CppManager(cpp_peers, *flags)
        managers.append(m)
        return m

    yield start
    for m in managers:
        m.close()


def start_fixture(socket: str, interval: str = "0.3",
                  env: dict[str, str] | None = None) -> ExtensionProcess:
    return ExtensionProcess([sys.executable, str(FIXTURE), "--socket", socket, "--timeout", "5",
                             "--interval", interval], env=env)


def run_client(peers: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(peers / "osqueryd_standin"), *args], capture_output=True,
                          text=True, timeout=60)


def test_cpp_osqueryd_reads_back_every_value_it_expects(cpp_peers, manager):
    ext = start_fixture(manager.socket_path)
    try:
        socket = manager.wait_for("interop").socket_path
        result = run_client(cpp_peers, "check", socket)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["failures"] == 0 and summary["checks"] >= 70
    finally:
        ext.stop()


def test_cpp_osqueryd_pings_during_a_slow_generate(cpp_peers, manager, tmp_path):
    # The generate ends only when the peer has had its 50 pings answered: a ping queued
    # behind the generate would never be answered, however fast or slow the host is.
    release = tmp_path / "release"
    ext = start_fixture(manager.socket_path, env={**os.environ, "INTEROP_RELEASE": str(release)})
    try:
        socket = manager.wait_for("interop").socket_path
        result = run_client(cpp_peers, "ping-during", socket, "interop_slow", str(release), "50")
        assert result.returncode == 0, result.stderr
        figures = json.loads(result.stdout)
        assert figures["failed"] == 0 and figures["pings"] == 50 and figures["during"]
        assert figures["generate_code"] == 0
    finally:
        ext.stop()


def test_cpp_call_and_shutdown(cpp_peers, manager):
    ext = start_fixture(manager.socket_path)
    socket = manager.wait_for("interop").socket_path
    result = run_client(cpp_peers, "call", socket, "table", "interop_kv", "action=insert",
                        "auto_rowid=false", 'json_value_array=["k",1]')
    assert json.loads(result.stdout)["rows"] == [{"status": "success", "id": "1"}]
    result = run_client(cpp_peers, "call", socket, "table", "interop_kv", "action=generate")
    assert json.loads(result.stdout)["rows"] == [{"key": "k", "rowid": "1", "value": "1"}]
    result = run_client(cpp_peers, "shutdown", socket)
    assert result.returncode == 0 and json.loads(result.stdout) == {"shutdown": "replied"}
    assert ext.wait() == ExitCode.OK
    assert not os.path.exists(socket)


def test_cpp_manager_registration_and_osqueryds_first_calls(cpp_manager):
    m = cpp_manager("--uuid", "4321")
    ext = start_fixture(m.socket)
    try:
        reg = m.next_event("register")
        assert reg["name"] == "interop" and reg["version"] == "1.2.3"
        assert reg["sdk_version"] == "5.23.0" and reg["uuid"] == 4321
        routes = reg["registry"]["table"]["interop_types"]
        assert {"id": "column", "name": "u", "type": "UNSIGNED BIGINT", "op": "4"} in routes
        assert {"id": "alias", "alias": "interop_types_alias"} in routes
        checked = m.next_event("checked")
        assert checked["error"] == "" and checked["ping_code"] == 0 and checked["ping_uuid"] == 4321
        for name, table in checked["tables"].items():
            assert table["columns_code"] == 0 and table["routes_match"], name
        assert checked["tables"]["interop_fail"]["generate_code"] == 1
        assert "kaboom" in checked["tables"]["interop_fail"]["generate_message"]
        rows = checked["tables"]["interop_types"]["rows"]
        assert rows[0]["i"] == "-42" and rows[0]["flag"] == "1" and "n" not in rows[0]
        assert os.path.exists(f"{m.socket}.4321")
    finally:
        ext.stop()


def test_cpp_manager_refusal_is_exit_78_with_its_message(cpp_manager):
    m = cpp_manager("--refuse", "interop")
    ext = start_fixture(m.socket)
    assert ext.wait() == ExitCode.REFUSED
    assert "osqueryd refused the registration: Duplicate extension registered" in ext.stderr


def test_cpp_manager_dropping_the_extension_is_exit_1(cpp_manager):
    m = cpp_manager("--drop-after", "0.5")
    ext = start_fixture(m.socket)
    m.next_event("dropped")
    assert ext.wait() == ExitCode.DROPPED


def test_cpp_manager_going_away_is_exit_0(cpp_manager):
    m = cpp_manager("--exit-after", "0.5")
    ext = start_fixture(m.socket)
    m.next_event("exit")
    assert ext.wait() == ExitCode.OK
    assert "osquery core has gone away" in ext.stderr


def test_sigterm_deregisters_from_the_cpp_manager(cpp_manager):
    m = cpp_manager()
    ext = start_fixture(m.socket)
    uuid = m.next_event("register")["uuid"]
    m.next_event("checked")
    ext.proc.terminate()
    assert ext.wait() == ExitCode.OK
    assert m.next_event("deregister")["uuid"] == uuid
    assert not os.path.exists(f"{m.socket}.{uuid}")


def test_cpp_osqueryd_drives_logger_config_and_distributed_plugins(cpp_peers, manager):
    ext = start_fixture(manager.socket_path)
    try:
        socket = manager.wait_for("interop").socket_path
        result = run_client(cpp_peers, "check-plugins", socket)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["failures"] == 0 and summary["checks"] >= 35
    finally:
        ext.stop()


def test_cpp_manager_sees_every_registry(cpp_manager):
    m = cpp_manager()
    ext = start_fixture(m.socket)
    try:
        reg = m.next_event("register")["registry"]
        assert set(reg) == {"table", "logger", "config", "distributed"}
        assert reg["logger"] == {"interop_logger": []}
        assert reg["config"] == {"interop_config": []}
        assert reg["distributed"] == {"interop_distributed": []}
    finally:
        ext.stop()
