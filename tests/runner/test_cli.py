"""osqsdk query / run / test, and the pytest plugin."""

import json
import sys
from pathlib import Path

import pytest

from osqsdk.cli import main

LAST_TICKS = {"ticks": {
    "1": [{"username": "root", "type": 8, "time": 1}],
    "3": [{"username": "root", "type": 8, "time": 1},
          {"username": "alice", "type": 7, "host": "10.0.0.9", "time": 5, "tty": "pts/0",
           "pid": 77}]}}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "last.json").write_text(json.dumps(LAST_TICKS))
    (tmp_path / "osquery.conf").write_text(
        '{\n  // a comment osquery strips\n  "packs": {"ir": "packs/ir.conf"}\n}\n')
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "ir.conf").write_text(json.dumps({"queries": {"ssh": {
        "query": "SELECT username, host FROM last WHERE type = 7;", "interval": 60}}}))
    (tmp_path / "ext.py").write_text(
        "import osqsdk\n"
        "shells = osqsdk.TablePlugin('shells', [osqsdk.Column('uid', 'BIGINT'), "
        "osqsdk.Column('shell')], lambda ctx: [{'uid': 0, 'shell': '/bin/bash'}])\n")
    return tmp_path


def test_query_json_table_and_csv(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["query", "--fixtures", "fixtures", "--tick", "3", "--format", "json",
                 "SELECT username, type FROM last ORDER BY username"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"username": "alice", "type": "7"},
                                                   {"username": "root", "type": "8"}]
    assert main(["query", "--extension", "ext.py", "--format", "csv",
                 "SELECT shell FROM shells WHERE uid = 0"]) == 0
    assert capsys.readouterr().out == "shell\n/bin/bash\n"
    assert main(["query", "--extension", "ext.py", "SELECT uid, shell FROM shells"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "| uid | shell     |"


def test_query_errors(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["query", "SELECT * FROM nope"]) == 1
    err = capsys.readouterr().err
    assert "Error: no such table: nope" in err and "Query: SELECT * FROM nope" in err
    (project / "fixtures" / "bad.json").write_text("[]")
    assert main(["query", "--fixtures", "fixtures", "SELECT 1"]) == 2
    assert "there is no table 'bad'" in capsys.readouterr().err


def test_run_prints_the_differential_lines(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["run", "osquery.conf", "--fixtures", "fixtures", "--ticks", "4",
                 "--host-identifier", "web-1"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [(l["name"], l["action"], l["columns"], l["counter"]) for l in lines] == [
        ("pack_ir_ssh", "added", {"host": "10.0.0.9", "username": "alice"}, 1)]
    assert lines[0]["hostIdentifier"] == "web-1"


def test_run_forwards_to_a_launched_extension_logger(project, capsys, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(project)
    out = tmp_path_factory.mktemp("logs")
    logger = project / "logger.py"
    logger.write_text(
        f"#!{sys.executable}\n"
        "import osqsdk\n"
        f"OUT = {str(out / 'lines.txt')!r}\n"
        "def write(record):\n"
        "    with open(OUT, 'a') as f:\n"
        "        f.write(record.raw + '\\n')\n"
        "if __name__ == '__main__':\n"
        "    osqsdk.run('filelog', [osqsdk.LoggerPlugin('filelog', log_result=write)])\n")
    logger.chmod(0o750)
    assert main(["run", "osquery.conf", "--fixtures", "fixtures", "--ticks", "3",
                 "--launch", str(logger), "--logger-plugin", "filelog", "--quiet"]) == 0
    written = [json.loads(l) for l in (out / "lines.txt").read_text().splitlines()]
    assert [w["columns"]["username"] for w in written] == ["alice"]


def test_run_reports_bad_configs_and_loggers(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    (project / "broken.conf").write_text("{ not json")
    assert main(["run", "broken.conf"]) == 2
    assert ": not JSON" in capsys.readouterr().err
    assert main(["run", "osquery.conf", "--logger-plugin", "nope"]) == 2
    assert "no logger plugin named 'nope'" in capsys.readouterr().err


def write_test(project, expect, **extra):
    spec = {"pack": "packs/ir.conf", "fixtures": "fixtures", "ticks": 4, "expect": expect, **extra}
    path = project / "ir.test.json"
    path.write_text(json.dumps(spec))
    return path


def test_pack_test_passes_and_fails(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    good = [{"tick": 3, "name": "pack_ir_ssh", "action": "added",
             "columns": {"username": "alice", "host": "10.0.0.9"}, "counter": 1}]
    write_test(project, good)
    assert main(["test", "."]) == 0
    assert "ir.test.json: ok (1 lines)" in capsys.readouterr().out
    write_test(project, [{**good[0], "columns": {"username": "bob", "host": "10.0.0.9"}}])
    assert main(["test", "ir.test.json"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and 'columns: want {"username": "bob"' in out
    write_test(project, [])
    assert main(["test", "ir.test.json"]) == 1
    assert "unexpected line at tick 3" in capsys.readouterr().out


def test_pack_test_errors(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    (project / "x.test.yaml").write_text("pack: packs/ir.conf\nconfig: osquery.conf\n")
    assert main(["test", "x.test.yaml"]) == 2
    assert "exactly one of 'pack' or 'config'" in capsys.readouterr().err
    assert main(["test", "missing.test.yaml"]) == 2


def test_pytest_plugin_fixtures(pytester):
    pytester.makeini("[pytest]\nosqsdk_extensions = ext.py\n")
    pytester.makepyfile(ext="import osqsdk\nt = osqsdk.TablePlugin('t', [osqsdk.Column('x')], "
                            "lambda ctx: [{'x': 'hi'}])\n")
    pytester.makepyfile(test_it="""
def test_engine(osq_engine):
    assert osq_engine.query("SELECT x FROM t").rows == [{"x": "hi"}]

def test_manager(osq_manager):
    assert osq_manager.ping().message == "pong"

def test_loki(osq_loki):
    import urllib.request
    body = b'{"streams":[{"stream":{"job":"t"},"values":[["%d","hello"]]}]}' % (
        __import__("time").time_ns())
    request = urllib.request.Request(osq_loki.push_url, data=body,
                                     headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(request).status == 204
    assert osq_loki.lines() == ["hello"]
""")
    result = pytester.runpytest()  # the plugin is loaded through its pytest11 entry point
    result.assert_outcomes(passed=3)


def test_pace_plays_ticks_in_real_time_and_serves_until_interrupted(tmp_path):
    import signal
    import subprocess
    import time

    root = Path(__file__).resolve().parents[2]
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "osqsdk", "run", "packs/osquery.conf",
                             "--fixtures", "packs/tests/fixtures/incident-response",
                             "--ticks", "3", "--pace", "1"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    waited = time.monotonic() - started
    assert "3 ticks run; serving until interrupted" in line
    assert waited >= 2.0  # ticks at 0, 1 and 2 s
    time.sleep(0.5)
    assert proc.poll() is None  # still serving
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert '"name":"pack_incident-response_ssh_logins"' in out
