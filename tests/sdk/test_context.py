import json

import pytest

from osqsdk import ColumnType, Operator, QueryContext

# A context as osqueryd builds it for
#   SELECT name FROM t WHERE pid IN (1, 2) AND name LIKE 'a%' AND start > 10
CONTEXT = {
    "constraints": [
        {"name": "name", "list": [{"op": 65, "expr": "a%"}], "affinity": "TEXT"},
        {"name": "path", "list": [], "affinity": "TEXT"},
        {"name": "pid", "list": [{"op": 2, "expr": "1"}, {"op": 2, "expr": "2"}],
         "affinity": "BIGINT"},
        {"name": "score", "list": [{"op": 32, "expr": "0.5"}], "affinity": "DOUBLE"},
        {"name": "start", "list": [{"op": 4, "expr": "10"}], "affinity": "INTEGER"},
    ],
    "colsUsed": ["name", "pid", "start", "score"],
    "colsUsedBitset": 23,
}


def test_operator_values_are_osquerys():
    assert {op.name: op.value for op in Operator if op.value <= 67} == {
        "UNIQUE": 1, "EQUALS": 2, "GREATER_THAN": 4, "LESS_THAN_OR_EQUALS": 8, "LESS_THAN": 16,
        "GREATER_THAN_OR_EQUALS": 32, "MATCH": 64, "LIKE": 65, "GLOB": 66, "REGEXP": 67}


def test_unknown_operator_codes_survive():
    op = Operator(99)
    assert op == 99 and op.name == "UNKNOWN_99"


def test_context_is_typed_per_column():
    ctx = QueryContext.from_json(json.dumps(CONTEXT))
    assert ctx.equals("pid") == [1, 2]
    assert [(c.operator, c.value) for c in ctx.constraints_for("start")] == [(Operator.GREATER_THAN, 10)]
    assert ctx.constraints_for("score")[0].value == 0.5
    assert ctx.constraints_for("name", Operator.LIKE)[0].expression == "a%"
    assert not ctx.has_constraint("path")
    assert ctx.affinities["pid"] is ColumnType.BIGINT
    assert ctx.columns_used == {"name", "pid", "start", "score"}
    assert ctx.columns_used_bitset == 23
    assert ctx.is_used("pid") and not ctx.is_used("path")
    assert len(list(ctx)) == 5


def test_missing_context_means_no_constraints_and_all_columns():
    for text in (None, ""):
        ctx = QueryContext.from_json(text)
        assert list(ctx) == [] and ctx.columns_used is None and ctx.is_used("anything")


def test_count_star_context_uses_no_columns():
    ctx = QueryContext.from_json('{"constraints":[],"colsUsed":[],"colsUsedBitset":0}')
    assert ctx.columns_used == frozenset() and not ctx.is_used("pid")


def test_old_osquery_context_shapes_are_accepted():
    # osquery < 3.0: ops as strings, an empty list as "".
    ctx = QueryContext.from_json(
        '{"constraints":[{"name":"a","list":"","affinity":"TEXT"},'
        '{"name":"b","list":[{"op":"2","expr":"x"}],"affinity":"TEXT"}]}')
    assert ctx.equals("b") == ["x"] and not ctx.has_constraint("a")


def test_unparsable_typed_value_stays_text():
    ctx = QueryContext.from_json(
        '{"constraints":[{"name":"pid","list":[{"op":2,"expr":"abc"}],"affinity":"BIGINT"}]}')
    assert ctx.equals("pid") == ["abc"]


@pytest.mark.parametrize("text, message", [
    ("{not json", "not JSON"),
    ("[1]", "must be a JSON object"),
    ('{"constraints": 5}', "must be a list"),
    ('{"constraints": [{"list": []}]}', "without a name"),
    ('{"constraints": [{"name": "a", "list": [{"op": "x", "expr": "1"}]}]}', "bad op"),
    ('{"constraints": [{"name": "a", "list": [3]}]}', "not an object"),
])
def test_malformed_contexts_raise_value_error_with_the_cause(text, message):
    with pytest.raises(ValueError, match=message):
        QueryContext.from_json(text)
