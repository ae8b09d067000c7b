import json

import pytest

from osqsdk import DistributedPlugin, DistributedQueries, DistributedResult, QueryStats


def test_get_queries_answers_results_json():
    plugin = DistributedPlugin(
        "d", lambda: DistributedQueries({"q1": "SELECT 1"}, {"q1": "SELECT 1 FROM os_version"}, 60),
        lambda results: None)
    response = plugin.call({"action": "getQueries"})
    assert response.code == 0
    assert json.loads(response.rows[0]["results"]) == {
        "queries": {"q1": "SELECT 1"}, "discovery": {"q1": "SELECT 1 FROM os_version"},
        "accelerate": 60}


@pytest.mark.parametrize("work, expected", [
    ({"q": "SELECT 1"}, {"queries": {"q": "SELECT 1"}}),
    ({"queries": {"q": "SELECT 1"}, "accelerate": 5}, {"queries": {"q": "SELECT 1"}, "accelerate": 5}),
    (None, {"queries": {}}),
])
def test_get_queries_accepts_plain_mappings(work, expected):
    plugin = DistributedPlugin("d", lambda: work, lambda results: None)
    assert json.loads(plugin.call({"action": "getQueries"}).rows[0]["results"]) == expected


def test_write_results_are_typed_and_tolerant():
    got = []
    plugin = DistributedPlugin("d", dict, got.extend)
    body = {
        "queries": {"ok": [{"a": "1", "b": ""}], "empty": "", "bad": []},
        "statuses": {"ok": 0, "empty": "0", "bad": "1"},
        "messages": {"ok": "", "bad": "no such table: nope"},
        "stats": {"ok": {"wall_time_ms": "3", "user_time": 1, "system_time": 0, "memory": 100},
                  "empty": {}},
    }
    assert plugin.call({"action": "writeResults", "results": json.dumps(body)}).code == 0
    assert got == [
        DistributedResult("ok", [{"a": "1", "b": ""}], 0, "", QueryStats(3, 1, 0, 100)),
        DistributedResult("empty", [], 0, "", None),
        DistributedResult("bad", [], 1, "no such table: nope", None),
    ]
    assert got[2].ok is False


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"), ("[]", "not a JSON object"), ('{"queries": []}', "must be an object"),
    ('{"queries": {"q": {"a": 1}}}', "must be a list"),
])
def test_malformed_write_results(text, message):
    response = DistributedPlugin("d", dict, print).call({"action": "writeResults", "results": text})
    assert response.code == 1 and message in response.message


def test_unknown_action():
    assert DistributedPlugin("d", dict, print).call({"action": "x"}).code == 1
