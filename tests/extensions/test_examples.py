"""The ready-to-run extensions in extensions/, launched the way osqueryd launches them."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from osqsdk.testing import launch_extension
from tests.sdk.test_logger import BATCH, EVENT, STATUS

EXTENSIONS = Path(__file__).resolve().parents[2] / "extensions"


@pytest.fixture
def launch(manager):
    procs = []

    def start(filename, name, **env):
        proc = launch_extension(EXTENSIONS / filename, manager.socket_path, interval=0.3,
                                autoload=False, env={**os.environ, **env},
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        manager.wait_for(name)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=10)


def test_file_logger_writes_and_rotates(launch, manager, tmp_path):
    launch("file_logger.py", "osqsdk_file_logger", OSQSDK_LOG_DIR=str(tmp_path),
           OSQSDK_LOG_MAX_BYTES="2000", OSQSDK_LOG_BACKUPS="50")

    def call(request):
        return manager.call_extension("osqsdk_file_logger", "logger", "osqsdk_file", request)

    assert call({"init": "osqueryd"}).code == 0
    assert call({"action": "features"}).code == 1  # wants status logs, no events
    for _ in range(20):
        assert call({"string": EVENT, "category": "event"}).code == 0
    assert call({"string": BATCH, "category": "event"}).code == 0
    assert call({"status": "true", "log": STATUS}).code == 0
    result_files = sorted(tmp_path.glob("results.log*"))
    assert len(result_files) > 1, "results.log was never rotated"
    lines = [line for f in result_files for line in f.read_text().splitlines()]
    assert sorted(lines) == sorted([EVENT] * 20 + [BATCH])
    status = [json.loads(line) for line in (tmp_path / "status.log").read_text().splitlines()]
    assert [s["message"] for s in status] == ["Executing scheduled query", "bad pack"]
    assert status[1]["severity"] == 2


def test_directory_config_serves_a_directory(launch, manager, tmp_path):
    (tmp_path / "packs").mkdir()
    (tmp_path / "osquery.conf").write_text(
        '{\n// packs from files\n"packs": {"*": "packs/*.conf"}}')
    (tmp_path / "packs" / "ir.conf").write_text(
        '{"queries": {"ssh": {"query": "SELECT * FROM last;", "interval": 60}}}')
    launch("directory_config.py", "osqsdk_directory_config", OSQSDK_CONFIG_DIR=str(tmp_path))
    response = manager.call_extension("osqsdk_directory_config", "config", "osqsdk_directory",
                                      {"action": "genConfig"})
    assert json.loads(response.rows[0]["osquery.conf"]) == {"packs": {"ir": "packs/ir.conf"}}
    pack = manager.call_extension("osqsdk_directory_config", "config", "osqsdk_directory",
                                  {"action": "genPack", "name": "ir", "value": "packs/ir.conf"})
    assert json.loads(pack.rows[0]["ir"])["queries"]["ssh"]["query"] == "SELECT * FROM last;"


def test_spool_distributed_round_trip(launch, manager, tmp_path):
    launch("spool_distributed.py", "osqsdk_spool_distributed", OSQSDK_QUERY_DIR=str(tmp_path))
    (tmp_path / "pending" / "q1.sql").write_text("SELECT 1 AS one;")

    def call(request):
        return manager.call_extension("osqsdk_spool_distributed", "distributed", "osqsdk_spool",
                                      request)

    work = json.loads(call({"action": "getQueries"}).rows[0]["results"])
    assert work == {"queries": {"q1": "SELECT 1 AS one;"}}
    assert json.loads(call({"action": "getQueries"}).rows[0]["results"]) == {"queries": {}}
    results = {"queries": {"q1": [{"one": "1"}]}, "statuses": {"q1": 0}, "messages": {"q1": ""}}
    assert call({"action": "writeResults", "results": json.dumps(results)}).code == 0
    answer = json.loads((tmp_path / "done" / "q1.json").read_text())
    assert answer == {"status": 0, "message": "", "rows": [{"one": "1"}]}
    assert not (tmp_path / "pending" / "q1.sql").exists()


def test_python_environments_table_finds_virtualenv_packages(launch, manager, tmp_path):
    venv = tmp_path / "home" / "alice" / "app" / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    for name, version, installer in (("requests", "2.31.0", "pip"), ("urllib3", "1.26.5", "uv")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text(installer + "\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    launch("python_environments.py", "osqsdk_python_environments",
           OSQSDK_PYTHON_ROOTS=str(tmp_path / "home"))
    context = json.dumps({"constraints": [{"name": "name", "list": [{"op": 2, "expr": "urllib3"}],
                                           "affinity": "TEXT"}]})
    response = manager.call_extension("osqsdk_python_environments", "table",
                                      "python_environment_packages",
                                      {"action": "generate", "context": context})
    assert response.rows == [{
        "environment": str(venv), "interpreter": "", "site_packages": str(site),
        "is_virtualenv": "1", "name": "urllib3", "version": "1.26.5", "installer": "uv",
        "path": str(site / "urllib3-1.26.5.dist-info")}]
