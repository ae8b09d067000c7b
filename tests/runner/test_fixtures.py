import json

import pytest

from osqsdk.runner import Engine, FixtureError, Fixtures
from osqsdk.schema import default_schema


def write(directory, name, data):
    path = directory / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_rows_per_tick_carry_forward(tmp_path):
    write(tmp_path, "last.json", {"rows": [{"username": "a"}],
                                  "ticks": {"3": [{"username": "b"}], "5": []}})
    fixtures = Fixtures.load(tmp_path, default_schema())
    assert [fixtures.rows("last", t) for t in (1, 2, 3, 4, 5, 9)] == [
        [{"username": "a"}], [{"username": "a"}], [{"username": "b"}], [{"username": "b"}], [], []]
    assert fixtures.rows("users", 1) is None


def test_yaml_and_plain_lists(tmp_path):
    write(tmp_path, "users.yaml", "- {uid: 0, username: root}\n- {uid: 1000, username: al}\n")
    engine = Engine(fixtures=Fixtures.load(tmp_path, default_schema()))
    assert engine.query("SELECT username FROM users WHERE uid > 0").rows == [{"username": "al"}]


@pytest.mark.parametrize("name, content, message", [
    ("last.json", [{"usernme": "a"}], "last.json: rows, row 1: 'usernme' is not a column of "
                                      "last (did you mean 'username'?)"),
    ("lats.json", [], "there is no table 'lats' in the schema (did you mean 'last'?)"),
    ("last.json", "{not json", "last.json:1:2: not JSON"),
    ("last.yaml", "- a: [b\n", "last.yaml:"),
    ("last.json", {"ticks": {"x": []}}, "tick 'x' is not a number"),
    ("last.json", {"tick": {}}, "a list of rows or an object"),
    ("last.json", [{"username": {"nested": 1}}], "must be a string, number, boolean or null"),
    ("last.json", [1], "row 1 is not an object"),
])
def test_bad_fixture_files_name_file_and_cause(tmp_path, name, content, message):
    write(tmp_path, name, content)
    with pytest.raises(FixtureError) as info:
        Fixtures.load(tmp_path, default_schema())
    assert str(tmp_path / name) in str(info.value) and message in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(FixtureError, match="does not exist"):
        Fixtures.load(tmp_path / "nope")


def test_strict_fixtures_make_missing_tables_an_error():
    from osqsdk import QueryError

    assert Engine().query("SELECT * FROM users").rows == []
    with pytest.raises(QueryError, match="no fixture for table users"):
        Engine(strict_fixtures=True).query("SELECT * FROM users")
