"""A baseline for legacy packs: recorded once, then only new findings fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from osqsdk.cli import main
from tests.conftest import SHARED

LEGACY = {
    "queries": {
        "a": {"query": "SELECT nmae FROM processes", "interval": 60},
        "b": {"query": "SELECT * FROM users WHERE shell = \"/bin/sh\"", "interval": 3600},
    }
}


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "legacy.conf").write_text(json.dumps(LEGACY, indent=2))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_only_new_findings_fail_after_a_baseline(legacy: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "packs"]) == 1
    assert main(["lint", "packs", "--write-baseline", "lint-baseline.json"]) == 0
    assert "Wrote 2 findings to lint-baseline.json" in capsys.readouterr().out
    assert main(["lint", "packs", "--baseline", "lint-baseline.json"]) == 0
    out = capsys.readouterr().out
    assert "All checks passed." in out and "2 findings hidden by the baseline" in out
    # an edit elsewhere moves every line: the baseline still matches
    pack = legacy / "packs" / "legacy.conf"
    pack.write_text("\n\n" + pack.read_text())
    assert main(["lint", "packs", "--baseline", "lint-baseline.json"]) == 0
    capsys.readouterr()
    # a new problem fails, and is the only one shown
    data = json.loads(pack.read_text())
    data["queries"]["c"] = {"query": "SELECT pid FROM procesess", "interval": 60}
    pack.write_text(json.dumps(data, indent=2))
    assert main(["lint", "packs", "--baseline", "lint-baseline.json", "--format", "json"]) == 1
    assert [f["query"] for f in json.loads(capsys.readouterr().out)] == ["c"]
    # fixing an old one says the baseline has a stale entry
    data["queries"]["a"]["query"] = "SELECT name FROM processes"
    del data["queries"]["c"]
    pack.write_text(json.dumps(data, indent=2))
    assert main(["lint", "packs", "--baseline", "lint-baseline.json"]) == 0
    assert "1 baseline entry no longer found" in capsys.readouterr().out


def test_the_same_finding_twice_more_than_recorded_is_reported(
        legacy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "packs", "--write-baseline", "b.json"]) == 0
    capsys.readouterr()
    pack = legacy / "packs" / "legacy.conf"
    data = json.loads(pack.read_text())
    # the same query again under another pack file: another path, so new
    shutil.copy(pack, legacy / "packs" / "copy.conf")
    assert main(["lint", "packs", "--baseline", "b.json", "--format", "json"]) == 1
    paths = {f["path"] for f in json.loads(capsys.readouterr().out)}
    assert paths == {str(Path("packs") / "copy.conf")}
    assert data  # unchanged


def test_baseline_from_pyproject_and_bad_baselines_are_one_line_errors(
        legacy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "packs", "--write-baseline", "ci/baseline.json"]) == 2
    assert "ci/baseline.json: cannot be written" in capsys.readouterr().err
    (legacy / "ci").mkdir()
    assert main(["lint", "packs", "--write-baseline", "ci/baseline.json"]) == 0
    (legacy / "pyproject.toml").write_text('[tool.osqsdk.lint]\nbaseline = "ci/baseline.json"\n')
    assert main(["lint", "packs"]) == 0
    for text, said in (("{", "ci/baseline.json:1:2: not JSON"),
                       ('{"findings": []}', "not an osqsdk lint baseline"),
                       ('{"osqsdk-lint-baseline": 1, "findings": [{"path": 1}]}',
                        "findings[0] needs path"),
                       ('{"osqsdk-lint-baseline": 1, "findings": [{"path": "a", "code": "X", '
                        '"query": null, "message": "m", "count": true}]}',
                        "findings[0] needs path"),
                       ("[" * 100_000, "nested too deeply")):
        (legacy / "ci" / "baseline.json").write_text(text)
        capsys.readouterr()
        assert main(["lint", "packs"]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err


def test_a_baseline_of_the_shared_corpora_hides_everything_it_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    corpora = SHARED / "corpora"
    if not corpora.is_dir():
        pytest.skip("the shared corpora are not here")
    shutil.copytree(corpora, tmp_path / "corpora")
    monkeypatch.chdir(tmp_path)
    assert main(["lint", "--select", "ALL", "--format", "json", "corpora"]) == 1
    before = json.loads(capsys.readouterr().out)
    assert main(["lint", "--select", "ALL", "corpora", "--write-baseline", "b.json"]) == 0
    capsys.readouterr()
    assert main(["lint", "--select", "ALL", "--baseline", "b.json", "corpora"]) == 0
    assert f"{len(before)} findings hidden" in capsys.readouterr().out
