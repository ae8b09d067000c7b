"""Config plugins and DirectoryConfig: never serve a broken config."""

import json
import os
import shutil

import pytest

from osqsdk import ConfigPlugin, DirectoryConfig
from osqsdk._osquery.config import (
    MAX_CONFIG_BYTES,
    ConfigProblem,
    parse_osquery_json,
    strip_config_comments,
)

CONF = """{
  // osquery accepts whole-line comments
  # both kinds
  "options": {"host_identifier": "uuid"},
  "schedule": {
    "uptime": {"query": "SELECT * FROM \\
uptime;", "interval": "60"}
  },
  "packs": {"ir": "packs/ir.conf", "*": "extra/*.conf"}
}
"""
PACK = '{"platform": "linux", "queries": {"ssh": {"query": "SELECT * FROM last;", "interval": 60}}}'


def genconfig(plugin):
    return plugin.call({"action": "genConfig"})


def served(plugin):
    response = genconfig(plugin)
    assert response.code == 0, response.message
    (text,) = response.rows[0].values()
    return json.loads(text)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "packs").mkdir()
    (tmp_path / "extra").mkdir()
    (tmp_path / "osquery.conf").write_text(CONF)
    (tmp_path / "packs" / "ir.conf").write_text(PACK)
    (tmp_path / "extra" / "web.conf").write_text(
        '{"queries": {"ports": {"query": "SELECT * FROM listening_ports;"}}}')
    return tmp_path


def test_comment_stripping_is_osquerys():
    # lines are trimmed as osquery's boost::trim trims them
    assert strip_config_comments('{\n  # c\n  // c\n  "a": "x\\\ny"\n}') == '{\n"a": "xy"\n}'


def test_only_ascii_whitespace_is_trimmed_before_a_comment_mark():
    # osqueryd trims in the C locale: after a no-break space, "#" is content, so the JSON
    # parser sees it (and rejects it) in every product alike
    text = '{\n\u00a0# not a comment\n"a": 1\n}'
    assert "# not a comment" in strip_config_comments(text)
    with pytest.raises(ConfigProblem, match="not JSON"):
        parse_osquery_json(text, "config")
    assert strip_config_comments('{\n \t\v\f# a comment\n"a": 1\n}') == '{\n"a": 1\n}'


def test_config_plugin_answers_gen_config_and_gen_pack():
    plugin = ConfigPlugin("c", lambda: {"main": {"schedule": {}}, "extra": '{"options":{}}'},
                          gen_pack=lambda name, value: {"queries": {}} if name == "p" else None)
    assert genconfig(plugin).rows == [{"main": '{"schedule":{}}', "extra": '{"options":{}}'}]
    assert plugin.call({"action": "genPack", "name": "p", "value": "x"}).rows == [
        {"p": '{"queries":{}}'}]
    missing = plugin.call({"action": "genPack", "name": "q", "value": "x"})
    assert missing.code == 1 and "no pack 'q'" in missing.message
    assert plugin.call({"action": "update"}).code == 1


def test_config_over_osqueryds_limit_is_refused():
    big = {"options": {"x": "y" * (10 * 1024 * 1024)}}
    response = genconfig(ConfigPlugin("c", lambda: {"main": big}))
    assert response.code == 1 and f"at most {MAX_CONFIG_BYTES}" in response.message


def test_directory_config_serves_config_and_packs(root):
    plugin = DirectoryConfig(root)
    config = served(plugin)
    assert config["schedule"]["uptime"]["query"] == "SELECT * FROM uptime;"
    assert config["packs"] == {"ir": "packs/ir.conf", "web": "extra/web.conf"}
    pack = plugin.call({"action": "genPack", "name": "ir", "value": "packs/ir.conf"})
    assert json.loads(pack.rows[0]["ir"])["queries"]["ssh"]["interval"] == 60
    web = plugin.call({"action": "genPack", "name": "web", "value": "extra/web.conf"})
    assert "ports" in json.loads(web.rows[0]["web"])["queries"]


def test_edits_are_picked_up_without_a_restart(root):
    plugin = DirectoryConfig(root)
    served(plugin)
    text = CONF.replace('"60"', '"120"')
    (root / "osquery.conf").write_text(text)
    os.utime(root / "osquery.conf", ns=(1, 10**18))  # a different mtime even on coarse clocks
    assert served(plugin)["schedule"]["uptime"]["interval"] == "120"


@pytest.mark.parametrize("broken, reason", [
    ('{"schedule": {', ": not JSON"),
    ('{"schedule": {"q": {"query": 5}}}', "schedule.q.query: missing or not a string"),
    ('{"packs": {"x": {"queries": {"a": {"query": "SELECT 1", "interval": "often"}}}}}',
     "packs.x.queries.a.interval"),
    ("[1, 2]", "must be a JSON object"),
    ('{"a":' * 40 + "1" + "}" * 40, "deeper than osqueryd's 32 levels"),
    ('{"schedule": {}} trailing', ": not JSON"),
])
def test_a_broken_edit_keeps_the_last_good_config(root, caplog, broken, reason):
    plugin = DirectoryConfig(root)
    good = served(plugin)
    (root / "osquery.conf").write_text(broken)
    os.utime(root / "osquery.conf", ns=(1, 10**18))
    assert served(plugin) == good
    assert reason in plugin.last_error
    assert reason in caplog.text and "serving the last good config" in caplog.text


def test_broken_config_with_nothing_good_yet_is_status_1(tmp_path):
    (tmp_path / "osquery.conf").write_text("{oops")
    response = genconfig(DirectoryConfig(tmp_path))
    assert response.code == 1 and ": not JSON" in response.message


def test_vanished_directory_keeps_the_last_good_config(root):
    plugin = DirectoryConfig(root)
    good = served(plugin)
    pack = plugin.call({"action": "genPack", "name": "ir", "value": "packs/ir.conf"})
    shutil.rmtree(root)
    assert served(plugin) == good
    assert "does not exist" in plugin.last_error
    assert plugin.call({"action": "genPack", "name": "ir", "value": "packs/ir.conf"}).rows == pack.rows


def test_broken_pack_keeps_its_last_good_version(root):
    plugin = DirectoryConfig(root)
    served(plugin)
    before = plugin.call({"action": "genPack", "name": "ir", "value": "packs/ir.conf"}).rows
    (root / "packs" / "ir.conf").write_text("not json at all")
    os.utime(root / "packs" / "ir.conf", ns=(1, 10**18))
    assert plugin.call({"action": "genPack", "name": "ir", "value": "packs/ir.conf"}).rows == before
    fresh = DirectoryConfig(root)
    response = fresh.call({"action": "genPack", "name": "ir", "value": "packs/ir.conf"})
    assert response.code == 1 and ": not JSON" in response.message


@pytest.mark.parametrize("value", ["../outside.conf", "/etc/passwd", "packs/../../outside.conf"])
def test_pack_paths_outside_the_root_are_refused(root, value):
    (root.parent / "outside.conf").write_text(PACK)
    response = DirectoryConfig(root).call({"action": "genPack", "name": "x", "value": value})
    assert response.code == 1 and "outside" in response.message


def test_symlinks_pointing_outside_are_refused(root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.conf"
    elsewhere.write_text(PACK)
    (root / "packs" / "link.conf").symlink_to(elsewhere)
    response = DirectoryConfig(root).call({"action": "genPack", "name": "l",
                                            "value": "packs/link.conf"})
    assert response.code == 1 and "outside" in response.message
    (root / "osquery.conf").write_text('{"packs": {"l": "packs/link.conf"}}')
    assert "outside" in genconfig(DirectoryConfig(root)).message


def test_glob_matches_outside_the_root_are_skipped(root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.conf"
    elsewhere.write_text(PACK)
    (root / "extra" / "sneaky.conf").symlink_to(elsewhere)
    assert served(DirectoryConfig(root))["packs"] == {"ir": "packs/ir.conf", "web": "extra/web.conf"}


def test_a_10_mib_config_is_refused_with_a_clear_message(root):
    (root / "osquery.conf").write_text('{"options": {"x": "' + "y" * (10 * 1024 * 1024) + '"}}')
    response = genconfig(DirectoryConfig(root))
    assert response.code == 1
    assert "osqueryd accepts at most 4194304 bytes" in response.message


def test_parse_rejects_deep_nesting_without_recursing():
    with pytest.raises(ValueError, match="deeper"):
        parse_osquery_json("[" * 100000 + "]" * 100000, "x")


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("T", True), (" TRUE ", True), ("1", False),
    ("yes", False), (1, True), (0, False), (0.5, True), (None, "default"), ([], "default")])
def test_osquery_bool(value, expected):
    from osqsdk._osquery.config import osquery_bool

    assert osquery_bool(value, "default") == expected


def test_the_linter_and_directory_config_read_a_no_break_space_comment_alike(tmp_path):
    from osqsdk.lint import lint_text

    text = '{\n\u00a0# note\n"schedule": {}\n}'
    (tmp_path / "osquery.conf").write_text(text)
    config = DirectoryConfig(str(tmp_path))
    assert config.call({"action": "genConfig"}).code != 0  # refused: no last good config
    findings = lint_text(text, filename="osquery.conf")
    assert [(f.code, f.line) for f in findings] == [("OSQ002", 2)]


def test_a_json_error_names_the_line_and_column_of_the_file_as_written():
    # two comment lines and a backslash-newline before the error: the position is in the
    # file the user edits, not in the text osqueryd parses after stripping
    text = '{\n  // one\n  # two\n  "a": "x\\\ny",\n  "b": 1,,\n}\n'
    with pytest.raises(ConfigProblem) as caught:
        parse_osquery_json(text, "pack.conf")
    assert str(caught.value).startswith("pack.conf:6:10: not JSON")
    assert text.splitlines()[5][9] == ","


def test_a_repeated_key_reads_as_osqueryd_reads_it():
    # the first in a query and a schedule (FindMember, std::map::emplace), the last in a
    # config's packs and options (each replaces the one before): docs/protocol.md §5.2
    text = ('{"options": {"host_identifier": "hostname", "host_identifier": "uuid"},\n'
            ' "schedule": {"a": {"query": "SELECT 1", "interval": 10, "interval": 20},\n'
            '              "a": {"query": "SELECT 2"}},\n'
            ' "packs": {"ir": "first.conf", "ir": "second.conf"}}')
    assert parse_osquery_json(text, "c") == {
        "options": {"host_identifier": "uuid"},
        "schedule": {"a": {"query": "SELECT 1", "interval": 10}},
        "packs": {"ir": "second.conf"}}


@pytest.mark.parametrize("text, at", [
    ('{\n  "a": 1,,\n  "b": "\\ud800"\n}\n', "2:10"),     # the earlier problem first
    ('{\n  "b": "\\ud800",\n  "a": 1,,\n}\n', "2:9"),
    ('{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}', None),   # a pair, and an escaped backslash
    ('{"n": "1e400", "m": 1e400}', "1:21"),               # the number, not the string
])
def test_problems_osqueryd_refuses_are_reported_where_they_are(text, at):
    if at is None:
        assert parse_osquery_json(text, "c") == {"a": "\U0001F600", "b": "\\ud800"}
        return
    with pytest.raises(ConfigProblem, match=rf"^c:{at}: not JSON"):
        parse_osquery_json(text, "c")
