"""Fixtures for the Loki logger tests: a receiver double and fast client settings."""

from __future__ import annotations

import json
import socket
import time

import pytest

from osqsdk.loki import LokiConfig
from osqsdk.testing import LokiReceiver


def result_line(i: int, *, name: str = "pack_ir_last", host: str = "web-1",
                action: str = "added", unix_time: int | None = None, **columns: str) -> str:
    """An osqueryd event-format result line (docs/protocol.md §4.3) stamped now."""
    unix_time = int(time.time()) if unix_time is None else unix_time
    row = {"host": "10.0.0.9", "pid": str(i), "tty": "pts/0", "type": "7",
           "username": f"user{i}", **columns}
    return json.dumps({
        "name": name, "hostIdentifier": host,
        "calendarTime": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(unix_time)),
        "unixTime": unix_time, "epoch": 0, "counter": i, "numerics": False,
        "decorations": {"host_uuid": "4c4c4544-0042"},
        "columns": dict(sorted(row.items())), "action": action}, separators=(",", ":"))


def stamped_now(line: str) -> str:
    """``line`` (a result line of any format) with its times set to now."""
    record = json.loads(line)
    now = int(time.time())
    record["unixTime"] = now
    record["calendarTime"] = time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(now))
    return json.dumps(record, separators=(",", ":"))


def status_batch(*messages: str, severity: int = 0, host: str = "web-1") -> str:
    now = int(time.time())
    return json.dumps([{"s": severity, "f": "scheduler.cpp", "i": 85 + n, "m": m, "h": host,
                        "c": time.strftime("%a %b %d %H:%M:%S %Y UTC", time.gmtime(now)),
                        "u": now} for n, m in enumerate(messages)])


@pytest.fixture
def receiver():
    with LokiReceiver() as rx:
        yield rx


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


@pytest.fixture
def make_config(tmp_path):
    """LokiConfig with short waits and backoffs, a spool under tmp_path."""
    counter = iter(range(1000))

    def make(url: str, **overrides) -> LokiConfig:
        settings = dict(url=url, spool_dir=str(tmp_path / f"spool{next(counter)}"),
                        batch_wait=0.05, min_backoff=0.01, max_backoff=0.05, timeout=5.0,
                        drain_timeout=5.0)
        settings.update(overrides)
        return LokiConfig(**settings)

    return make
