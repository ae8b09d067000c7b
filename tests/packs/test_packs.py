"""The curated packs: lint-clean, tested with fixtures, served by DirectoryConfig; the
alert rules pass promtool's unit tests."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from osqsdk import DirectoryConfig
from osqsdk._osquery.config import parse_osquery_json
from osqsdk.lint import lint_paths
from osqsdk.runner._packtest import find_pack_tests, run_pack_test
from tests.conftest import peer_missing

PACKS = Path(__file__).resolve().parents[2] / "packs"


def test_packs_are_lint_clean():
    result = lint_paths([PACKS])
    assert [f"{f.path}:{f.line}: {f.code} {f.message}" for f in result.findings] == []
    names = {u.record.name for u in result.run.units if u.record.kind == "pack"}
    assert {"ssh_logins", "logged_in_users", "authorized_keys", "listening_ports", "containers",
            "container_ports", "container_processes", "process_events", "inventory"} <= names


def test_every_query_has_a_platform_and_an_interval():
    packs = [p for p in PACKS.glob("*.conf") if p.name != "osquery.conf"]
    assert len(packs) == 2
    for path in packs:
        pack = parse_osquery_json(path.read_text(), path.name)
        for name, query in pack["queries"].items():
            assert query.get("platform") and query.get("interval"), f"{path.name}:{name}"


@pytest.mark.parametrize("spec", find_pack_tests([PACKS / "tests"]), ids=lambda p: p.name)
def test_pack_tests_pass(spec):
    result = run_pack_test(spec)
    assert result.failures == [] and result.lines


def test_directory_config_serves_the_packs():
    config = DirectoryConfig(PACKS, name="packs")
    response = config.call({"action": "genConfig"})
    assert response.code == 0
    served = json.loads(response.rows[0]["osquery.conf"])
    assert served["packs"] == {"incident-response": "incident-response.conf",
                               "ephemeral-infra": "ephemeral-infra.conf"}
    assert served["options"]["host_identifier"] == "uuid"
    for name, value in served["packs"].items():
        pack = config.call({"action": "genPack", "name": name, "value": value})
        assert pack.code == 0 and json.loads(pack.rows[0][name])["queries"]


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        peer_missing("promtool (Debian package prometheus) is not installed")
    alerts = PACKS / "alerts"
    rules = sorted(p.name for p in alerts.glob("*.rules.yml"))
    assert rules == ["loki_shipper.rules.yml", "ssh_logins.rules.yml"]
    check = subprocess.run([promtool, "check", "rules", *rules], cwd=alerts,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = sorted(p.name for p in alerts.glob("*test*.yml"))
    assert tests == ["loki_shipper_test.yml", "ssh_logins_test.yml"]
    result = subprocess.run([promtool, "test", "rules", *tests], cwd=alerts,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
