"""extensions/loki_logger.py as osqueryd runs it: launched, called, killed, restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from osqsdk.testing import LokiReceiver, launch_extension
from tests.conftest import wait_until
from tests.loki.conftest import result_line, status_batch

EXTENSION = Path(__file__).resolve().parents[2] / "extensions" / "loki_logger.py"
NAME = "osqsdk_loki"


def launch(manager, spool: Path, url: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "OSQSDK_LOKI_URL": url, "OSQSDK_LOKI_SPOOL_DIR": str(spool),
                   "OSQSDK_LOKI_BATCH_WAIT": "50ms", "OSQSDK_LOKI_MIN_BACKOFF": "10ms",
                   "OSQSDK_LOKI_MAX_BACKOFF": "200ms", **env}
    environment.pop("OSQSDK_LOKI_CONFIG", None)
    proc = launch_extension(EXTENSION, manager.socket_path, interval=0.3, autoload=False,
                            env=environment, stderr=subprocess.PIPE, text=True)
    manager.wait_for(NAME)
    return proc


def call(manager, request):
    return manager.call_extension(NAME, "logger", "loki", request)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=15)


def test_results_and_status_logs_reach_loki(manager, tmp_path, receiver, procs):
    procs.append(launch(manager, tmp_path / "spool", receiver.url))
    assert call(manager, {"init": "osqueryd"}).code == 0
    assert call(manager, {"action": "features"}).code == 1  # status logs yes, events no
    lines = [result_line(i) for i in range(20)]
    for line in lines:
        assert call(manager, {"string": line, "category": "event"}).code == 0
    assert call(manager, {"status": "true", "log": status_batch("hello", "world")}).code == 0
    assert call(manager, {"string": "{not osquery", "category": "event"}).code == 0
    assert receiver.wait_for_entries(23, timeout=15)
    streams = receiver.streams()
    result = [labels for labels in streams if 'log_type="result"' in labels]
    assert result == ['{action="added", host="web-1", job="osquery", log_type="result", '
                      'name="pack_ir_last", service_name="pack_ir_last"}']
    assert [line for _, line, _ in streams[result[0]]] == lines
    assert any('log_type="unparsed"' in labels for labels in streams)


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_mid_stream_then_restart_delivers_every_line(manager, tmp_path, procs):
    spool = tmp_path / "spool"
    receiver = LokiReceiver()  # down while the extension is killed: a backlog in the spool
    receiver.start()
    url = receiver.url
    receiver.down()
    proc = launch(manager, spool, url)
    procs.append(proc)
    lines = [result_line(i, name=f"pack_ir_q{i % 3}") for i in range(400)]
    answered: list[str] = []
    killed = threading.Event()

    def feed(batch: list[str], stop: threading.Event | None = None) -> None:
        for i, line in enumerate(batch):
            if stop is not None and i == 200:  # the kill comes at 150 to 200, however busy
                stop.wait(60)
            try:
                response = call(manager, {"string": line, "category": "event"})
            except Exception:
                response = None
            if response is not None and response.code == 0:
                answered.append(line)
            if stop is not None and stop.is_set():
                return

    feeder = threading.Thread(target=feed, args=(lines[:300], killed))
    feeder.start()
    assert wait_until(lambda: len(answered) >= 150, timeout=60)
    (encoder,) = children(proc.pid)  # the encoder process (osqsdk.loki._encoder)
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream, no chance to flush or clean up
    killed.set()
    feeder.join(30)
    proc.wait(10)
    first_run = list(answered)
    assert 150 <= len(first_run) < 300
    # its encoder process reads the end of its input and exits too: no orphan left behind
    assert wait_until(lambda: not running(encoder), timeout=15)
    manager.wait_gone(NAME, timeout=15)
    rest = lines[len(first_run) + 1:]  # the line in flight at the kill may or may not be in
    procs.append(launch(manager, spool, url))
    answered.clear()
    feed(rest)
    assert answered == rest
    receiver.up()
    try:
        expected = set(first_run) | set(rest)
        assert wait_until(lambda: expected <= set(receiver.lines()), timeout=60)
        stored = receiver.lines()
        assert len(stored) == len(set(stored))          # nothing twice
        assert set(stored) <= set(lines)                # nothing invented
        assert len(stored) >= len(first_run) + len(rest)
    finally:
        receiver.down()


def test_a_configuration_error_is_one_clear_line(manager, tmp_path):
    env = {**os.environ, "OSQSDK_LOKI_URL": "http://l:1", "OSQSDK_LOKI_BATCH_WAIT": "soon",
           "OSQSDK_LOKI_SPOOL_DIR": str(tmp_path / "s")}
    result = subprocess.run([sys.executable, str(EXTENSION), "--socket", manager.socket_path],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 64
    assert result.stderr.strip() == (
        "osqsdk_loki: configuration error: environment variable OSQSDK_LOKI_BATCH_WAIT: "
        "'soon' is not a duration (e.g. 1.5, 500ms, 10s, 5m, 7d)")


def test_an_unusable_spool_is_one_clear_line(manager, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {**os.environ, "OSQSDK_LOKI_URL": "http://l:1",
           "OSQSDK_LOKI_SPOOL_DIR": str(blocker / "spool")}
    result = subprocess.run([sys.executable, str(EXTENSION), "--socket", manager.socket_path],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 73
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"osqsdk_loki: spool {blocker / 'spool'}: cannot create")


def test_a_busy_metrics_port_is_one_clear_line(manager, tmp_path, busy_port):
    env = {**os.environ, "OSQSDK_LOKI_URL": "http://l:1",
           "OSQSDK_LOKI_SPOOL_DIR": str(tmp_path / "spool"),
           "OSQSDK_LOKI_METRICS_PORT": str(busy_port)}
    result = subprocess.run([sys.executable, str(EXTENSION), "--socket", manager.socket_path],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 64
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("osqsdk_loki: configuration error: metrics_port: cannot "
                                    "serve metrics on 127.0.0.1:")


def test_flags_configure_it_when_run_by_hand(manager, tmp_path, receiver, procs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSQSDK_LOKI_")}
    proc = subprocess.Popen(
        [sys.executable, str(EXTENSION), "--socket", manager.socket_path, "--interval", "0.3",
         "--loki-url", receiver.url, f"--loki-spool-dir={tmp_path / 'spool'}",
         "--loki-batch-wait", "50ms", "--loki-plugin-name", "lokiq"],
        env=env, stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    manager.wait_for(NAME)
    assert manager.call_extension(NAME, "logger", "lokiq",
                                  {"string": result_line(1), "category": "event"}).code == 0
    assert receiver.wait_for_entries(1, timeout=15)


def test_spool_cap_then_kill_9_every_line_is_delivered_or_counted(manager, tmp_path, procs):
    # Loki down, a small spool: the cap drops the oldest segments while the shipper holds a
    # batch read from them; then kill -9. Every line osqueryd got success for is in Loki or
    # counted: spool_full by the first process, lost_in_flight by the next at its start.
    import urllib.request

    from tests.e2e.conftest import free_port

    def metric(port: int, reason: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        for line in text.decode().splitlines():
            if line.startswith(f'osqsdk_loki_dropped_entries_total{{reason="{reason}"}}'):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no dropped_entries_total for {reason}")

    spool, receiver = tmp_path / "spool", LokiReceiver()
    receiver.start()
    receiver.down()
    settings = {"OSQSDK_LOKI_SPOOL_MAX_BYTES": str(256 << 10),
                "OSQSDK_LOKI_SEGMENT_BYTES": str(32 << 10)}
    first_port = free_port()
    proc = launch(manager, spool, receiver.url, OSQSDK_LOKI_METRICS_PORT=str(first_port),
                  **settings)
    procs.append(proc)
    lines = [result_line(i, name=f"pack_ir_q{i % 3}") for i in range(4000)]
    for line in lines:
        assert call(manager, {"string": line, "category": "event"}).code == 0
    spool_full = metric(first_port, "spool_full")
    assert spool_full > 0  # the cap was reached
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    manager.wait_gone(NAME, timeout=15)
    receiver.up()
    second_port = free_port()
    procs.append(launch(manager, spool, receiver.url,
                        OSQSDK_LOKI_METRICS_PORT=str(second_port), **settings))
    try:
        lost = metric(second_port, "lost_in_flight")
        assert wait_until(lambda: len(receiver.lines()) + spool_full + lost >= len(lines),
                          timeout=60)
        stored = receiver.lines()
        assert len(stored) == len(set(stored)) and set(stored) <= set(lines)
        assert len(stored) + spool_full + lost == len(lines), (len(stored), spool_full, lost)
    finally:
        receiver.down()
