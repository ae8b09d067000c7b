"""osquery records -> Loki entries: labels, timestamps, lines, structured metadata."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from osqsdk._records import parse_result
from osqsdk._records import parse_status_batch
from osqsdk.loki import LokiConfig, Mapper, format_labels
from osqsdk.testing._loki import parse_label_string
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
