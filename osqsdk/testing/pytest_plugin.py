"""pytest fixtures for extension and pack authors (installed as a pytest11 plugin).

- ``osq_engine``: a fresh local ``osqsdk.runner.Engine``, with the plugins of the files
  listed in the ``osqsdk_extensions`` ini option loaded and the fixtures of the
  ``osqsdk_fixtures`` directory (both relative to the rootdir), or empty fixtures.
- ``osq_manager``: a started ``osqsdk.testing.ManagerDouble`` (osqueryd's side of the
  extension socket), stopped after the test.
- ``osq_loki``: a started ``osqsdk.testing.LokiReceiver`` (Loki's push API, validated), when
  osqsdk's Loki support is installed.

Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("osqsdk_extensions", "Python files of plugins the osq_engine fixture loads",
                  type="linelist", default=[])
    parser.addini("osqsdk_fixtures", "Fixture directory the osq_engine fixture uses",
                  default="")


@pytest.fixture
def osq_engine(request: pytest.FixtureRequest) -> Iterator[Any]:
    from osqsdk.runner import Engine, Fixtures

    root = Path(str(request.config.rootpath))
    engine = Engine()
    fixtures = request.config.getini("osqsdk_fixtures")
    if fixtures:
        engine.fixtures = Fixtures.load(root / fixtures, engine.schema)
    for path in request.config.getini("osqsdk_extensions"):
        engine.add_file(root / path)
    yield engine
    engine.close()


@pytest.fixture
def osq_manager() -> Iterator[Any]:
    from osqsdk.testing import ManagerDouble

    with ManagerDouble() as manager:
        yield manager


@pytest.fixture
def osq_loki() -> Iterator[Any]:
    from osqsdk.testing import LokiReceiver

    with LokiReceiver() as receiver:
        yield receiver
