"""osquery-python 3.1.1 plugin classes run unchanged under osqsdk, with osqsdk's fixes."""

import json
import sys
from pathlib import Path

import pytest

from osqsdk import ExitCode
from osqsdk.extension._compat import adapt
from osqsdk.extension._loader import load_file

FILES = Path(__file__).parent / "files"
OPY = FILES / "opy_ext.py"


@pytest.fixture
def legacy_plugins():
    loaded = load_file(OPY)
    return {p.name: p for p in loaded.plugins}


def test_osquery_python_plugins_are_found_in_its_registry(legacy_plugins):
    # @register_plugin returns None: the module has no attributes holding the plugins.
    assert set(legacy_plugins) == {"legacy_table", "legacy_logger", "legacy_config"}


def test_legacy_table_values_are_coerced_correctly(legacy_plugins):
    table = legacy_plugins["legacy_table"]
    assert [r["type"] for r in table.routes() if r["id"] == "column"] == ["TEXT", "INTEGER", "BIGINT"]
    response = table.call({"action": "generate"})
    # osquery-python itself sends "True", "None" and keeps the junk key.
    assert response.rows == [{"a": "x", "flag": "1", "big": "1099511627776"}, {"flag": "0"}]


def test_legacy_table_gets_the_parsed_context_dict(tmp_path):
    import osquery

    seen = []

    class Peek(osquery.TablePlugin):
        def name(self):
            return "peek"

        def columns(self):
            return [osquery.TableColumn(name="a", type=osquery.STRING)]

        def generate(self, context):
            seen.append(context)
            return []

    adapt(Peek).call({"action": "generate", "context": '{"constraints":[]}'})
    assert seen == [{"constraints": []}]


def test_legacy_logger_answers_features_with_no_status_logs(legacy_plugins, tmp_path, monkeypatch):
    logger = legacy_plugins["legacy_logger"]
    # osquery-python answers code 1 ("not a valid action"), which osqueryd reads as bit 0 set.
    assert logger.call({"action": "features"}).code == 0
    assert logger.call({"init": "osqueryd"}).code == 0
    log = tmp_path / "log.txt"
    monkeypatch.setitem(type(logger.obj).log_string.__globals__, "LOG", str(log))
    assert logger.call({"string": '{"name":"q"}', "category": "event"}).code == 0
    assert logger.call({"snapshot": '{"name":"s"}'}).code == 0
    assert log.read_text().splitlines() == ['{"name":"q"}', '{"name":"s"}']


def test_legacy_config_serves_gen_config(legacy_plugins):
    config = legacy_plugins["legacy_config"]
    response = config.call({"action": "genConfig"})
    assert response.code == 0
    assert json.loads(response.rows[0]["main"])["schedule"]["t"]["interval"] == 60
    assert config.call({"action": "genPack", "name": "p", "value": "x"}).code == 1


def test_legacy_file_served_by_osqsdk_extension_run(manager, spawn):
    proc = spawn([sys.executable, "-m", "osqsdk", "extension", "run", str(OPY)], manager.socket_path)
    # the name and version of the file's own start_extension(name="legacy", version="0.0.1")
    ext = manager.wait_for("legacy")
    assert ext.version == "0.0.1"
    assert set(ext.registry) == {"table", "logger", "config"}
    response = manager.call_extension("legacy", "table", "legacy_table", {"action": "generate"})
    assert response.rows[0] == {"a": "x", "flag": "1", "big": "1099511627776"}
    manager.stop()
    assert proc.wait() == ExitCode.OK


def test_extension_run_reports_a_broken_file(tmp_path, manager):
    import subprocess

    bad = tmp_path / "bad.py"
    bad.write_text("import osqsdk\n\nraise RuntimeError('config missing')\n")
    result = subprocess.run([sys.executable, "-m", "osqsdk", "extension", "run", str(bad),
                             "--socket", manager.socket_path], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == ExitCode.USAGE
    assert f"{bad}:3: loading the extension failed: RuntimeError: config missing" in result.stderr
    assert "Traceback" not in result.stderr
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    result = subprocess.run([sys.executable, "-m", "osqsdk", "extension", "run", str(empty)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == ExitCode.USAGE and "defines no plugins" in result.stderr


def test_a_legacy_table_row_with_an_undeclared_key_still_drops_it():
    # rows whose keys are all columns take the fast paths; another key sends the call to the
    # per-row path, which drops the key as osqueryd does (strict_keys=False)
    import osquery

    from osqsdk.extension._compat import adapt

    class Legacy(osquery.TablePlugin):
        def name(self):
            return "legacy_extra"

        def columns(self):
            return [osquery.TableColumn(name="a", type=osquery.STRING)]

        def generate(self, context):
            return [{"a": "1"}, {"a": "2", "junk": "x"}]

    table = adapt(Legacy)
    assert table.call({"action": "generate"}).rows == [{"a": "1"}, {"a": "2"}]
