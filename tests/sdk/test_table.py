import json
import math
import re

import pytest

import osqsdk
from osqsdk import (
    Column,
    ColumnType,
    ConstraintViolation,
    PluginDefinitionError,
    ReadOnlyTable,
    TablePlugin,
    ValueCoercionError,
    coerce_value,
)

COLUMNS = [Column("t"), Column("i", "INTEGER"), Column("b", "BIGINT"),
           Column("u", "UNSIGNED BIGINT"), Column("d", "DOUBLE"), Column("blob", "BLOB")]


def make(rows, **options):
    return TablePlugin("t", COLUMNS, lambda ctx: rows, **options)


def generate(plugin, context=None):
    request = {"action": "generate"}
    if context is not None:
        request["context"] = json.dumps(context)
    return plugin.call(request)


# -- the one documented coercion ----------------------------------------------------------
@pytest.mark.parametrize("value, type_, expected", [
    ("text", ColumnType.TEXT, "text"),
    (True, ColumnType.INTEGER, "1"),
    (False, ColumnType.TEXT, "0"),
    (-42, ColumnType.INTEGER, "-42"),
    (2**31 - 1, ColumnType.INTEGER, "2147483647"),
    (-(2**31), ColumnType.INTEGER, "-2147483648"),
    (2**63 - 1, ColumnType.BIGINT, "9223372036854775807"),
    (-(2**63), ColumnType.BIGINT, "-9223372036854775808"),
    (2**63 - 1, ColumnType.UNSIGNED_BIGINT, "9223372036854775807"),
    (3.0, ColumnType.BIGINT, "3"),
    (0.1, ColumnType.DOUBLE, "0.1"),
    (1e100, ColumnType.DOUBLE, "1e+100"),
    (float("inf"), ColumnType.DOUBLE, "inf"),
    (7, ColumnType.TEXT, "7"),
    (b"\x00\xff", ColumnType.BLOB, b"\x00\xff"),
    (bytearray(b"ab"), ColumnType.BLOB, b"ab"),
    (2**70, ColumnType.TEXT, str(2**70)),
])
def test_coerce_value(value, type_, expected):
    assert coerce_value(value, type_) == expected


@pytest.mark.parametrize("value", [0.1, 1 / 3, 1e-310, 123456789.123456789, -0.0, 5e-324])
def test_floats_round_trip_through_the_text_osqueryd_parses(value):
    assert float(coerce_value(value, ColumnType.DOUBLE)) == value


def test_nan_is_sent_as_text_strtod_reads():
    assert math.isnan(float(coerce_value(float("nan"), ColumnType.DOUBLE)))


@pytest.mark.parametrize("value, type_, message", [
    (2**31, ColumnType.INTEGER, "does not fit INTEGER"),
    (-(2**31) - 1, ColumnType.INTEGER, "declare it BIGINT"),
    (2**63, ColumnType.BIGINT, "does not fit BIGINT"),
    (2**63, ColumnType.UNSIGNED_BIGINT, "UNSIGNED BIGINT"),
    (1.5, ColumnType.INTEGER, "not a whole number"),
])
def test_out_of_range_integers_are_caught(value, type_, message):
    with pytest.raises(ValueCoercionError, match=message):
        coerce_value(value, type_, "c")


def test_rows_are_coerced_and_none_is_null():
    response = generate(make([{"t": "x", "i": True, "b": 2**40, "u": None, "d": 0.5,
                               "blob": b"\x01"}]))
    assert response.code == 0
    assert response.rows == [{"t": "x", "i": "1", "b": "1099511627776", "d": "0.5",
                              "blob": b"\x01"}]


def test_generate_may_return_a_generator():
    def gen(ctx):
        for n in range(3):
            yield {"b": n}
    plugin = TablePlugin("g", COLUMNS, gen)
    assert generate(plugin).rows == [{"b": "0"}, {"b": "1"}, {"b": "2"}]


def test_undeclared_keys_are_an_error_naming_them():
    with pytest.raises(ValueCoercionError, match=r"row 1: 'nope' is not a column"):
        make([{"t": "a"}, {"t": "b", "nope": "x"}]).coerce_rows([{"t": "a"}, {"t": "b", "nope": "x"}])


def test_undeclared_keys_can_be_dropped_like_osqueryd_does():
    plugin = make([{"t": "a", "nope": 1}], strict_keys=False)
    assert generate(plugin).rows == [{"t": "a"}]


def test_rowid_is_always_allowed():
    assert generate(make([{"rowid": 7, "t": "a"}])).rows == [{"rowid": "7", "t": "a"}]


@pytest.mark.parametrize("rows, message", [
    (None, "returned None"),
    (5, "returned int"),
    ([["a"]], "must be a mapping"),
    ([{"i": 2**40}], "row 0: value 1099511627776 does not fit INTEGER column 'i'"),
])
def test_bad_generate_results_raise_a_clear_error(rows, message):
    with pytest.raises(ValueCoercionError, match=message):
        make(rows).coerce_rows(rows)


def test_unused_columns_are_not_sent():
    plugin = make([{"t": "a", "b": 1, "d": 2.5, "rowid": 1}])
    response = generate(plugin, {"constraints": [], "colsUsed": ["b"], "colsUsedBitset": 4})
    assert response.rows == [{"b": "1", "rowid": "1"}]
    assert generate(plugin, {"constraints": [], "colsUsed": [], "colsUsedBitset": 0}).rows == [
        {"rowid": "1"}]


def test_generate_sees_the_typed_context():
    seen = []
    plugin = TablePlugin("c", COLUMNS, lambda ctx: seen.append(ctx) or [])
    generate(plugin, {"constraints": [{"name": "b", "list": [{"op": 2, "expr": "5"}],
                                       "affinity": "BIGINT"}]})
    assert seen[0].equals("b") == [5]


def test_bad_context_fails_the_call_not_the_table():
    response = make([]).call({"action": "generate", "context": "{oops"})
    assert response.code == 1 and "bad query context" in response.message


@pytest.mark.parametrize("request_, message", [
    ({}, "request has no action"),
    ({"action": "explode"}, "unknown action 'explode'"),
])
def test_unknown_actions_answer_status_1(request_, message):
    response = make([]).call(request_)
    assert response.code == 1 and message in response.message


# -- declaration ------------------------------------------------------------------------
def test_routes_are_columns_aliases_column_aliases_then_attributes():
    plugin = TablePlugin("x", [Column("a", aliases=("a2",)), Column("n", "UNSIGNED BIGINT", index=True)],
                         lambda ctx: [], aliases=("x_alias",), cacheable=True, event_based=True)
    assert plugin.routes() == [
        {"id": "column", "name": "a", "type": "TEXT", "op": "0"},
        {"id": "column", "name": "n", "type": "UNSIGNED BIGINT", "op": "1"},
        {"id": "alias", "alias": "x_alias"},
        {"id": "columnAlias", "name": "a2", "target": "a"},
        {"id": "attributes", "attributes": "6"},
    ]
    assert plugin.call({"action": "columns"}).rows == plugin.routes()


def test_spec_is_osquerys_schema_json_shape():
    plugin = TablePlugin("x", [Column("n", "UNSIGNED BIGINT", required=True, description="count")],
                         lambda ctx: [], platforms=["linux"], description="demo")
    spec = plugin.spec()
    assert {"name", "description", "url", "platforms", "evented", "cacheable", "notes",
            "examples", "columns"} <= set(spec)
    assert spec["columns"][0] == {"name": "n", "description": "count", "type": "unsigned_bigint",
                                  "notes": "", "hidden": False, "required": True, "index": False,
                                  "additional": False, "optimized": False, "aliases": []}


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad name"}, "not a SQL identifier"),
    ({"columns": []}, "has no columns.*Invalid route info"),
    ({"columns": [Column("a"), Column("A")]}, "used twice"),
    ({"columns": [Column("a", aliases=("b",)), Column("b")]}, "used twice"),
    ({"columns": ["a"]}, "must be osqsdk.Column"),
    ({"generate": None}, "must be callable"),
    ({"aliases": ["no way"]}, "alias"),
])
def test_bad_table_definitions_raise_immediately(kwargs, message):
    args = {"name": "t", "columns": [Column("a")], "generate": lambda ctx: []}
    args.update(kwargs)
    with pytest.raises(PluginDefinitionError, match=message):
        TablePlugin(**args)


def test_table_decorator_returns_the_plugin():
    @osqsdk.table("deco", columns=[Column("a")])
    def deco(ctx):
        return [{"a": "1"}]

    assert isinstance(deco, TablePlugin) and deco.name == "deco"
    assert generate(deco).rows == [{"a": "1"}]


# -- writes (docs/protocol.md §3.2, §3.6) -----------------------------------------------------
class Store:
    def __init__(self):
        self.rows = {}

    def insert(self, row, rowid):
        if any(r["t"] == row["t"] for r in self.rows.values()):
            raise ConstraintViolation("duplicate")
        if row["t"] == "ro":
            raise ReadOnlyTable()
        if row["t"] == "boom":
            raise RuntimeError("disk on fire")
        rowid = rowid if rowid is not None else len(self.rows) + 10
        self.rows[rowid] = row
        return rowid

    def update(self, rowid, row, new_rowid):
        self.rows.pop(rowid)
        self.rows[new_rowid if new_rowid is not None else rowid] = row

    def delete(self, rowid):
        del self.rows[rowid]


@pytest.fixture
def writable():
    store = Store()
    plugin = TablePlugin("w", [Column("t"), Column("b", "BIGINT", aliases=("bee",))],
                         lambda ctx: [{"rowid": k, **v} for k, v in store.rows.items()],
                         insert=store.insert, update=store.update, delete=store.delete)
    return plugin, store


def test_insert_returns_the_new_rowid_when_osqueryd_asks(writable):
    plugin, store = writable
    response = plugin.call({"action": "insert", "auto_rowid": "false",
                            "json_value_array": '["a", 5, null]'})
    assert response.rows == [{"status": "success", "id": "10"}]
    assert store.rows == {10: {"t": "a", "b": 5}}


def test_insert_with_sqlite_rowid_answers_success_without_id(writable):
    plugin, store = writable
    response = plugin.call({"action": "insert", "auto_rowid": "true", "id": "77",
                            "json_value_array": '["a", null, 6]'})
    assert response.rows == [{"status": "success"}]
    assert store.rows == {77: {"t": "a", "b": 6}}  # the alias value lands on its column


@pytest.mark.parametrize("values, status", [
    ('["ro", 1, null]', "readonly"),
    ('["boom", 1, null]', "failure"),
    ('["only one"]', "failure"),
    ("not json", "failure"),
])
def test_insert_failures_are_one_status_row(writable, values, status):
    plugin, _ = writable
    response = plugin.call({"action": "insert", "auto_rowid": "false", "json_value_array": values})
    assert response.code == 0 and len(response.rows) == 1
    assert response.rows[0]["status"] == status
    if status == "failure":
        assert response.rows[0]["message"]


def test_constraint_violation_answers_constraint(writable):
    plugin, _ = writable
    request = {"action": "insert", "auto_rowid": "false", "json_value_array": '["a", 1, null]'}
    plugin.call(request)
    assert plugin.call(request).rows == [{"status": "constraint"}]


def test_update_and_delete(writable):
    plugin, store = writable
    plugin.call({"action": "insert", "auto_rowid": "false", "json_value_array": '["a", 1, null]'})
    assert plugin.call({"action": "update", "id": "10", "new_id": "11",
                        "json_value_array": '["b", 2, null]'}).rows == [{"status": "success"}]
    assert store.rows == {11: {"t": "b", "b": 2}}
    assert plugin.call({"action": "delete", "id": "11"}).rows == [{"status": "success"}]
    assert store.rows == {}
    missing = plugin.call({"action": "delete", "id": "11"})
    assert missing.rows[0]["status"] == "failure"
    bad_id = plugin.call({"action": "delete", "id": "eleven"})
    assert bad_id.rows[0] == {"status": "failure", "message": "request 'id' is not a rowid: 'eleven'"}


def test_tables_without_write_handlers_are_readonly():
    plugin = make([])
    for action in ("insert", "update", "delete"):
        assert plugin.call({"action": action, "id": "1", "json_value_array": "[]"}).rows == [
            {"status": "readonly"}]


def test_insert_handler_must_return_a_rowid_when_osqueryd_asks_for_one():
    plugin = TablePlugin("w", [Column("t")], lambda ctx: [], insert=lambda row, rowid: None)
    response = plugin.call({"action": "insert", "auto_rowid": "false", "json_value_array": '["a"]'})
    assert response.rows[0]["status"] == "failure"
    assert "did not return the new rowid" in response.rows[0]["message"]


# -- the column-wise fast path gives exactly what the general path gives -------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False), st.text(max_size=5), st.binary(max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional={c.name: _VALUES for c in COLUMNS}),
                max_size=6))
def test_columnwise_path_agrees_with_the_general_path(rows):
    fast = make(rows)
    general = make(rows)
    general._columnwise_skip = 10**9  # general path only
    try:
        expected = general.coerce_rows(rows)
    except ValueCoercionError as exc:
        with pytest.raises(ValueCoercionError, match=re.escape(str(exc))):
            fast.coerce_rows(rows)
        return
    assert fast.coerce_rows(rows) == expected


def test_columnwise_path_is_taken_for_text_and_numbers():
    plugin = make([])
    rows = [{"t": "a", "i": 1, "b": 2**40, "u": None, "d": 0.5}]
    assert plugin._coerce_columnwise(rows) == [{"t": "a", "i": "1", "b": "1099511627776",
                                                "d": "0.5"}]
    assert plugin._coerce_columnwise([{"t": None}]) is None  # NULL text: general path
    assert plugin._columnwise_skip > 0
    assert plugin._coerce_columnwise([["not", "a dict"]]) is None
