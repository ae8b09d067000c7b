"""`osqsdk pack build|unpack|apply`: packs to .sql directories and back, bulk changes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from osqsdk._osquery.config import parse_interval, parse_osquery_json
from osqsdk.cli import main
from tests.conftest import SHARED

CORPUS_PACKS = sorted((SHARED / "corpora" / "osquery" / "packs").glob("*.conf")) + \
    sorted((SHARED / "corpora" / "osquery-attck").rglob("*.conf"))


def normalized(pack: dict) -> dict:
    """A pack as osqueryd reads it: intervals as numbers (osquery takes "60" and 60)."""
    out = {k: v for k, v in pack.items() if k != "queries"}
    out["queries"] = {name: {k: (parse_interval(v) if k == "interval" else v)
                             for k, v in body.items()}
                      for name, body in pack["queries"].items()}
    return out


@pytest.mark.parametrize("source", CORPUS_PACKS, ids=lambda p: p.name)
def test_unpack_then_build_gives_the_same_pack(source: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    original = parse_osquery_json(source.read_text(), str(source))
    assert main(["pack", "unpack", str(source), "-o", str(tmp_path / "dir")]) == 0
    sql_files = list((tmp_path / "dir").glob("*.sql"))
    assert len(sql_files) == len(original["queries"])
    assert main(["pack", "build", str(tmp_path / "dir"), "-o", str(tmp_path / "p.conf")]) in (0, 1)
    rebuilt = json.loads((tmp_path / "p.conf").read_text())
    assert normalized(rebuilt) == normalized(original)


DEFENSE_KIT_STYLE = """-- Unexpected programs listening on a network port
--
-- references:
--   * https://attack.mitre.org/techniques/T1571/
--
-- false positives:
--   * developers running servers
--
-- tags: transient state net often
-- interval: 300
-- platform: darwin
SELECT pid, port
FROM listening_ports
WHERE port != 0;
"""


def test_a_directory_in_osquery_defense_kit_style(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    queries = tmp_path / "detection"
    (queries / "net").mkdir(parents=True)
    (queries / "net" / "unexpected-listener.sql").write_text(DEFENSE_KIT_STYLE)
    (queries / "slow.sql").write_text("-- tags: persistent\n-- interval: 10\n"
                                      "SELECT username FROM users;\n")
    (queries / "_pack.json").write_text('{"platform": "posix", "version": "5.0.0"}\n')
    assert main(["pack", "build", str(queries), "-o", str(tmp_path / "p.conf")]) == 0
    pack = json.loads((tmp_path / "p.conf").read_text())
    assert pack["platform"] == "posix" and pack["version"] == "5.0.0"
    assert pack["queries"]["unexpected-listener"] == {
        "query": "SELECT pid, port\nFROM listening_ports\nWHERE port != 0;",
        "interval": 300, "platform": "darwin"}
    assert main(["pack", "build", str(queries), "-o", str(tmp_path / "q.conf"),
                 "--exclude-tags", "net", "--min-interval", "60"]) == 0
    err = capsys.readouterr().err
    assert "unexpected-listener: excluded by tag net" in err and "slow: interval 10 -> 60" in err
    assert json.loads((tmp_path / "q.conf").read_text())["queries"] == {
        "slow": {"query": "SELECT username FROM users;", "interval": 60}}


def test_apply_changes_and_lints_the_result(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pack = {"queries": {
        "mac": {"query": "SELECT * FROM alf", "interval": 30, "platform": "darwin"},
        "any": {"query": "SELECT pid FROM processes", "interval": "7200"},
        "gone": {"query": "SELECT 1", "interval": 60}}}
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    out = tmp_path / "linux.conf"
    assert main(["pack", "apply", str(tmp_path / "p.conf"), "-o", str(out), "--platform",
                 "linux", "--min-interval", "3600", "--exclude", "gone"]) == 0
    assert json.loads(out.read_text())["queries"] == {
        "any": {"query": "SELECT pid FROM processes", "interval": "7200"}}  # as it was
    err = capsys.readouterr().err
    assert "mac: dropped, never runs on linux" in err and "gone: excluded by name" in err
    # the pack's own platform counts too
    (tmp_path / "mac.conf").write_text(json.dumps({"platform": "darwin", **pack}))
    assert main(["pack", "apply", str(tmp_path / "mac.conf"), "-o", str(out), "--platform",
                 "linux"]) == 0
    assert json.loads(out.read_text())["queries"] == {}
    capsys.readouterr()
    # the result is linted: a bad query in the output fails the command
    pack["queries"]["any"]["query"] = "SELECT pid FROM procesess"
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    assert main(["pack", "apply", str(tmp_path / "p.conf"), "-o", str(out)]) == 1
    assert "procesess" in capsys.readouterr().out


def test_hostile_names_stay_inside_the_directory_and_round_trip(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["../../escape", "a/b", "..", "CON", "con", "x" * 300, "naïve café"]
    pack = {"queries": {n: {"query": f"SELECT {i} AS n", "interval": 60}
                        for i, n in enumerate(names)}}
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    out = tmp_path / "inside"
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(out)]) == 0
    assert {p.parent for p in tmp_path.rglob("*.sql")} == {out}
    assert len(list(out.glob("*.sql"))) == len(names)
    assert not (tmp_path / "escape.sql").exists() and not (tmp_path.parent / "escape.sql").exists()
    assert main(["pack", "build", str(out), "-o", str(tmp_path / "back.conf")]) in (0, 1)
    assert set(json.loads((tmp_path / "back.conf").read_text())["queries"]) == set(names)


def test_unpack_never_writes_through_a_symlink_or_over_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.conf").write_text(json.dumps(
        {"queries": {"victim": {"query": "SELECT 1", "interval": 60}}}))
    out = tmp_path / "out"
    out.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (out / "victim.sql").symlink_to(precious)
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(out)]) == 2
    assert "victim.sql: not a regular file; not written through" in capsys.readouterr().err
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(out), "--replace"]) == 2
    assert "victim.sql: not a regular file" in capsys.readouterr().err
    assert precious.read_text() == "keep me"


@pytest.mark.parametrize(("files", "said"), [
    ({"a.sql": "-- interval: soon\nSELECT 1;"}, "a.sql: -- interval: not a number of seconds"),
    ({"a.sql": "-- name: x\nSELECT 1;", "b.sql": "-- name: x\nSELECT 2;"},
     "query name 'x' is also used by"),
    ({"a.sql": "-- just a comment\n"}, "a.sql: no SQL after its header"),
    ({"a.sql": b"\xff\xfe".decode("latin-1")}, "a.sql: not UTF-8"),
    ({"_pack.json": '{"queries": {}}', "a.sql": "SELECT 1;"}, "not pack fields: queries"),
])
def test_bad_query_directories_are_one_line_errors(files: dict, said: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name, text in files.items():
        data = text.encode("latin-1") if "not UTF-8" in said else text.encode()
        (tmp_path / name).write_bytes(data)
    assert main(["pack", "build", str(tmp_path), "-o", str(tmp_path / "out.conf")]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_query_text_comes_back_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    texts = ["  SELECT 1;\n\n", "-- interval: 5\nSELECT 2;", "SELECT 3;\r\nFROM x", "\n-- c\nSELECT 4",
             "SELECT 5"]
    pack = {"queries": {f"q{i}": {"query": t, "interval": 60} for i, t in enumerate(texts)}}
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(tmp_path / "d")]) == 0
    assert "-- sql:" not in (tmp_path / "d" / "q4.sql").read_text()  # plain when it can be
    main(["pack", "build", str(tmp_path / "d"), "-o", str(tmp_path / "back.conf")])
    back = json.loads((tmp_path / "back.conf").read_text())["queries"]
    assert [back[f"q{i}"]["query"] for i in range(len(texts))] == texts


def test_unpack_checks_everything_before_writing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = {"queries": {"a": {"query": "SELECT 1", "interval": 60},
                        "b": {"query": "SELECT 2", "interval": -5},
                        "c": {"query": "SELECT 3", "extra": {"x": 1}}}}
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    out = tmp_path / "d"
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "queries.b: -- interval: not a number of seconds: '-5'" in err
    assert not out.exists()
    del pack["queries"]["b"]
    (tmp_path / "p.conf").write_text(json.dumps(pack))
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(out)]) == 2
    assert "queries.c: 'extra' is not a field of a pack's query" in capsys.readouterr().err
    assert not out.exists()


def test_replace_removes_the_old_files_and_build_says_what_it_left_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    out.mkdir()
    for i in range(5):
        (out / f"old{i}.sql").write_text(f"SELECT {i};\n")
    (tmp_path / "p.conf").write_text(json.dumps({"queries": {"new": {"query": "SELECT 9"}}}))
    assert main(["pack", "unpack", str(tmp_path / "p.conf"), "-o", str(out), "--replace"]) == 0
    assert "removed 5 .sql files" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["new.sql"]
    (tmp_path / "elsewhere.sql").write_text("SELECT 8;\n")
    (out / "link.sql").symlink_to(tmp_path / "elsewhere.sql")
    assert main(["pack", "build", str(out), "-o", str(tmp_path / "b.conf")]) == 0
    assert "link.sql: a symbolic link; left out" in capsys.readouterr().err
    assert list(json.loads((tmp_path / "b.conf").read_text())["queries"]) == ["new"]


def test_apply_refuses_contradictions_and_says_what_did_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.conf").write_text(json.dumps({"queries": {"a": {"query": "SELECT 1"}}}))
    out = str(tmp_path / "o.conf")
    assert main(["pack", "apply", str(tmp_path / "p.conf"), "-o", out, "--min-interval",
                 "600", "--max-interval", "60"]) == 2
    assert "--min-interval 600 is above --max-interval 60" in capsys.readouterr().err
    assert main(["pack", "apply", str(tmp_path / "p.conf"), "-o", out, "--platform",
                 "beos"]) == 2
    assert "not an osquery platform: 'beos'" in capsys.readouterr().err
    assert main(["pack", "apply", str(tmp_path / "p.conf"), "-o", out, "--exclude",
                 "nope"]) == 0
    assert "nope: no query has this name; --exclude did nothing" in capsys.readouterr().err
    link = tmp_path / "link.conf"
    link.symlink_to(out)
    assert main(["pack", "apply", str(tmp_path / "p.conf"), "-o", str(link)]) == 0
    assert link.is_symlink()



COMMENTED = (
    '{\n'
    '  // the pack\'s own comment\n'
    '  "platform": "linux",\n'
    '  "queries": {\n'
    '    // about a\n'
    '    "a": {"query": "SELECT 1", "interval": 60},\n'
    '    // about b\n'
    '    # ticket 42\n'
    '    "b": {\n'
    '      "query": "SELECT 2",\n'
    '      "platform": "linux"\n'
    '    },\r\n'
    '    "c": {"query": "SELECT 3", "interval": "7200"}  \n'
    '  }\n'
    '}\n')
B_AND_ITS_COMMENTS = ('    // about b\n    # ticket 42\n    "b": {\n      "query": "SELECT 2",\n'
                      '      "platform": "linux"\n    },\r\n')


def test_apply_edits_only_what_changes_and_keeps_comments_and_layout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.conf"
    source.write_bytes(COMMENTED.encode())
    out = tmp_path / "out.conf"
    assert main(["pack", "apply", str(source), "-o", str(out), "--exclude", "b",
                 "--min-interval", "120"]) == 0
    # b goes whole lines: its comment lines, b and its comma
    expected = COMMENTED.replace(B_AND_ITS_COMMENTS, "").replace('"interval": 60}',
                                                                  '"interval": 120}')
    assert out.read_bytes().decode() == expected
    assert "note: 2 comment lines directly above the queries left out went with them" \
        in capsys.readouterr().err
    # the first query can go too; a query without an interval gets one in its own layout
    assert main(["pack", "apply", str(source), "-o", str(out), "--exclude", "a",
                 "--min-interval", "60"]) == 0
    expected = COMMENTED.replace(
        '    // about a\n    "a": {"query": "SELECT 1", "interval": 60},\n', "").replace(
        '      "platform": "linux"\n', '      "platform": "linux",\n      "interval": 3600\n')
    assert out.read_bytes().decode() == expected
    assert "note: 1 comment line directly above" in capsys.readouterr().err
    # every query left out: an empty queries object, the pack's own comment kept
    assert main(["pack", "apply", str(source), "-o", str(out), "--exclude", "a,b,c"]) == 0
    assert out.read_text() == ('{\n  // the pack\'s own comment\n  "platform": "linux",\n'
                               '  "queries": {\n  }\n}\n')
    assert "note: 3 comment lines" in capsys.readouterr().err


@pytest.mark.parametrize("source", CORPUS_PACKS, ids=lambda p: p.name)
def test_apply_edits_each_corpus_pack_in_place(source: Path) -> None:
    from osqsdk.lint._packtool import apply_changes, edit_pack_text, pack_value, read_pack

    pack = read_pack(source)
    names = [q.name for q in pack.queries]
    kept, _ = apply_changes(pack.queries, min_interval=600, max_interval=86400,
                            exclude=names[::3])
    edited = edit_pack_text(pack.text, kept)
    assert edited is not None
    expected = pack_value(pack.fields, kept)
    assert parse_osquery_json(edited[0], "edited") == expected


def test_when_the_edit_in_place_gives_up_the_lost_comments_are_counted_and_said(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.conf"
    # a comment inside the value apply replaces: the edit in place gives up
    source.write_text('{\n  "queries": {\n    // why\n    "a": {"query": "SELECT 1",'
                      ' "interval": [\n      # odd\n      60]}\n  }\n}\n')
    assert main(["pack", "apply", str(source), "-o", str(tmp_path / "out.conf"),
                 "--max-interval", "100"]) == 0
    assert f"note: {source}: 2 comment lines (the first at line 3) not kept" \
        in capsys.readouterr().err
    assert json.loads((tmp_path / "out.conf").read_text())["queries"] == {
        "a": {"query": "SELECT 1", "interval": 100}}
    # unpack keeps no comment line, and says so
    source.write_text('{\n  // why\n  # more\n  "queries": {"a": {"query": "SELECT 1"}}\n}\n')
    assert main(["pack", "unpack", str(source), "-o", str(tmp_path / "dir")]) == 0
    assert "2 comment lines (the first at line 2) not kept" in capsys.readouterr().err
    source.write_text('{"queries": {"a": {"query": "SELECT 1", "interval": 3600}}}')
    assert main(["pack", "apply", str(source), "-o", str(tmp_path / "out.conf")]) == 0
    assert "note:" not in capsys.readouterr().err


def test_a_key_given_twice_is_refused_where_it_is(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.conf"
    source.write_text('{\n  "queries": {\n    "a": {"query": "SELECT 0"},\n'
                      '    "a": {"query": "SELECT 1", "interval": 3600}\n  }\n}\n')
    for command in (["apply", str(source), "-o", str(tmp_path / "out.conf")],
                    ["unpack", str(source), "-o", str(tmp_path / "dir")]):
        assert main(["pack", *command]) == 2
        assert f'error: {source}:4:5: key "a" given twice (osqueryd reads the first)' \
            in capsys.readouterr().err
    assert not (tmp_path / "out.conf").exists() and not (tmp_path / "dir").exists()


@pytest.mark.parametrize("before, args, after", [
    # CRLF: an added interval keeps the file's line endings
    ('{\r\n  "queries": {\r\n    "a": {\r\n      "query": "SELECT 1"\r\n    }\r\n  }\r\n}\r\n',
     ["--min-interval", "60"],
     '{\r\n  "queries": {\r\n    "a": {\r\n      "query": "SELECT 1",\r\n'
     '      "interval": 3600\r\n    }\r\n  }\r\n}\r\n'),
    # a section comment set apart by a blank line is not the removed query's
    ('{"queries": {\n  "a": {"query": "SELECT 1"},\n\n  // === section 2 ===\n\n'
     '  "b": {"query": "SELECT 2"}\n}}\n', ["--exclude", "b"],
     '{"queries": {\n  "a": {"query": "SELECT 1"}\n\n  // === section 2 ===\n\n}}\n'),
    # compact layout: the first query goes, the comment above the next one stays put
    ('{"queries": {"a": {"query": "SELECT 1"},\n  // about b\n  "b": {"query": "SELECT 2"}\n}}\n',
     ["--exclude", "a"],
     '{"queries": {\n  // about b\n  "b": {"query": "SELECT 2"}\n}}\n'),
    # one line: the query and its comma go, the spaces around stay tidy
    ('{"queries": {"a": {"query": "SELECT 1"}, "b": {"query": "SELECT 2"}, '
     '"c": {"query": "SELECT 3"}}}', ["--exclude", "b"],
     '{"queries": {"a": {"query": "SELECT 1"}, "c": {"query": "SELECT 3"}}}'),
    # a line that only looks like a comment (it continues the line before) is content
    ('{"description": "see \\\n// example.com", "queries": {\n  "a": {"query": "SELECT 1"},\n'
     '  "b": {"query": "SELECT 2"}\n}}\n', ["--exclude", "a"],
     '{"description": "see \\\n// example.com", "queries": {\n'
     '  "b": {"query": "SELECT 2"}\n}}\n'),
    # nothing to do in an empty pack
    ('{"queries": {}}\n', ["--min-interval", "60"], '{"queries": {}}\n'),
])
def test_apply_in_place_on_odd_layouts(before: str, args: list[str], after: str,
                                       tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.conf"
    source.write_bytes(before.encode())
    out = tmp_path / "out.conf"
    assert main(["pack", "apply", str(source), "-o", str(out), *args]) in (0, 1)
    assert out.read_bytes().decode() == after
    assert "not kept" not in capsys.readouterr().err


def test_apply_is_linear_in_comment_lines_and_continuations(tmp_path: Path) -> None:
    source = tmp_path / "p.conf"
    source.write_text('{"queries": {"a": {"query": "SELECT 1' + " \\\n" * 20000
                      + '", "interval": 10}}}\n' + "#\n" * 20000)
    started = time.monotonic()
    assert main(["pack", "apply", str(source), "-o", str(tmp_path / "o.conf"),
                 "--min-interval", "60"]) == 0
    assert time.monotonic() - started < 60  # bounded: it took minutes when quadratic
    assert parse_osquery_json((tmp_path / "o.conf").read_text(), "o")["queries"]["a"][
        "interval"] == 60


@pytest.mark.parametrize("value, said", [
    ("9" * 5000, "number too big to be stored in a double"),
    ("1e400", "number too big to be stored in a double"),
    ("NaN", "NaN is not JSON"),
])
def test_numbers_osqueryd_refuses_are_errors_not_tracebacks(
        value: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.conf"
    source.write_text('{"queries": {\n  "a": {"query": "SELECT 1", "interval": ' + value + "}}}")
    assert main(["pack", "apply", str(source), "-o", str(tmp_path / "o.conf")]) == 2
    assert f"{source}:2:42: not JSON after osquery's comment stripping: {said}" \
        in capsys.readouterr().err


def test_half_a_surrogate_pair_is_an_error_as_in_osqueryd(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "p.conf"
    source.write_text('{"queries": {"\\ud800": {"query": "SELECT nmae FROM processes"}}}')
    assert main(["pack", "apply", str(source), "-o", str(tmp_path / "o.conf")]) == 2
    assert "1:15: not JSON after osquery's comment stripping: half of a surrogate pair" \
        in capsys.readouterr().err
    assert main(["lint", str(source)]) == 1
    assert "1:15: OSQ002 error: not valid JSON: half of a surrogate pair" \
        in capsys.readouterr().out
