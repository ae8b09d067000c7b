"""The engine reproduces osqueryd's planning, context JSON and typing (docs/protocol.md §3.3-§3.5)."""

import json

import pytest

import osqsdk
from osqsdk import Column, ConstraintViolation, QueryError
from osqsdk.runner import Engine

pytest.importorskip("apsw")


class Recorder:
    """A table that records each context it gets and returns fixed rows."""

    def __init__(self, rows, columns):
        self.rows = rows
        self.contexts = []
        self.plugin = osqsdk.TablePlugin("ext", columns, self.generate)

    def generate(self, context):
        self.contexts.append(json.loads(context.to_json()))
        return [dict(r) for r in self.rows]

    def lists(self, index=-1):
        return {c["name"]: c["list"] for c in self.contexts[index]["constraints"]}


COLUMNS = [
    Column("pid", "BIGINT"),                     # op 0: INDEX under extensions_default_index
    Column("name"),
    Column("score", "DOUBLE", index=True),
    Column("path", "TEXT", index=True),
    Column("uid", "INTEGER", optimized=True, index=True),
    Column("note", "TEXT", hidden=True),
    Column("label", "TEXT", aliases=("tag",)),
]
ROWS = [{"pid": 1, "name": "a", "score": 0.5, "path": "/a", "uid": 0, "note": "n", "label": "x"},
        {"pid": 2, "name": "b", "score": 1.5, "path": "/b", "uid": 1000, "label": "y"}]


@pytest.fixture
def ext():
    recorder = Recorder(ROWS, COLUMNS)
    engine = Engine()
    engine.add_plugin(recorder.plugin)
    yield engine, recorder
    engine.close()


def test_context_has_every_column_sorted_with_affinity(ext):
    engine, rec = ext
    engine.query("SELECT name FROM ext")
    context = rec.contexts[0]
    assert [c["name"] for c in context["constraints"]] == sorted(
        ["pid", "name", "score", "path", "uid", "note", "label", "tag"])
    affinity = {c["name"]: c["affinity"] for c in context["constraints"]}
    assert affinity == {"pid": "BIGINT", "name": "TEXT", "score": "DOUBLE", "path": "TEXT",
                        "uid": "INTEGER", "note": "TEXT", "label": "TEXT", "tag": "UNKNOWN"}
    assert all(c["list"] == [] for c in context["constraints"])
    assert context["colsUsed"] == ["name"] and context["colsUsedBitset"] == 2


def test_equality_reaches_generate_with_sqlite_text(ext):
    engine, rec = ext
    assert engine.query("SELECT name FROM ext WHERE pid = 2").rows == [{"name": "b"}]
    assert rec.lists()["pid"] == [{"op": 2, "expr": "2"}]
    engine.query("SELECT name FROM ext WHERE score = 1.0")
    assert rec.lists()["score"] == [{"op": 2, "expr": "1.0"}]  # SQLite 3.42's float text
    engine.query("SELECT name FROM ext WHERE score = 1.0/3")
    assert rec.lists()["score"] == [{"op": 2, "expr": "0.333333333333333"}]


def test_ranges_pass_on_numeric_columns_and_drop_on_text(ext):
    engine, rec = ext
    engine.query("SELECT 1 FROM ext WHERE pid > 1 AND pid <= 5 AND path > '/a'")
    lists = rec.lists()
    assert sorted((c["op"], c["expr"]) for c in lists["pid"]) == [(4, "1"), (8, "5")]
    assert lists["path"] == []
    engine.query("SELECT 1 FROM ext WHERE score >= 1 AND score < 2")
    assert sorted((c["op"], c["expr"]) for c in rec.lists()["score"]) == [(16, "2"), (32, "1")]


def test_like_glob_and_regexp_operators(ext):
    engine, rec = ext
    engine.query("SELECT 1 FROM ext WHERE path LIKE '/a%'")
    assert rec.lists()["path"] == [{"op": 65, "expr": "/a%"}]
    engine.query("SELECT 1 FROM ext WHERE path GLOB '/a*'")
    assert rec.lists()["path"] == [{"op": 66, "expr": "/a*"}]
    # osqueryd registers no regexp() function, so REGEXP never reaches a table there.
    with pytest.raises(QueryError, match="no such function: REGEXP"):
        engine.query("SELECT 1 FROM ext WHERE path REGEXP '^/a'")


def test_in_gives_one_generate_per_value_unless_optimized(ext):
    engine, rec = ext
    rows = engine.query("SELECT name FROM ext WHERE pid IN (1, 2, 3)").rows
    assert sorted(r["name"] for r in rows) == ["a", "b"]
    assert len(rec.contexts) == 3
    assert sorted(rec.lists(i)["pid"][0]["expr"] for i in range(3)) == ["1", "2", "3"]
    rec.contexts.clear()
    engine.query("SELECT name FROM ext WHERE uid IN (1000, 0, 5)")
    assert len(rec.contexts) == 1
    assert rec.lists()["uid"] == [{"op": 2, "expr": "0"}, {"op": 2, "expr": "5"},
                                  {"op": 2, "expr": "1000"}]


def test_null_and_empty_values_are_dropped(ext):
    engine, rec = ext
    engine.query("SELECT 1 FROM ext WHERE name = ''")
    assert rec.lists()["name"] == []
    engine.query("SELECT 1 FROM ext WHERE pid = (SELECT NULL)")
    assert rec.lists()["pid"] == []
    engine.query("SELECT 1 FROM ext WHERE uid IN ('', 'x')")  # an IN list keeps ""
    assert rec.lists()["uid"] == [{"op": 2, "expr": ""}, {"op": 2, "expr": "x"}]


def test_unindexed_core_columns_get_no_constraints():
    engine = Engine()
    engine.fixtures.set("processes", [{"pid": 1, "name": "init"}, {"pid": 2, "name": "sh"}])
    assert engine.query("SELECT pid FROM processes WHERE name = 'sh'").rows == [{"pid": 2}]
    context = engine.calls[-1].context
    assert {c["name"]: c["list"] for c in context["constraints"]}["name"] == []
    engine.query("SELECT name FROM processes WHERE pid = 1")  # pid is an index column
    assert {c["name"]: c["list"] for c in engine.calls[-1].context["constraints"]}["pid"] == [
        {"op": 2, "expr": "1"}]


def test_join_calls_the_inner_table_once_per_outer_row(ext):
    engine, rec = ext
    engine.fixtures.set("processes", [{"pid": 1, "name": "init"}, {"pid": 2, "name": "sh"},
                                      {"pid": 3, "name": "zsh"}])
    rows = engine.query("SELECT p.name, e.path FROM processes p JOIN ext e ON e.pid = p.pid "
                        "ORDER BY p.pid").rows
    assert rows == [{"name": "init", "path": "/a"}, {"name": "sh", "path": "/b"}]
    pids = [rec.lists(i)["pid"] for i in range(len(rec.contexts))]
    assert pids == [[{"op": 2, "expr": "1"}], [{"op": 2, "expr": "2"}], [{"op": 2, "expr": "3"}]]


def test_hidden_columns_are_not_in_select_star_and_aliases_read_targets(ext):
    engine, rec = ext
    result = engine.query("SELECT * FROM ext WHERE pid = 1")
    assert result.columns == ["pid", "name", "score", "path", "uid", "label"]
    assert engine.query("SELECT note, tag FROM ext WHERE pid = 1").rows == [
        {"note": "n", "tag": "x"}]
    assert rec.contexts[-1]["colsUsed"] == ["pid", "note", "label"]
    assert rec.contexts[-1]["colsUsedBitset"] == 1 | 32 | 64


def test_count_star_uses_no_columns(ext):
    engine, rec = ext
    assert engine.query("SELECT count(*) AS n FROM ext").rows == [{"n": 2}]
    assert rec.contexts[-1]["colsUsed"] == [] and rec.contexts[-1]["colsUsedBitset"] == 0


def test_required_columns_fail_before_generate():
    calls = []
    plugin = osqsdk.TablePlugin("req", [Column("path", required=True), Column("size", "BIGINT")],
                                lambda ctx: calls.append(ctx) or [{"path": "/x", "size": 1}])
    engine = Engine(core_tables=False)
    engine.add_plugin(plugin)
    with pytest.raises(QueryError) as info:
        engine.query("SELECT * FROM req")
    assert info.value.message == ("Table req was queried without a required column in the "
                                  "WHERE clause")
    assert calls == []
    assert engine.query("SELECT size FROM req WHERE path = '/x'").rows == [{"size": 1}]


def test_core_required_columns_too():
    engine = Engine()
    with pytest.raises(QueryError, match="Table file was queried without a required column"):
        engine.query("SELECT * FROM file")
    engine.query("SELECT * FROM file WHERE path = '/etc/passwd'")


@pytest.mark.parametrize("type_, text, expected", [
    ("INTEGER", "42", 42),
    ("INTEGER", "4294967297", 1),           # 32-bit sqlite3_result_int
    ("INTEGER", "2147483648", -2147483648),
    ("INTEGER", "010", 8),                  # base 0: octal
    ("INTEGER", "0x10", 16),
    ("INTEGER", "12abc", 12),               # trailing text ignored
    ("INTEGER", "08", 0),
    ("INTEGER", "", None),
    ("INTEGER", "abc", None),
    ("BIGINT", "9223372036854775807", 9223372036854775807),
    ("BIGINT", "9223372036854775808", None),
    ("UNSIGNED BIGINT", "18446744073709551615", None),
    ("DOUBLE", "1.5", 1.5),
    ("DOUBLE", "1.5x", None),               # strtod must consume everything
    ("DOUBLE", "", None),
    ("TEXT", "010", "010"),
    ("BLOB", "raw", "raw"),
])
def test_returned_strings_are_typed_like_osqueryd(type_, text, expected):
    plugin = osqsdk.TablePlugin("v", [Column("x", type_)], lambda ctx: [{"x": text}])
    engine = Engine(core_tables=False)
    engine.add_plugin(plugin)
    assert engine.query("SELECT x FROM v").rows == [{"x": expected}]


def test_typed_values_round_trip_through_coercion():
    values = {"i": -5, "b": 2**40, "d": 0.1, "t": "héllo", "flag": True}
    plugin = osqsdk.TablePlugin("rt", [Column("i", "INTEGER"), Column("b", "BIGINT"),
                                       Column("d", "DOUBLE"), Column("t"),
                                       Column("flag", "INTEGER")], lambda ctx: [values])
    engine = Engine(core_tables=False)
    engine.add_plugin(plugin)
    assert engine.query("SELECT * FROM rt").rows == [
        {"i": -5, "b": 2**40, "d": 0.1, "t": "héllo", "flag": 1}]


def test_a_failing_generate_fails_the_statement_with_its_message():
    def boom(ctx):
        raise RuntimeError("disk gone")

    engine = Engine(core_tables=False)
    engine.add_plugin(osqsdk.TablePlugin("boom", [Column("x")], boom))
    with pytest.raises(QueryError) as info:
        engine.query("SELECT * FROM boom")
    assert info.value.message == "table plugin 'boom' failed: RuntimeError: disk gone"
    assert info.value.sql == "SELECT * FROM boom"


def test_sql_errors_carry_sqlites_message_and_the_query():
    engine = Engine()
    for sql, message in [("SELECT * FROM no_such", "no such table: no_such"),
                         ("SELECT nope FROM processes", "no such column: nope"),
                         ("SELEC 1", 'near "SELEC": syntax error')]:
        with pytest.raises(QueryError) as info:
            engine.query(sql)
        assert info.value.message == message and info.value.sql == sql


def test_writes_go_through_insert_update_delete():
    store = {}

    def insert(row, rowid):
        if row["k"] in [r["k"] for r in store.values()]:
            raise ConstraintViolation("dup")
        rowid = rowid if rowid is not None else len(store) + 1
        store[rowid] = row
        return rowid

    def update(rowid, row, new_rowid):
        store.pop(rowid)
        store[new_rowid or rowid] = row

    plugin = osqsdk.TablePlugin(
        "kv", [Column("k"), Column("v", "BIGINT")],
        lambda ctx: [{"rowid": i, **r} for i, r in store.items()],
        insert=insert, update=update, delete=lambda rowid: store.pop(rowid))
    engine = Engine(core_tables=False)
    engine.add_plugin(plugin)
    engine.query("INSERT INTO kv (k, v) VALUES ('a', 1)")
    engine.query("INSERT INTO kv (k, v) VALUES ('b', 2)")
    assert store == {1: {"k": "a", "v": 1}, 2: {"k": "b", "v": 2}}
    engine.query("UPDATE kv SET v = 10 WHERE k = 'a'")
    assert store[1] == {"k": "a", "v": 10}
    engine.query("DELETE FROM kv WHERE k = 'b'")
    assert list(store) == [1]
    with pytest.raises(QueryError, match="constraint failed"):
        engine.query("INSERT INTO kv (k, v) VALUES ('a', 5)")
    with pytest.raises(QueryError, match="datatype mismatch"):
        engine.query("INSERT INTO kv (k, v) VALUES ('c', 'text')")
    with pytest.raises(QueryError, match="datatype mismatch"):  # NULL into an op-0 column
        engine.query("INSERT INTO kv (k) VALUES ('d')")


def test_tables_without_write_handlers_are_read_only():
    engine = Engine(core_tables=False)
    engine.add_plugin(osqsdk.TablePlugin("ro", [Column("x")], lambda ctx: []))
    with pytest.raises(QueryError, match="table ro may not be modified"):
        engine.query("INSERT INTO ro (x) VALUES ('a')")


def test_joins_across_extension_and_fixture_tables():
    engine = Engine()
    engine.fixtures.set("users", [{"uid": 0, "username": "root"}, {"uid": 1000, "username": "al"}])
    engine.add_plugin(osqsdk.TablePlugin(
        "shells", [Column("uid", "BIGINT"), Column("shell")],
        lambda ctx: [{"uid": u, "shell": "/bin/sh"} for u in ctx.equals("uid")]))
    rows = engine.query("SELECT u.username, s.shell FROM users u JOIN shells s USING (uid) "
                        "ORDER BY u.uid").rows
    assert rows == [{"username": "root", "shell": "/bin/sh"}, {"username": "al", "shell": "/bin/sh"}]


def test_registering_a_core_table_name_conflicts_like_osqueryd():
    engine = Engine()
    with pytest.raises(osqsdk.PluginDefinitionError, match="conflicts"):
        engine.add_plugin(osqsdk.TablePlugin("processes", [Column("x")], lambda ctx: []))


def test_platform_decides_which_core_tables_exist():
    assert "last" in Engine(platform="linux").tables
    assert "wmi_cli_event_consumers" not in Engine(platform="linux").tables
    assert "wmi_cli_event_consumers" in Engine(platform="windows").tables


def test_query_columns():
    engine = Engine()
    assert engine.query_columns("SELECT pid, name AS n FROM processes") == [
        ("pid", "BIGINT"), ("n", "TEXT")]


@pytest.mark.parametrize("sql", [
    "ATTACH DATABASE '{dir}/attached.db' AS x",
    "VACUUM INTO '{dir}/vacuumed.db'",
    "PRAGMA writable_schema = 1",
])
def test_what_osqueryds_authorizer_denies_is_denied_and_writes_nothing(tmp_path, sql):
    from osqsdk.errors import QueryError
    from osqsdk.runner import Engine

    engine = Engine()
    with pytest.raises(QueryError, match=r"not authorized|authorization denied"):
        engine.query(sql.format(dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_what_osqueryds_authorizer_allows_still_runs():
    from osqsdk.runner import Engine

    engine = Engine()
    assert engine.query("PRAGMA table_info(processes)").rows[0]["name"] == "pid"
    engine.query("CREATE TEMP TABLE seen (pid)")
    engine.query("INSERT INTO seen VALUES (1)")
    assert engine.query("SELECT pid FROM seen").rows == [{"pid": 1}]


ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT {} FROM c"


def test_a_query_that_never_ends_is_stopped_by_the_runners_limits():
    import time

    from osqsdk.errors import QueryError
    from osqsdk.runner import Engine

    engine = Engine(timeout=0.5, max_rows=1000)
    with pytest.raises(QueryError, match=r"more than 1000 rows, the runner's limit"):
        engine.query(ENDLESS.format("x"))
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"ran longer than 0.5 s, the runner's limit"):
        engine.query(ENDLESS.format("count(*)"))
    assert time.monotonic() - started < 30  # stopped by the limit, not run forever
    assert engine.query("SELECT 1 AS one").rows == [{"one": 1}]  # the engine goes on


def test_the_query_command_takes_the_limits():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "osqsdk", "query", ENDLESS.format("x"),
                             "--max-rows", "10"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "more than 10 rows, the runner's limit (max_rows)" in result.stderr
