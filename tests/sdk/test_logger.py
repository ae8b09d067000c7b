"""Logger plugins: the requests osqueryd sends and the typed records user code gets."""

import json

import pytest

from osqsdk import LoggerFailure, LoggerPlugin, ResultFormat, Severity

COMMON = ('"name":"pack_ir_ssh_logins","hostIdentifier":"web-1",'
          '"calendarTime":"Tue Nov 24 07:30:19 2026 UTC","unixTime":1795505419,'
          '"epoch":0,"counter":3,"numerics":false')
EVENT = ('{' + COMMON + ',"decorations":{"host_uuid":"abc","hostname":"web-1"},'
         '"columns":{"host":"10.0.0.9","type":"7","username":"alice"},"action":"added"}')
BATCH = ('{"diffResults":{"removed":[{"pid":"1"}],"added":[{"pid":"2"},{"pid":"3"}]},'
         + COMMON + '}')
SNAPSHOT = ('{"snapshot":[{"a":"1"},{"a":"2"}],"action":"snapshot",' + COMMON.replace(
    '"counter":3', '"counter":0') + '}')
SNAPSHOT_EVENT = '{' + COMMON + ',"columns":{"a":"1"},"action":"snapshot"}'
STATUS = json.dumps([
    {"s": 0, "f": "scheduler.cpp", "i": 85, "m": "Executing scheduled query", "h": "web-1",
     "c": "Tue Nov 24 07:30:19 2026 UTC", "u": 1795505419},
    {"s": 2, "f": "config.cpp", "i": 12, "m": "bad pack", "h": "web-1", "c": "x", "u": 1795505420},
])


@pytest.fixture
def collected():
    got = {"results": [], "status": [], "events": [], "init": []}
    plugin = LoggerPlugin("acme", log_result=got["results"].append,
                          log_status=got["status"].extend, log_event=got["events"].append,
                          init=got["init"].append)
    return plugin, got


def test_features_bitmask_is_the_status_code():
    assert LoggerPlugin("a").call({"action": "features"}).code == 0
    assert LoggerPlugin("a", log_status=print).call({"action": "features"}).code == 1
    assert LoggerPlugin("a", log_event=print).call({"action": "features"}).code == 2
    assert LoggerPlugin("a", log_status=print, log_event=print).call(
        {"action": "features"}).code == 3


def test_init(collected):
    plugin, got = collected
    assert plugin.call({"init": "osqueryd"}).code == 0
    assert got["init"] == ["osqueryd"]


def test_event_format_result(collected):
    plugin, got = collected
    assert plugin.call({"string": EVENT, "category": "event"}).code == 0
    record = got["results"][0]
    assert record.format is ResultFormat.EVENT and record.action == "added"
    assert (record.name, record.host_identifier, record.unix_time, record.counter, record.epoch) == (
        "pack_ir_ssh_logins", "web-1", 1795505419, 3, 0)
    assert record.calendar_time == "Tue Nov 24 07:30:19 2026 UTC" and record.numerics is False
    assert record.decorations == {"host_uuid": "abc", "hostname": "web-1"}
    assert record.columns == {"host": "10.0.0.9", "type": "7", "username": "alice"}
    assert record.category == "event" and record.raw == EVENT
    assert list(record.rows()) == [("added", record.columns)]


def test_batch_format_result(collected):
    plugin, got = collected
    plugin.call({"string": BATCH, "category": "event"})
    record = got["results"][0]
    assert record.format is ResultFormat.BATCH
    assert record.added == [{"pid": "2"}, {"pid": "3"}] and record.removed == [{"pid": "1"}]
    assert list(record.rows()) == [("removed", {"pid": "1"}), ("added", {"pid": "2"}),
                                   ("added", {"pid": "3"})]


def test_first_batch_with_no_rows_has_empty_lists(collected):
    plugin, got = collected
    plugin.call({"string": '{"diffResults":{"removed":"","added":[]},' + COMMON + '}'})
    assert got["results"][0].added == [] and got["results"][0].removed == []


def test_snapshot_formats(collected):
    plugin, got = collected
    plugin.call({"snapshot": SNAPSHOT})
    plugin.call({"snapshot": SNAPSHOT_EVENT})
    whole, one = got["results"]
    assert whole.format is ResultFormat.SNAPSHOT and whole.snapshot == [{"a": "1"}, {"a": "2"}]
    assert [a for a, _ in whole.rows()] == ["snapshot", "snapshot"]
    assert one.format is ResultFormat.SNAPSHOT_EVENT and one.columns == {"a": "1"}


def test_top_level_decorations_are_collected():
    got = []
    plugin = LoggerPlugin("a", log_result=got.append)
    plugin.call({"string": '{' + COMMON + ',"host_uuid":"abc","columns":{},"action":"added"}'})
    assert got[0].decorations == {"host_uuid": "abc"}


def test_numerics_values_are_kept_as_numbers():
    got = []
    plugin = LoggerPlugin("a", log_result=got.append)
    line = '{' + COMMON.replace('"numerics":false', '"numerics":true') + \
        ',"columns":{"pid":42,"cpu":0.5},"action":"added"}'
    plugin.call({"string": line})
    assert got[0].numerics is True and got[0].columns == {"pid": 42, "cpu": 0.5}


def test_status_logs_are_typed(collected):
    plugin, got = collected
    assert plugin.call({"status": "true", "log": STATUS}).code == 0
    info, error = got["status"]
    assert info.severity is Severity.INFO and error.severity is Severity.ERROR
    assert (error.filename, error.line, error.message, error.host_identifier, error.unix_time) == (
        "config.cpp", 12, "bad pack", "web-1", 1795505420)


def test_events_are_rows(collected):
    plugin, got = collected
    assert plugin.call({"event": '{"pid":"1","time":"10","eid":"7"}'}).code == 0
    assert got["events"] == [{"pid": "1", "time": "10", "eid": "7"}]


def test_string_batch_is_accepted(collected):
    plugin, got = collected
    assert plugin.call({"string_batch": json.dumps([EVENT, BATCH])}).code == 0
    assert [r.format for r in got["results"]] == [ResultFormat.EVENT, ResultFormat.BATCH]


def test_deliberate_failure_is_the_only_failure_for_results():
    def fail(record):
        raise LoggerFailure("disk full, stop osqueryd")

    assert LoggerPlugin("a", log_result=fail).call({"string": EVENT}).code == 1

    def buggy(record):
        raise ZeroDivisionError("oops")

    plugin = LoggerPlugin("a", log_result=buggy)
    assert plugin.call({"string": EVENT}).code == 0  # a bug must not stop osqueryd
    assert plugin.dropped == 1


@pytest.mark.parametrize("request_, message", [
    ({"string": "not json"}, "result line is not JSON"),
    ({"string": "[1,2]"}, "not a JSON object"),
    ({"string": '{"hostIdentifier":"x"}'}, "no query 'name'"),
    ({"string": '{"name":"q","columns":{},"action":"exploded"}'}, "unknown action"),
    ({"string": '{"name":"q","unixTime":"soon","columns":{},"action":"added"}'}, "unixTime"),
    ({"string": '{"name":"q"}'}, "none of 'columns'"),
    ({"snapshot": "{"}, "result line is not JSON"),
    ({"string_batch": "[1]"}, "not a JSON object"),
    ({"string_batch": "{"}, "string_batch is not JSON"),
])
def test_an_unreadable_result_line_is_counted_and_logged_never_a_failure(
        collected, caplog, request_, message):
    # osqueryd exits when a result line fails (docs/protocol.md §4.6)
    plugin, got = collected
    assert plugin.call(request_).code == 0
    assert plugin.unreadable == 1 and got["results"] == []
    assert any(message in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("request_, message", [
    ({"status": "true", "log": "{"}, "status log batch is not JSON"),
    ({"status": "true", "log": '{"s":1}'}, "not a JSON array"),
    ({"status": "true", "log": '[{"s":"high"}]'}, "status log 0"),
    ({"event": "[]"}, "event is not a JSON object"),
    ({"whatever": "x"}, "unknown request with keys whatever"),
])
def test_malformed_requests_get_status_1_with_the_reason(collected, request_, message):
    plugin, got = collected
    response = plugin.call(request_)
    assert response.code == 1 and message in response.message
    assert got["results"] == [] and got["status"] == []


def test_a_line_nested_150000_deep_is_refused_not_a_crash():
    # orjson has no depth limit and crashes the process on this; run it apart so that a
    # crash fails the test instead of the test run
    import subprocess
    import sys

    code = ("import threading\n"
            "from osqsdk._osquery.records import parse_result, row_counts\n"
            "line = '[' * 150000 + ']' * 150000\n"
            "def parse():\n"
            "    try:\n"
            "        parse_result(line)\n"
            "    except ValueError as exc:\n"
            "        print(exc, row_counts(line))\n"
            "t = threading.Thread(target=parse)\n"  # the Loki batcher parses in a thread
            "t.start(); t.join()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "result line is nested too deeply None"
