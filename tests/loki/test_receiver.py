"""The Loki receiver double follows the distributor's rules (docs/loki.md §1-§3)."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
import zlib

import cramjam
import pytest

from osqsdk.loki._proto.push_pb2 import PushRequest
from osqsdk.loki._receiver import parse_label_string
from osqsdk.testing import LokiReceiver

NS = 1_000_000_000


def now_ns(offset_s: float = 0) -> int:
    return int((time.time() + offset_s) * NS)


def post(rx, body: bytes, headers: dict[str, str], path: str = "/loki/api/v1/push"):
    # http.client adds no Content-Type of its own (urllib.request would)
    conn = http.client.HTTPConnection(rx.host, rx.port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode().rstrip("\n"), dict(response.headers)
    finally:
        conn.close()


def push_json(rx, streams, *, gzip_it=False, headers=None, path="/loki/api/v1/push"):
    body = json.dumps({"streams": streams}).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    if gzip_it:
        body = gzip.compress(body)
        h["Content-Encoding"] = "gzip"
    return post(rx, body, h, path)


def push_proto(rx, streams, headers=None):
    request = PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for ts, line in entries:
            stream.entries.add(line=line, timestamp={"seconds": ts // NS, "nanos": ts % NS})
    body = bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
    return post(rx, body, {"Content-Type": "application/x-protobuf", **(headers or {})})


def test_receiver_stores_a_protobuf_push_and_answers_204(receiver):
    ts = now_ns()
    status, body, _ = push_proto(receiver, [('{job="osquery", host="a"}', [(ts, "one"), (ts + 1, "two")])])
    assert (status, body) == (204, "")
    streams = receiver.streams()
    assert streams == {'{host="a", job="osquery", service_name="osquery"}':
                       [(ts, "one", ()), (ts + 1, "two", ())]}


def test_receiver_decodes_json_plain_gzip_and_deflate(receiver):
    ts = now_ns()
    stream = {"stream": {"job": "x"}, "values": [[str(ts), "plain"]]}
    assert push_json(receiver, [stream])[0] == 204
    stream["values"] = [[str(ts + 1), "gz", {"trace": "t1"}]]
    assert push_json(receiver, [stream], gzip_it=True)[0] == 204
    raw = json.dumps({"streams": [{"stream": {"job": "x"}, "values": [[str(ts + 2), "fl"]]}]})
    deflate = zlib.compressobj(wbits=-15)
    body = deflate.compress(raw.encode()) + deflate.flush()
    assert post(receiver, body, {"Content-Type": "application/json",
                                 "Content-Encoding": "deflate"})[0] == 204
    entries = receiver.streams()['{job="x", service_name="x"}']
    assert [(line, sm) for _, line, sm in entries] == [("plain", ()), ("gz", (("trace", "t1"),)),
                                                       ("fl", ())]


@pytest.mark.parametrize("headers, body, status, text", [
    ({}, b"{}", 400, "mime"),                                           # no Content-Type
    ({"Content-Type": "application/json", "Content-Encoding": "br"}, b"{}", 400,
     'Content-Encoding "br" not supported'),
    ({"Content-Type": "application/json"}, b'{"streams":[]}', 422, "at least one valid stream"),
    ({"Content-Type": "application/json"}, b"{not json", 400, ""),
    ({"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff", 400, "snappy"),
])
def test_receiver_refuses_bad_requests_like_loki(receiver, headers, body, status, text):
    got_status, got_text, _ = post(receiver, body, headers)
    assert got_status == status
    assert text in got_text
    assert receiver.entry_count == 0


@pytest.mark.parametrize("path, body", [
    ("/api/prom/push", b"[1]"),
    ("/api/prom/push", b'{"streams": 5}'),
    ("/api/prom/push", b'{"streams": [{"labels": "{a=\\"b\\"}", "entries": 5}]}'),
    ("/loki/api/v1/push", b'{"streams": [{"stream": {"a": "b"}, "values": 5}]}'),
])
def test_json_of_the_wrong_shape_is_refused_with_400(receiver, path, body):
    assert post(receiver, body, {"Content-Type": "application/json"}, path)[0] == 400


def test_snappy_compressed_json_is_refused(receiver):
    body = bytes(cramjam.snappy.compress_raw(b'{"streams":[]}'))
    status, _, _ = post(receiver, body, {"Content-Type": "application/json",
                                         "Content-Encoding": "snappy"})
    assert status == 400


def test_json_timestamp_must_be_a_string(receiver):
    status, text, _ = push_json(receiver, [{"stream": {"a": "b"}, "values": [[now_ns(), "x"]]}])
    assert status == 400 and "timestamp" in text


def test_a_bad_label_string_refuses_the_whole_request(receiver):
    ts = now_ns()
    status, text, _ = push_proto(receiver, [('{job="ok"}', [(ts, "fine")]),
                                            ('{job=unquoted}', [(ts, "bad")])])
    assert status == 400 and text.startswith("couldn't parse labels")
    assert receiver.entry_count == 0


def test_partial_acceptance_stores_the_valid_entries_then_answers_400(receiver):
    ts = now_ns()
    status, text, _ = push_proto(receiver, [('{job="a"}', [
        (ts, "good"), (now_ns(-8 * 86400), "too old"), (now_ns(3600), "too new"),
        (ts + 1, "x" * (256 * 1024 + 1))])])
    assert status == 400
    assert "timestamp too old" in text and "timestamp too new" in text
    assert "max entry size" in text
    assert receiver.lines() == ["good"]
    assert receiver.discarded == {"greater_than_max_sample_age": 1, "too_far_in_future": 1,
                                  "line_too_long": 1}


def test_label_limits(receiver):
    ts = now_ns()
    many = "{" + ", ".join(f'l{i}="v"' for i in range(16)) + "}"
    status, text, _ = push_proto(receiver, [(many, [(ts, "a")]), ('{job="ok"}', [(ts, "b")])])
    assert status == 400 and "has 16 label names; limit 15" in text
    assert receiver.lines() == ["b"]
    long_value = '{job="' + "v" * 2049 + '"}'
    status, text, _ = push_proto(receiver, [(long_value, [(ts, "c")])])
    assert status == 400 and "label value too long" in text
    status, text, _ = push_proto(receiver, [('{a="1", a="2"}', [(ts, "d")])])
    assert status == 400 and "duplicate label name" in text


def test_tenant_rules_when_auth_is_on():
    with LokiReceiver(auth_enabled=True) as rx:
        ts = now_ns()
        assert push_proto(rx, [('{a="b"}', [(ts, "x")])])[:2] == (401, "no org id")
        assert push_proto(rx, [('{a="b"}', [(ts, "x")])],
                          headers={"X-Scope-OrgID": "a|b"})[0] == 400
        assert push_proto(rx, [('{a="b"}', [(ts, "x")])],
                          headers={"X-Scope-OrgID": "team/1"})[0] == 400
        assert push_proto(rx, [('{a="b"}', [(ts, "x")])],
                          headers={"X-Scope-OrgID": "team-1"})[0] == 204
        assert rx.lines("team-1") == ["x"]


def test_tenant_header_is_ignored_when_auth_is_off(receiver):
    push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])], headers={"X-Scope-OrgID": "t"})
    assert receiver.lines("fake") == ["x"]


def test_ingestion_rate_limit_is_all_or_nothing():
    with LokiReceiver(ingestion_rate_mb=0.001, ingestion_burst_size_mb=0.002) as rx:
        ts = now_ns()
        status, text, _ = push_proto(rx, [('{a="b"}', [(ts, "x" * 1000), (ts + 1, "y" * 1500)])])
        assert status == 429 and "ingestion rate limit exceeded" in text
        assert rx.entry_count == 0 and rx.discarded["rate_limited"] == 2
        assert push_proto(rx, [('{a="b"}', [(ts, "small")])])[0] == 204


def test_per_stream_rate_limit_stores_the_rest_and_answers_429():
    with LokiReceiver(per_stream_rate_limit=1, per_stream_rate_limit_burst=10) as rx:
        ts = now_ns()
        status, text, _ = push_proto(rx, [('{a="b"}', [(ts, "12345"), (ts + 1, "too long")])])
        assert status == 429 and "Per stream rate limit exceeded" in text
        assert rx.lines() == ["12345"]


def test_out_of_order_window_is_one_hour_per_stream(receiver):
    ts = now_ns()
    push_proto(receiver, [('{a="b"}', [(ts, "new")])])
    status, text, _ = push_proto(receiver, [('{a="b"}', [(ts - 3601 * NS, "old"),
                                                        (ts - 3599 * NS, "ok")])])
    assert status == 400 and "entry too far behind" in text and "total ignored: 1 out of 2" in text
    assert push_proto(receiver, [('{a="other"}', [(ts - 3601 * NS, "new stream")])])[0] == 204
    assert sorted(receiver.lines()) == ["new", "new stream", "ok"]


def test_only_the_last_streams_error_is_reported_like_lokis_ingester(receiver):
    ts = now_ns()
    push_proto(receiver, [('{a="1"}', [(ts, "x")])])
    status, _, _ = push_proto(receiver, [('{a="1"}', [(ts - 2 * 3600 * NS, "behind")]),
                                         ('{a="2"}', [(ts, "fine")])])
    assert status == 204  # the quirk from docs/loki.md §2.1
    assert receiver.discarded["too_far_behind"] == 1


def test_exact_duplicates_are_dropped_silently(receiver):
    ts = now_ns()
    for _ in range(3):
        assert push_proto(receiver, [('{a="b"}', [(ts, "same"), (ts + 5, "other")])])[0] == 204
    assert receiver.lines() == ["same", "other"]
    assert receiver.duplicates == 4
    push_proto(receiver, [('{a="b"}', [(ts, "same but different")])])
    assert len(receiver.lines()) == 3  # same timestamp, other content: kept


def test_legacy_json_on_api_prom_push(receiver):
    body = json.dumps({"streams": [{"labels": '{job="legacy"}', "entries": [
        {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".123456789Z",
         "line": "old style"}]}]}).encode()
    status, _, _ = post(receiver, body, {"Content-Type": "application/json"}, "/api/prom/push")
    assert status == 204
    ((ts, line, _),) = receiver.streams()['{job="legacy", service_name="legacy"}']
    assert line == "old style" and ts % NS == 123456789


def test_scripted_failures_with_retry_after(receiver):
    receiver.fail(429, times=2, retry_after=7)
    first = push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])])
    assert first[0] == 429 and first[2]["Retry-After"] == "7"
    assert push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])])[0] == 429
    assert push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])])[0] == 204
    receiver.fail(503)
    status, text, _ = push_proto(receiver, [('{a="b"}', [(now_ns(), "y")])])
    assert (status, text) == (503, "The server cannot accept more requests at this time.")


def test_connection_reset(receiver):
    receiver.reset()
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])])
    assert push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])])[0] == 204


def test_outage_refuses_connections_and_comes_back_on_the_same_port(receiver):
    port = receiver.port
    with receiver.outage():
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert receiver.port == port
    assert push_proto(receiver, [('{a="b"}', [(now_ns(), "back")])])[0] == 204


def test_too_large_body_is_413():
    with LokiReceiver(max_recv_msg_size=100) as rx:
        status, _, _ = push_proto(rx, [('{a="b"}', [(now_ns(), os.urandom(300).hex())])])
        assert status == 413


def test_required_authorization_like_a_gateway():
    with LokiReceiver(required_authorization="Bearer s3cret") as rx:
        assert push_proto(rx, [('{a="b"}', [(now_ns(), "x")])])[0] == 401
        assert push_proto(rx, [('{a="b"}', [(now_ns(), "x")])],
                          headers={"Authorization": "Bearer s3cret"})[0] == 204


@pytest.mark.parametrize("text, labels", [
    ('{}', []),
    ('{a="1",}', [("a", "1")]),
    ('{ a = "x\\"y" , b=\'q\', c=`raw\\n`}', [("a", 'x"y'), ("b", "q"), ("c", "raw\\n")]),
    ('{a="\\u00e9\\x41\\101\\n"}', [("a", "éAA\n")]),
    ('{"dotted.name"="v"}', [("dotted.name", "v")]),
])
def test_label_string_parser(text, labels):
    assert parse_label_string(text) == labels


@pytest.mark.parametrize("text", ['a="b"', '{a=b}', '{a="b"', '{1a="b"}', '{a="b"} x',
                                  '{a="\\q"}', '{a="b" c="d"}'])
def test_label_string_parser_refuses(text):
    with pytest.raises(ValueError):
        parse_label_string(text)


def test_stats_endpoint(receiver):
    push_proto(receiver, [('{a="b"}', [(now_ns(), "x")])])
    with urllib.request.urlopen(receiver.url + "/double/stats") as response:
        stats = json.load(response)
    assert stats["entries"] == 1 and stats["statuses"] == {"204": 1}
