"""Shared fixtures: the manager double, the C++ peers, extension processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from osqsdk.testing import ManagerDouble

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def peer_missing(reason: str) -> None:
    """Skip a test whose peer is missing here; under CI=true a missing peer is a failure."""
    if IN_CI:
        pytest.fail(f"CI=true but a test peer is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def manager():
    with ManagerDouble(health_interval=0.3, core_tables=["time", "processes", "users"]) as m:
        yield m


@pytest.fixture(scope="session")
def cpp_peers():
    from tests.interop.build import PeerUnavailable, build

    try:
        return build()
    except PeerUnavailable as exc:
        peer_missing(str(exc))


class ExtensionProcess:
    """An extension running as its own process, like osqueryd's children."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self._out: tuple[str, str] | None = None

    def wait(self, timeout: float = 15.0) -> int:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(
                f"{self.args} did not exit within {timeout}s; stderr:\n{err}") from None
        self._out = (out, err)
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        assert self._out is not None, "call wait() first"
        return self._out[1]

    @property
    def stdout(self) -> str:
        assert self._out is not None, "call wait() first"
        return self._out[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        if self._out is None:
            try:
                self._out = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self._out = self.proc.communicate()


@pytest.fixture
def spawn():
    """spawn(path_or_args, socket, *extra) starts an extension process; all are stopped after."""
    procs: list[ExtensionProcess] = []

    def start(target, socket: str, *extra: str, interval: str = "0.3",
              timeout: str = "5") -> ExtensionProcess:
        args = [sys.executable, str(target)] if isinstance(target, (str, Path)) else list(target)
        args += ["--socket", socket, "--timeout", timeout, "--interval", interval, *extra]
        proc = ExtensionProcess(args)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
