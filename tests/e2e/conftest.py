"""The pipeline the end-to-end tests share: the runner playing osqueryd, the Loki logger
extension as its own process, and the Loki receiver double."""

import os
import socket
from pathlib import Path

import pytest

from osqsdk.runner import Engine, Fixtures
from osqsdk.testing import LokiReceiver, launch_extension

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / "packs"
FIXTURES = PACKS / "tests" / "fixtures" / "incident-response"
HOST = "4C4C4544-0042-4810-8056-B7C04F4E3332"
SSH = "pack_incident-response_ssh_logins"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pipeline(tmp_path):
    receiver = LokiReceiver().start()
    engine = Engine(fixtures=Fixtures.load(FIXTURES))
    manager = engine.serve(health_interval=1.0)
    metrics_port = free_port()
    env = {**os.environ,
           "OSQSDK_LOKI_URL": receiver.url,
           "OSQSDK_LOKI_SPOOL_DIR": str(tmp_path / "spool"),
           "OSQSDK_LOKI_METRICS_PORT": str(metrics_port),
           "OSQSDK_LOKI_BATCH_WAIT": "0.05"}
    extension = launch_extension(ROOT / "extensions" / "loki_logger.py", manager.socket_path,
                                 interval=1, autoload=False, env=env)
    try:
        manager.wait_for("osqsdk_loki", timeout=30)
        yield engine, receiver, metrics_port
    finally:
        manager.stop()  # shutdown() to the extension, as osqueryd does when it stops
        extension.wait(30)
        receiver.stop()
        engine.close()


