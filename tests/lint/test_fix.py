"""`osqsdk lint --fix` / `--diff`: only checked edits, and nothing else in the file moves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from osqsdk.cli import main
from osqsdk.lint import lint_paths
from tests.conftest import SHARED

PACK = (
    "\ufeff{\r\n"
    "  // legacy pack: comments, CRLF and a BOM must survive\r\n"
    '  "queries": {\r\n'
    '    "shells": {\r\n'
    '      "query": "SELECT username FROM users WHERE shell = \\"/bin/bash\\" OR '
    'shell = \\"/bin/zsh\\";",\r\n'
    '      "interval": 3600,\r\n'
    '      "platform": ["linux", "darwin"]\r\n'
    "    },\r\n"
    '    "cols": {"query": "SELECT \\"uid\\" FROM users WHERE \\"username\\" = \\"root\\"", '
    '"interval": 60}\r\n'
    "  }\r\n"
    "}\r\n"
)


@pytest.fixture
def pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "legacy.conf"
    path.write_bytes(PACK.encode("utf-8"))
    monkeypatch.chdir(tmp_path)
    return path


def test_diff_shows_the_safe_fixes_and_changes_nothing(pack: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--diff", "legacy.conf"]) == 1
    out, err = capsys.readouterr()
    assert pack.read_bytes() == PACK.encode("utf-8")
    removed = [line for line in out.splitlines() if line.startswith("-") and "---" not in line]
    added = [line for line in out.splitlines() if line.startswith("+") and "+++" not in line]
    assert len(removed) == len(added) == 2
    assert "shell = '/bin/bash' OR shell = '/bin/zsh'" in added[0]
    assert "\\\"username\\\" = 'root'" in added[1]  # real columns keep their quotes
    assert "3 fixes would be applied to 1 file." in err
    assert main(["lint", "--diff", "--unsafe-fixes", "legacy.conf"]) == 1
    assert '+      "platform": "linux,darwin"' in capsys.readouterr().out


def test_fix_changes_only_the_spans_and_lints_again(pack: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "legacy.conf"]) == 1
    assert "3 fixable with --fix." in capsys.readouterr().out
    assert main(["lint", "--fix", "legacy.conf"]) == 1  # the platform list is still there
    out = capsys.readouterr().out
    assert "Fixed 3 findings in 1 file." in out and "OSQ007" in out and "OSQ108" not in out
    expected = (PACK.replace('\\"/bin/bash\\"', "'/bin/bash'")
                .replace('\\"/bin/zsh\\"', "'/bin/zsh'").replace('\\"root\\"', "'root'"))
    assert pack.read_bytes() == expected.encode("utf-8")
    assert main(["lint", "--fix", "--unsafe-fixes", "legacy.conf"]) == 0
    expected = expected.replace('["linux", "darwin"]', '"linux,darwin"')
    assert pack.read_bytes() == expected.encode("utf-8")
    assert main(["lint", "--select", "ALL", "legacy.conf"]) in (0, 1)
    assert "OSQ108" not in capsys.readouterr().out


def test_a_fix_the_file_format_would_misread_is_not_applied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # inside a single-quoted YAML scalar, ' must be written '': the plain edit would break
    # the YAML, so the check refuses it and the file stays as it was
    monkeypatch.chdir(tmp_path)
    fleet = ("apiVersion: v1\nkind: query\nspec:\n  name: shells\n"
             "  query: 'SELECT username FROM users WHERE shell = \"/bin/sh\"'\n")
    (tmp_path / "q.yml").write_text(fleet)
    assert main(["lint", "--fix", "q.yml"]) == 1
    out = capsys.readouterr().out
    assert "1 offered fix not applied" in out and "OSQ108" in out
    assert (tmp_path / "q.yml").read_text() == fleet
    # in a .sql file the same edit is fine
    (tmp_path / "q.sql").write_text('-- shells\nSELECT username FROM users WHERE shell = "/bin/sh";\n')
    assert main(["lint", "--fix", "q.sql"]) == 0
    assert (tmp_path / "q.sql").read_text() == (
        "-- shells\nSELECT username FROM users WHERE shell = '/bin/sh';\n")


def test_fix_over_the_shared_corpora_adds_no_finding(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    corpora = SHARED / "corpora"
    if not corpora.is_dir():
        pytest.skip("the shared corpora are not here")
    shutil.copytree(corpora, tmp_path / "corpora")
    monkeypatch.chdir(tmp_path)

    def keys() -> list[tuple[str, str, str, str]]:
        return sorted((f.path, f.code, f.query or "", f.message)
                      for f in lint_paths(["corpora"]).findings)

    before = keys()
    assert main(["lint", "--fix", "--exit-zero", "corpora"]) == 0
    out = capsys.readouterr().out
    after = keys()
    fixed = [k for k in before if k[1] == "OSQ108"]
    assert fixed and not [k for k in after if k[1] == "OSQ108" and k not in before]
    assert set(after) <= set(before), set(after) - set(before)  # nothing new
    assert f"Fixed {len(before) - len(after)} findings" in out
    changed = [p for p in (tmp_path / "corpora").rglob("*") if p.is_file() and
               p.read_bytes() != (corpora / p.relative_to(tmp_path / "corpora")).read_bytes()]
    assert changed
    for path in changed:
        if path.suffix in (".json", ".conf"):
            json.loads(path.read_text())  # still JSON (these have no comments)


def test_a_fix_that_would_rename_a_result_column_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SELECT "x" names its result column "x" (with the quotes) and SELECT 'x' names it 'x':
    # osquery keys result rows by those names, so the rows would change
    monkeypatch.chdir(tmp_path)
    pack = {"queries": {"a": {"query": 'SELECT "x", pid FROM processes', "interval": 60},
                        "b": {"query": 'SELECT pid FROM processes WHERE name = "x"',
                              "interval": 60}}}
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    assert main(["lint", "--fix", "--exit-zero", "p.conf"]) == 0
    out = capsys.readouterr().out
    assert "Fixed 1 finding in 1 file." in out
    assert "1 offered fix not applied: SQLite would compile the edited query differently" in out
    fixed = json.loads((tmp_path / "p.conf").read_text())["queries"]
    assert fixed["a"]["query"] == 'SELECT "x", pid FROM processes'
    assert fixed["b"]["query"] == "SELECT pid FROM processes WHERE name = 'x'"


def test_a_broken_document_elsewhere_in_the_file_does_not_block_the_fixes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    text = ("apiVersion: v1\nkind: query\nspec:\n  name: a\n"
            "  query: SELECT uid FROM users WHERE shell = \"/bin/sh\"\n---\n"
            "apiVersion: v1\nkind: query\nspec:\n  name: [broken\n---\n"
            "apiVersion: v1\nkind: query\nspec:\n  name: c\n"
            "  query: SELECT nam FROM users WHERE shell = \"/bin/zsh\"\n")
    (tmp_path / "q.yml").write_text(text)
    assert main(["lint", "--fix", "--exit-zero", "q.yml"]) == 0
    out = capsys.readouterr().out
    assert "Fixed 1 finding in 1 file." in out
    assert "not applied: the query does not compile, so no check can be made" in out
    assert (tmp_path / "q.yml").read_text() == text.replace('"/bin/sh"', "'/bin/sh'")


def test_fix_writes_through_a_symlink_and_keeps_hard_links(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "target.sql").write_text('SELECT uid FROM users WHERE shell = "/bin/sh";\n')
    (tmp_path / "link.sql").symlink_to("target.sql")
    (tmp_path / "hard.sql").write_text('SELECT uid FROM users WHERE shell = "/bin/ksh";\n')
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "twin.sql").hardlink_to(tmp_path / "hard.sql")
    assert main(["lint", "--fix", "link.sql", "hard.sql"]) == 0
    assert (tmp_path / "link.sql").is_symlink()
    assert "'/bin/sh'" in (tmp_path / "target.sql").read_text()
    assert (tmp_path / "hard.sql").stat().st_ino == (tmp_path / "other" / "twin.sql").stat().st_ino
    assert "'/bin/ksh'" in (tmp_path / "other" / "twin.sql").read_text()


def test_a_link_planted_where_the_new_file_is_made_is_not_written_through(
        tmp_path: Path) -> None:
    from osqsdk.lint._files import write_file

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    out = tmp_path / "pack.conf"
    for name in (".pack.conf.partial", ".pack.conf.tmp", "pack.conf.partial"):
        (tmp_path / name).symlink_to(victim)
    write_file(out, b"new\n")
    assert victim.read_text() == "keep me\n"
    assert out.read_bytes() == b"new\n" and not out.is_symlink()
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".pack.conf.partial", ".pack.conf.tmp", "pack.conf.partial", "pack.conf",
         "victim.txt"])  # nothing left behind


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask
