"""The import directions of docs/architecture.md hold, and a forbidden import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"),
                           "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("runner/_values.py", "import osqsdk.testing", "Nothing but tests imports osqsdk.testing"),
    ("lint/_finding.py", "import thrift", "The linter never loads Thrift"),
    ("extension/_server.py", "import osqsdk.extension._wire._gen.ttypes",
     "Generated Thrift code is imported only inside _wire"),
    ("extension/_context.py", "import sqlglot", "import osqsdk never loads sqlglot or click"),
    ("_osquery/records.py", "import osqsdk.loki", "Products sit on the shared layers"),
    ("runner/_remote.py", "import osqsdk.runner._engine", "No cycles inside a product"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    shutil.copytree(ROOT / "osqsdk", tmp_path / "osqsdk",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "osqsdk" / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_ruff_is_clean_with_the_projects_rule_selection():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", "osqsdk", "tests", "extensions"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(tmp_path):
    mypy = Path(sys.executable).with_name("mypy")
    # the settings (strict, the generated code left out) are in pyproject.toml
    result = subprocess.run([str(mypy), "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
