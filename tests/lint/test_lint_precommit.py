"""The pre-commit hook, run by pre-commit itself against a throwaway repository of packs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_manifest_declares_the_lint_hook() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "osqsdk-lint")
    assert hook["language"] == "python"
    assert "osqsdk lint" in hook["entry"]
    assert hook["require_serial"] is True
    import re
    files = re.compile(hook["files"])
    for name in ("packs/a.conf", "p.json", "fleet/q.yml", "q.yaml", "detect.sql"):
        assert files.search(name), name
    assert not files.search("README.md")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"})


@pytest.mark.slow
def test_pre_commit_runs_the_hook(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytest.importorskip("pre_commit")
    work = tmp_path / "packs-repo"
    work.mkdir()
    _git(work, "init", "-q")
    (work / "good.conf").write_text(
        '{"queries": {"users": {"query": "SELECT uid, username FROM users", "interval": 3600}}}\n')
    (work / "package.json").write_text('{"name": "not-osquery"}\n')
    _git(work, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PRE_COMMIT", None)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO),
                               "osqsdk-lint", "--all-files", "--color", "never"],
                              cwd=work, capture_output=True, text=True, env=env, timeout=900,
                              check=False)

    ok = run()
    offline = ("NewConnectionError", "Temporary failure in name resolution",
               "No matching distribution found")
    if ok.returncode != 0 and any(m in ok.stdout + ok.stderr for m in offline):
        pytest.skip("pre-commit could not install the hook: no package index reachable")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "osqsdk lint" in ok.stdout and "Passed" in ok.stdout
    (work / "bad.conf").write_text(
        '{"queries": {"users": {"query": "SELECT uid, nmae FROM users", "interval": 0}}}\n')
    _git(work, "add", ".")
    bad = run()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "bad.conf:1:46: OSQ104 error: no such column: nmae in users [users]" in bad.stdout
    assert "OSQ401" in bad.stdout
    assert "package.json" not in bad.stdout
