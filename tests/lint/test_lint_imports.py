"""Import graphs, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("thrift", "osqsdk.extension._server", "osqsdk.extension._wire")


@pytest.mark.parametrize("stmt,extra", [
    # SQLite (apsw) is loaded only when a query is linted: it is the judge of every query
    ("import osqsdk.lint", ("sqlglot", "yaml", "jsonschema", "click", "apsw")),
    ("import osqsdk.lint; osqsdk.lint.all_rules()", ("apsw",)),
    ("from osqsdk.lint import lint_text; lint_text('SELECT 1', filename='q.sql')",
     ("yaml", "jsonschema")),
    ("from osqsdk.cli import main; main(['lint', '--help'])", ("apsw",)),
    ("from osqsdk.cli import main; main(['rules'])", ("apsw",)),
])
def test_lint_never_imports_the_runtime(stmt: str, extra: tuple[str, ...]) -> None:
    banned = FORBIDDEN + extra
    code = (f"{stmt}\nimport sys\nbad = [m for m in sys.modules if m in {banned!r} or "
            f"m.split('.')[0] in {banned!r}]\nassert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)


def test_linting_a_clean_pack_does_not_import_jsonschema(tmp_path: Path) -> None:
    pack = tmp_path / "p.conf"
    pack.write_text('{"queries": {"a": {"query": "SELECT pid FROM processes", "interval": 60}}}')
    code = ("from osqsdk.cli import main; import sys\n"
            f"rc = main(['lint', {str(pack)!r}])\n"
            "assert rc == 0, rc\nassert 'jsonschema' not in sys.modules\n"
            "assert 'thrift' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
