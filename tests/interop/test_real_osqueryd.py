"""Against a real osqueryi/osqueryd, when one is on PATH (it cannot be installed in CI here,
so these tests skip without failing the build)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

BASIC = Path(__file__).resolve().parents[1] / "sdk" / "files" / "basic_ext.py"
OSQUERYI = shutil.which("osqueryi")

pytestmark = pytest.mark.skipif(OSQUERYI is None, reason="no osqueryi on PATH")


@pytest.fixture
def extension_file():
    directory = Path(tempfile.mkdtemp(prefix="osqsdk-real-"))
    directory.chmod(0o755)
    target = directory / "acme.ext"
    target.write_text(f"#!{sys.executable}\n" + BASIC.read_text().split("\n", 1)[1])
    target.chmod(0o750)
    yield target
    shutil.rmtree(directory, ignore_errors=True)


def run_osqueryi(extension, sql):
    socket = os.path.join(tempfile.mkdtemp(prefix="osq-", dir="/tmp"), "shell.em")
    return subprocess.run(
        [OSQUERYI, "--extension", str(extension), "--extensions_socket", socket,
         "--extensions_timeout", "10", "--extensions_require", "acme", "--json", sql],
        capture_output=True, text=True, timeout=60)


def test_osqueryi_queries_an_osqsdk_table_with_constraints(extension_file):
    result = run_osqueryi(extension_file, "SELECT name, uid FROM acme_users WHERE uid = 1001;")
    assert result.returncode == 0, result.stderr
    assert '"name":"bob"' in result.stdout.replace(" ", "")


def test_osqueryi_lists_the_extension(extension_file):
    result = run_osqueryi(extension_file, "SELECT name, version FROM osquery_extensions "
                                          "WHERE name = 'acme';")
    assert result.returncode == 0, result.stderr
    assert '"version":"1.0.0"' in result.stdout.replace(" ", "")
