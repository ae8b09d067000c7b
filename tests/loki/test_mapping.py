"""osquery records -> Loki entries: labels, timestamps, lines, structured metadata."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from osqsdk._osquery.records import parse_result, parse_status_batch
from osqsdk.loki import LokiConfig, Mapper, format_labels
from osqsdk.loki._receiver import parse_label_string
from tests.sdk.test_logger import BATCH, EVENT, SNAPSHOT, SNAPSHOT_EVENT, STATUS

NS = 1_000_000_000


def mapper(**settings) -> Mapper:
    return Mapper(LokiConfig(url="http://l:1", **settings))


def labels(entry) -> dict[str, str]:
    return dict(parse_label_string(entry.labels))


def test_event_line():
    entry = mapper().result(parse_result(EVENT))
    assert labels(entry) == {"job": "osquery", "name": "pack_ir_ssh_logins", "host": "web-1",
                             "action": "added", "log_type": "result"}
    assert entry.ts_ns == 1795505419 * NS
    assert entry.line == EVENT  # sent as osqueryd wrote it: decorations, columns, counter
    assert entry.metadata == ()


def test_batch_snapshot_and_snapshot_event_lines():
    m = mapper()
    batch = labels(m.result(parse_result(BATCH)))
    assert "action" not in batch and batch["log_type"] == "result"
    snap = labels(m.result(parse_result(SNAPSHOT)))
    assert snap["action"] == "snapshot" and snap["log_type"] == "snapshot"
    snap_event = labels(m.result(parse_result(SNAPSHOT_EVENT)))
    assert snap_event["action"] == "snapshot" and snap_event["log_type"] == "snapshot"


def test_status_logs_keep_their_severity_in_the_line():
    records = parse_status_batch(STATUS)
    entries = [mapper().status(r) for r in records]
    assert labels(entries[0]) == {"job": "osquery", "host": "web-1", "log_type": "status"}
    assert entries[0].ts_ns == 1795505419 * NS
    line = json.loads(entries[1].line)
    assert line == {"hostIdentifier": "web-1", "calendarTime": "x", "unixTime": 1795505420,
                    "severity": 2, "filename": "config.cpp", "line": 12, "message": "bad pack"}
    with_severity = Mapper(LokiConfig(url="http://l:1", labels={"host": "host",
                                                                "level": "severity"}))
    assert labels(with_severity.status(records[1]))["level"] == "error"


def test_decorations_as_labels_and_structured_metadata():
    m = mapper(labels={"name": "name", "dc": "decoration:hostname"},
               structured_metadata={"host_uuid": "decoration:host_uuid", "counter": "counter"})
    entry = m.result(parse_result(EVENT))
    assert labels(entry)["dc"] == "web-1"
    assert entry.metadata == (("counter", "3"), ("host_uuid", "abc"))


def test_a_line_without_unix_time_is_stamped_now():
    import time

    line = EVENT.replace('"unixTime":1795505419', '"unixTime":0')
    before = int(time.time()) * NS
    entry = mapper().result(parse_result(line))
    assert before <= entry.ts_ns <= (int(time.time()) + 1) * NS


def test_unix_time_as_a_string_is_read():
    line = EVENT.replace('"unixTime":1795505419', '"unixTime":"1795505419"')
    assert mapper().result(parse_result(line)).ts_ns == 1795505419 * NS


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True),
                       st.text(min_size=1, max_size=30), max_size=6))
def test_any_label_values_round_trip_through_lokis_parser(values):
    text = format_labels(values)
    parsed = dict(parse_label_string(text))
    expected = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                for k, v in values.items()}
    assert parsed == expected


_BASE = {"name": "pack_ir_last", "hostIdentifier": "web-1",
         "calendarTime": "Mon Nov 23 10:00:00 2026 UTC", "unixTime": 1795505419, "epoch": 0,
         "counter": 3, "numerics": False, "decorations": {"dc": "eu-1", "n": 1},
         "columns": {"user": "root"}, "action": "added"}
# Each changes the usual event line in one way; the quick path must give what
# result(parse_result(line)) gives, or refuse the same lines.
_VARIANTS = [
    {}, {"action": "removed"}, {"action": "snapshot"}, {"action": "other"},
    {"action": None}, {"unixTime": "1795505419"}, {"unixTime": 0}, {"unixTime": -5},
    {"unixTime": 1.0e9}, {"unixTime": True}, {"epoch": "2"}, {"counter": False},
    {"hostIdentifier": 7}, {"hostIdentifier": None}, {"calendarTime": 12}, {"name": 5},
    {"decorations": []}, {"decorations": {"dc": ["a"], "n": None}}, {"columns": []},
    {"columns": None}, {"region": "top-level decoration"}, {"snapshot": [{"a": "1"}]},
    {"diffResults": {"added": [{"a": "1"}], "removed": []}}, {"numerics": True},
]


def _line_of(variant: dict) -> str:
    data = {**_BASE, **variant}
    return json.dumps({k: v for k, v in data.items() if v != "<drop>"})


def _both_ways(m: Mapper, line: str):
    try:
        slow = m.result(parse_result(line), 7 * NS + 5)
    except ValueError as exc:
        slow = ("refused", str(exc))
    try:
        fast = m.result_line(line, 7 * NS + 5)
    except ValueError as exc:
        fast = ("refused", str(exc))
    return fast, slow


def test_result_line_is_result_of_parse_result_for_every_shape():
    configs = [mapper(), mapper(labels={"name": "name", "action": "action", "dc": "decoration:dc",
                                        "epoch": "epoch"},
                                structured_metadata={"n": "decoration:n",
                                                     "when": "calendar_time",
                                                     "counter": "counter"})]
    lines = [_line_of(v) for v in _VARIANTS]
    lines += [_line_of({key: "<drop>"}) for key in _BASE]
    lines += ["[]", '"text"', "{}", "not json", BATCH, EVENT, SNAPSHOT, SNAPSHOT_EVENT]
    for m in configs:
        for line in lines:
            fast, slow = _both_ways(m, line)
            assert fast == slow, line


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_BASE) + ["snapshot", "diffResults", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-2, 2**40),
                                 st.text(max_size=5), st.sampled_from(["added", "snapshot"]),
                                 st.dictionaries(st.text(max_size=3), st.text(max_size=3),
                                                 max_size=2),
                                 st.lists(st.dictionaries(st.text(max_size=2),
                                                          st.text(max_size=2), max_size=2),
                                          max_size=2)),
                       max_size=8))
def test_result_line_agrees_with_parse_result_on_any_object(changes):
    fast, slow = _both_ways(mapper(labels={"name": "name", "dc": "decoration:dc"}),
                            _line_of(changes))
    assert fast == slow
