"""Bad input gets one finding or error with a location, never a traceback, and the linter
never reads outside its inputs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from lint_helpers import assert_findings, codes, lint_file

from osqsdk.cli import main
from osqsdk.lint import LintInputError, lint_paths


def test_invalid_json_points_at_line_and_column(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "pack.conf", '{\n  "queries": {\n    "a": 1,\n  }\n}\n')
    assert_findings(findings, "OSQ002")
    assert (findings[0].line, findings[0].column) == (4, 3)
    assert findings[0].path.endswith("pack.conf")


def test_invalid_yaml_points_at_line(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "q.yml", "kind: query\nspec:\n  name: [a\n  query: x\n")
    assert codes(findings) == ["OSQ003"]
    assert findings[0].line >= 3


def test_empty_file(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "osquery.conf", "")
    assert_findings(findings, "OSQ002")
    assert "empty" in findings[0].message


def test_binary_file(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "pack.conf", b"\x7fELF\x02\x01\x01\x00\x00\x00")
    assert_findings(findings, "OSQ004")
    assert "binary" in findings[0].message


def test_non_utf8_names_the_byte_and_its_position(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "pack.conf", b'{\n "queries": {"a": {"query": "SELECT \xe9"}}}')
    assert_findings(findings, "OSQ004")
    f = findings[0]
    assert "0xe9" in f.message and f.line == 2 and f.column == 37


def test_fifty_megabyte_file_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "huge.conf"
    with open(big, "wb") as fh:  # sparse: the test itself stays cheap
        fh.truncate(50 * 1024 * 1024)
    findings = lint_paths([str(big)]).findings
    assert_findings(findings, "OSQ004")
    assert "52428800 bytes" in findings[0].message


def test_json_deeper_than_osquery_allows(tmp_path: Path) -> None:
    text = '{"a": ' * 100_000 + "1" + "}" * 100_000
    findings = lint_file(tmp_path, "deep.conf", text)
    assert_findings(findings, "OSQ005")
    assert findings[0].arguments["limit"] == 32
    assert findings[0].column == 1 + 6 * 32  # where level 33 opens


def test_deep_yaml(tmp_path: Path) -> None:
    findings = lint_file(tmp_path, "deep.yml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert_findings(findings, "OSQ005")


def test_ten_thousand_nested_parentheses(tmp_path: Path) -> None:
    sql = "SELECT " + "(" * 10_000 + "1" + ")" * 10_000
    findings = lint_file(tmp_path, "deep.sql", sql)
    assert_findings(findings, "OSQ005")
    assert findings[0].column > 7


def test_nesting_the_parser_cannot_follow_is_reported_not_raised(tmp_path: Path) -> None:
    old = sys.getrecursionlimit()
    sql = "SELECT " + "(" * 120 + "1" + ")" * 120
    try:
        sys.setrecursionlimit(400)
        findings = lint_file(tmp_path, "mid.sql", sql)
    finally:
        sys.setrecursionlimit(old)
    assert set(codes(findings)) <= {"OSQ005"}


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    with pytest.raises(LintInputError):
        lint_paths([str(tmp_path / "nope")])
    assert main(["lint", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_symlink_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.conf"
    os.symlink(loop, loop)
    findings = lint_paths([str(loop)]).findings
    assert_findings(findings, "OSQ004")
    assert "symlink loop" in findings[0].message


def test_symlink_loop_inside_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    os.symlink(tmp_path / "a" / "b.conf", tmp_path / "a" / "c.conf")
    os.symlink(tmp_path / "a" / "c.conf", tmp_path / "a" / "b.conf")
    os.symlink(tmp_path / "a", tmp_path / "a" / "self")  # a directory loop is not followed
    findings = lint_paths([str(tmp_path)]).findings
    assert codes(findings) == ["OSQ004", "OSQ004"]


def test_symlink_out_of_the_tree_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.conf"
    secret.write_text('{"queries": {"x": {"query": "SELECT nosuchcol FROM users"}}}')
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(secret, tree / "link.conf")
    findings = lint_paths([str(tree)]).findings
    assert_findings(findings, "OSQ004")
    assert "outside" in findings[0].message


def test_pack_paths_outside_the_inputs_are_reported_not_read(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    secret = tmp_path / "secret.conf"
    secret.write_text('{"queries": {"x": {"query": "SELECT nosuchcol FROM users"}}}')
    config = tmp_path / "cfg" / "osquery.conf"
    config.write_text('{"packs": {"a": "/etc/shadow", "b": "../secret.conf", '
                      '"c": "../../../../../../../etc/passwd", "*": "/etc/*"}}')
    findings = lint_paths([str(tmp_path / "cfg")]).findings
    assert codes(findings) == ["OSQ408"] * 4
    assert all(f.path.endswith("osquery.conf") and f.line == 1 for f in findings)


def test_pack_paths_and_globs_inside_the_tree_are_linted_with_the_config(tmp_path: Path
                                                                         ) -> None:
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "one.conf").write_text(
        '{"platform": "linux", "queries": {"q": {"query": "SELECT nmae FROM processes"}}}')
    (tmp_path / "packs" / "two.conf").write_text(
        '{"queries": {"q": {"query": "SELECT pid FROM processes", "interval": 0}}}')
    (tmp_path / "osquery.conf").write_text(
        '{"packs": {"first": "packs/one.conf", "*": "packs/t*.conf"}}')
    findings = lint_paths([str(tmp_path)]).findings
    by_code = {f.code: f for f in findings}
    assert sorted(by_code) == ["OSQ104", "OSQ401"]
    assert by_code["OSQ104"].pack == "first" and by_code["OSQ104"].path.endswith("one.conf")
    assert by_code["OSQ401"].pack == "two"


def test_yaml_cannot_build_python_objects(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"""kind: query
spec:
  name: !!python/object/apply:os.system ["touch {marker}"]
  query: SELECT 1
"""
    findings = lint_file(tmp_path, "evil.yml", text)
    assert not marker.exists()
    assert codes(findings) == ["OSQ003"]


def test_yaml_alias_bomb_stays_small(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("queries:\n  - name: q\n    query: SELECT 1")
    findings = lint_file(tmp_path, "bomb.yml", "\n".join(lines) + "\n")
    assert "OSQ009" not in codes(findings)


def test_unrelated_json_and_yaml_in_a_directory_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "x", "version": "1"}')
    (tmp_path / ".pre-commit-config.yaml").write_text("repos: []\n")
    (tmp_path / "ci.yml").write_text("jobs:\n  test:\n    runs-on: x\n")
    (tmp_path / "README.md").write_text("# hi")
    assert lint_paths([str(tmp_path)]).findings == []


def test_sql_file_headers(tmp_path: Path) -> None:
    text = "-- interval: 60\n-- platform: windows\nSELECT name FROM apps;\n"
    findings = lint_file(tmp_path, "apps.sql", text)
    assert codes(findings) == ["OSQ201"]
    assert findings[0].query == "apps" and (findings[0].line, findings[0].column) == (3, 18)


def test_fleet_gitops_path_references(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "queries.yml").write_text(
        "- name: users\n  query: SELECT nmae FROM users\n  interval: 3600\n")
    (tmp_path / "default.yml").write_text(
        "queries:\n"
        "  - path: lib/queries.yml\n"
        "  - path: ../../../../../../etc/passwd\n"
        "  - path: lib/missing.yml\n")
    findings = lint_paths([str(tmp_path / "default.yml")]).findings
    got = sorted((f.code, Path(f.path).name) for f in findings)
    assert got == [("OSQ104", "queries.yml"), ("OSQ408", "default.yml"),
                   ("OSQ409", "default.yml")]


def test_json_that_is_not_an_object(tmp_path: Path) -> None:
    # Named on the command line (or a .conf): a finding with a readable message.
    findings = lint_file(tmp_path, "pack.conf", "[1, 2]")
    assert_findings(findings, "OSQ007")
    assert findings[0].message == "(top level): the top level must be a JSON object"


def test_data_json_inside_a_linted_directory_is_not_a_pack(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "users.json").write_text('[{"uid": 0}]')
    (tmp_path / "pack.conf").write_text('{"queries": {"u": {"query": "SELECT uid FROM users;",'
                                        ' "interval": 60}}}')
    assert codes(lint_paths([str(tmp_path)]).findings) == []


def test_pack_path_with_a_nul_character_matches_no_file(tmp_path: Path) -> None:
    (tmp_path / "osquery.conf").write_text('{"packs": {"a": "x\\u0000y.conf", "*": "/\\u0000/*"}}')
    (tmp_path / "default.yml").write_text('queries:\n  - path: "x\\0y.yml"\n')
    findings = lint_paths([str(tmp_path)]).findings
    assert codes(findings) == ["OSQ409"] * 3


def test_a_lone_surrogate_is_invalid_json_as_osqueryd_reads_it(tmp_path: Path) -> None:
    conf = tmp_path / "osquery.conf"
    conf.write_text('{"packs": {"x": "\\ud800.conf"}}')  # RapidJSON refuses half a pair
    findings = lint_paths([str(conf)]).findings
    assert [(f.code, f.line, f.column) for f in findings] == [("OSQ002", 1, 18)]
    assert "half of a surrogate pair" in findings[0].message


def test_a_pack_glob_does_not_follow_symlinks_out_of_the_tree_or_into_cycles(
        tmp_path: Path) -> None:
    import time

    packs = tmp_path / "packs"
    (packs / "sub").mkdir(parents=True)
    (packs / "root").symlink_to("/")           # out of the tree, the whole filesystem
    (packs / "sub" / "up").symlink_to("..")     # a cycle
    (packs / "loop").symlink_to("loop")         # a self-link
    (packs / "sub" / "a.conf").write_text('{"queries": {"q": {"query": "SELECT 1"}}}')
    os.mkfifo(packs / "x.conf")                 # opening it would wait for a writer
    (tmp_path / "osquery.conf").write_text('{"packs": {"*": "packs/%%"}}')
    started = time.monotonic()
    result = lint_paths([str(tmp_path)])
    assert time.monotonic() - started < 20
    unreadable = [f for f in result.findings if f.code == "OSQ004"]
    assert [(Path(f.path).name, f.arguments["cause"]) for f in unreadable] == [
        ("x.conf", "not a regular file (not read)")]
    names = {Path(d.path).name for d in result.run.documents}
    assert names == {"osquery.conf", "a.conf"}


@pytest.mark.parametrize("sql", [
    "SELECT " + "9" * 5000 + " FROM processes",          # past Python's int-string limit
    "SELECT pid FROM processes WHERE pid = " + "1" * 4301,
    "SELECT " + ", ".join(f"c{i:0199d}" for i in range(1999)) + " FROM processes",
])
def test_hostile_queries_get_findings_not_tracebacks_and_bounded_time(sql: str) -> None:
    import time

    from osqsdk.lint import lint_text

    started = time.monotonic()
    findings = lint_text(sql, filename="q.sql")
    assert time.monotonic() - started < 60  # bounded: not quadratic minutes
    assert not [f for f in findings if f.code == "OSQ009"]  # the linter did not fail


def test_a_repeated_key_is_linted_as_the_value_osqueryd_reads(tmp_path: Path) -> None:
    conf = tmp_path / "osquery.conf"
    conf.write_text('{\n "schedule": {\n'
                    '  "a": {"query": "SELECT nmae FROM processes", "interval": 60},\n'
                    '  "a": {"query": "SELECT typo FROM users", "interval": 60}},\n'
                    ' "packs": {\n'
                    '  "ir": {"queries": {"b": {"query": "SELECT uid FROM userz"}}},\n'
                    '  "ir": {"queries": {"b": {"query": "SELECT pidd FROM processes"}}}}}\n')
    findings = lint_paths([str(conf)]).findings
    got = sorted((f.code, f.line, f.message.split(";")[-1].strip()) for f in findings)
    assert got == [
        ("OSQ008", 4, "osqueryd reads only the first"),   # the schedule's second "a"
        ("OSQ008", 7, "osqueryd reads only the last"),    # the second pack "ir" replaces it
        ("OSQ104", 3, "no such column: nmae in processes"),
        ("OSQ104", 7, "no such column: pidd in processes"),
    ]


def test_a_file_name_that_is_not_utf8_is_printed_as_it_is(tmp_path: Path) -> None:
    import subprocess

    bad = os.fsencode(str(tmp_path)) + b"/q\xff.sql"
    with open(bad, "wb") as fh:
        fh.write(b"SELECT nmae FROM processes;\n")
    result = subprocess.run([sys.executable, "-m", "osqsdk", "lint", str(tmp_path)],
                            capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert result.returncode == 1
    assert bad + b":1:8: OSQ104" in result.stdout
