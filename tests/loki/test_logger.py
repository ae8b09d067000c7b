"""LokiLogger in process: answers, metrics, a 60 s outage, a slow receiver's memory bound."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from osqsdk.loki import DropReason, LokiLogger
from osqsdk.loki._metrics import ResultRows
from osqsdk.testing import LokiReceiver
from tests.conftest import peer_missing
from tests.loki.conftest import result_line, stamped_now, status_batch
from tests.sdk.test_logger import BATCH, SNAPSHOT


def test_answers_and_row_counters(receiver, make_config):
    logger = LokiLogger(make_config(receiver.url))
    try:
        assert logger.call({"action": "features"}).code == 1
        for i in range(3):
            assert logger.call({"string": result_line(i), "category": "event"}).code == 0
        assert logger.call({"string": result_line(9, action="removed"),
                            "category": "event"}).code == 0
        # Loki refuses entries older than its max_age (7 days): the samples are sent as new
        assert logger.call({"string": stamped_now(BATCH), "category": "event"}).code == 0
        assert logger.call({"snapshot": stamped_now(SNAPSHOT)}).code == 0
        assert logger.call({"string_batch": json.dumps([result_line(4), "junk"])}).code == 0
        assert logger.call({"status": "true", "log": status_batch("a", "b")}).code == 0
        assert logger.client.flush(10)
        value = logger.metrics.value
        assert value("osquery_results_total", name="pack_ir_last", action="added") == 4
        assert value("osquery_results_total", name="pack_ir_last", action="removed") == 1
        assert value("osquery_results_total", name="pack_ir_ssh_logins", action="added") == 2
        assert value("osquery_results_total", name="pack_ir_ssh_logins", action="removed") == 1
        assert value("osquery_results_total", name="pack_ir_ssh_logins", action="snapshot") == 2
        # 4 event lines, a batch line, a snapshot, 2 from string_batch, 2 status logs
        assert value("osqsdk_loki_received_entries_total") == 10
        assert value("osqsdk_loki_sent_entries_total") == 10
        assert value("osqsdk_loki_spool_entries") == 0
    finally:
        logger.close()
    assert receiver.entry_count == 10


def test_row_counting_waits_for_no_scrape_and_holds_few_lines():
    # Lines are counted when the metric is read, and every `batch` lines by the thread that
    # adds them, so that a logger nobody scrapes does not keep every line in memory.
    rows = ResultRows(batch=100)
    for i in range(1050):
        rows.add_line(result_line(i))
        assert len(rows._lines) < 100
    rows.add_line(BATCH)  # one removed and two added rows of pack_ir_ssh_logins
    rows.add_line("not json")
    registry = CollectorRegistry()
    registry.register(rows)
    assert registry.get_sample_value("osquery_results_total",
                                     {"name": "pack_ir_last", "action": "added"}) == 1050
    assert registry.get_sample_value("osquery_results_total",
                                     {"name": "pack_ir_ssh_logins", "action": "added"}) == 2
    assert registry.get_sample_value("osquery_results_total",
                                     {"name": "pack_ir_ssh_logins", "action": "removed"}) == 1
    assert not rows._lines


def test_lone_surrogates_from_json_escapes_are_shipped_as_replacement_characters(
        receiver, make_config):
    logger = LokiLogger(make_config(receiver.url, labels={"log_type": "log_type",
                                                          "dc": "decoration:dc"}))
    try:
        line = result_line(1).replace('"host_uuid"', '"dc":"a\\ud800","host_uuid"')
        assert logger.call({"string": line, "category": "event"}).code == 0
        assert logger.call({"status": "true", "log": status_batch("b\ud800")}).code == 0
        assert logger.client.flush(10)
    finally:
        logger.close()
    streams = receiver.streams()
    assert [line] == [entry[1] for labels, entries in streams.items() if 'dc="a\ufffd"' in labels
                      for entry in entries]
    (status,) = [entries for labels, entries in streams.items() if 'log_type="status"' in labels]
    assert json.loads(status[0][1])["message"] == "b\ufffd"


def test_lines_spooled_while_loki_was_down_are_labelled_after_a_restart(
        receiver, make_config, tmp_path):
    # Result lines are spooled as osqueryd sent them and parsed when shipped: lines a
    # previous process accepted get their labels and timestamps from the next one.
    spool = str(tmp_path / "restart-spool")
    down = LokiLogger(make_config("http://127.0.0.1:9", spool_dir=spool))
    unix_time = int(time.time()) - 60
    lines = [result_line(i, unix_time=unix_time) for i in range(3)] + ["not json"]
    for line in lines:
        assert down.call({"string": line, "category": "event"}).code == 0
    # counted on arrival, Loki or not: the alert rules read this counter
    assert down.metrics.value("osquery_results_total", name="pack_ir_last",
                              action="added") == 3
    down.client.abort()  # as a kill would leave it: everything still in the spool
    up = LokiLogger(make_config(receiver.url, spool_dir=spool))
    try:
        assert up.client.flush(10)
    finally:
        up.close()
    streams = receiver.streams()
    (result,) = [e for labels, e in streams.items() if 'name="pack_ir_last"' in labels]
    assert [line for _, line, *_ in result] == lines[:3]
    # the query's time, plus the spool position in nanoseconds so that order is kept
    assert [int(ts) // 10**9 for ts, *_ in result] == [unix_time] * 3
    assert len({ts for ts, *_ in result}) == 3
    (unparsed,) = [e for labels, e in streams.items() if 'log_type="unparsed"' in labels]
    assert [line for _, line, *_ in unparsed] == ["not json"]


def test_a_deeply_nested_line_is_shipped_unparsed_and_shipping_goes_on(
        receiver, make_config):
    # parsed in the batcher: whatever a line is, it must not stop the shipping
    logger = LokiLogger(make_config(receiver.url, max_line_bytes=1 << 20))
    deep = "[" * 120_000 + "]" * 120_000
    try:
        for line in (deep, result_line(1)):
            assert logger.call({"string": line, "category": "event"}).code == 0
        assert logger.client.flush(10)
    finally:
        logger.close()
    streams = receiver.streams()
    (unparsed,) = [e for labels, e in streams.items() if 'log_type="unparsed"' in labels]
    assert [line for _, line, *_ in unparsed] == [deep]
    assert [e for labels, e in streams.items() if 'name="pack_ir_last"' in labels]


def test_a_line_too_long_for_loki_keeps_its_labels_when_truncated(receiver, make_config):
    logger = LokiLogger(make_config(receiver.url, max_line_bytes=1024))
    try:
        line = result_line(1, username="x" * 5000)
        assert logger.call({"string": line, "category": "event"}).code == 0
        assert logger.client.flush(10)
    finally:
        logger.close()
    (labels,) = receiver.streams()
    assert 'name="pack_ir_last"' in labels and 'action="added"' in labels


def test_a_spool_failure_is_still_answered_success_and_counted(receiver, make_config, caplog):
    logger = LokiLogger(make_config(receiver.url))
    logger.client.abort()  # the spool is closed now
    response = logger.call({"string": result_line(1), "category": "event"})
    assert response.code == 0  # a failure would make osqueryd exit (docs/protocol.md §4.6)
    assert logger.metrics.value("osqsdk_loki_dropped_entries_total",
                                reason=DropReason.SPOOL_ERROR.value) == 1
    assert any("could not spool" in r.getMessage() for r in caplog.records)


def test_metrics_endpoint_passes_promtool(receiver, make_config):
    if shutil.which("promtool") is None:
        peer_missing("promtool is not installed (Debian package prometheus)")
    logger = LokiLogger(make_config(receiver.url, metrics_port=0))
    try:
        logger.call({"string": result_line(1), "category": "event"})
        assert logger.client.flush(10)
        port = logger.client._metrics_server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            text = response.read()
    finally:
        logger.close()
    assert b'osquery_results_total{action="added",name="pack_ir_last"} 1.0' in text
    assert b'osqsdk_loki_dropped_entries_total{reason="spool_full"} 0.0' in text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_60_s_outage_loses_nothing_and_duplicates_nothing(make_config):
    """Lines keep coming for 65 s; Loki is away for 60 of them; then every line is there once."""
    receiver = LokiReceiver().start()
    logger = LokiLogger(make_config(receiver.url, min_backoff=0.05, max_backoff=1.0))
    sent: list[str] = []
    try:
        deadline = time.monotonic() + 2
        i = 0
        while time.monotonic() < deadline:  # 2 s with Loki up
            line = result_line(i, name=f"pack_ir_q{i % 4}")
            assert logger.call({"string": line, "category": "event"}).code == 0
            sent.append(line)
            i += 1
            time.sleep(0.005)
        receiver.down()
        outage_ends = time.monotonic() + 60
        while time.monotonic() < outage_ends:  # 60 s without Loki
            line = result_line(i, name=f"pack_ir_q{i % 4}")
            assert logger.call({"string": line, "category": "event"}).code == 0
            sent.append(line)
            i += 1
            time.sleep(0.005)
        backlog = logger.metrics.value("osqsdk_loki_spool_entries")
        assert backlog > 0
        receiver.up()
        for _ in range(200):  # and more while it catches up
            line = result_line(i, name=f"pack_ir_q{i % 4}")
            assert logger.call({"string": line, "category": "event"}).code == 0
            sent.append(line)
            i += 1
        assert logger.client.flush(60)
        stored = receiver.lines()
        assert len(stored) == len(sent)
        assert sorted(stored) == sorted(sent)
        value = logger.metrics.value
        assert value("osqsdk_loki_sent_entries_total") == len(sent)
        assert value("osqsdk_loki_received_entries_total") == len(sent)
        assert sum(value("osqsdk_loki_dropped_entries_total", reason=r.value)
                   for r in DropReason) == 0
        assert value("osqsdk_loki_batch_retries_total") > 10
        assert value("osqsdk_loki_spool_entries") == 0
        assert receiver.discarded == {}
    finally:
        logger.close()
        receiver.down()


_MEMORY_CHILD = r"""
import json, os, sys, time
from osqsdk.loki import LokiConfig, LokiClient
url, spool, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
line = json.dumps({"name": "pack_ir_last", "hostIdentifier": "web-1", "unixTime": int(time.time()),
                   "columns": {"x": "y" * 300}, "action": "added"})
client = LokiClient(LokiConfig(url=url, spool_dir=spool, timeout=1.0, min_backoff=0.05,
                               max_backoff=0.2))
marks = {}
for i in range(total):
    client.push({"job": "osquery", "name": f"q{i % 8}"}, line)
    if i + 1 in (total // 4, total):
        marks[i + 1] = rss_mb()
print(json.dumps({"marks": marks, "spool_entries": client.spool.entries}))
client.abort()
"""


def test_a_slow_receiver_keeps_memory_bounded(tmp_path):
    """200,000 lines against a receiver that takes 2 s per answer (past the client's 1 s
    timeout): the backlog waits on disk and the process's memory stops growing."""
    with LokiReceiver() as receiver:
        receiver.slow(2.0)
        total = 200_000
        result = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, receiver.url,
                                 str(tmp_path / "spool"), str(total)],
                                capture_output=True, text=True, timeout=300)
        receiver.slow(0)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    marks = {int(k): v for k, v in report["marks"].items()}
    quarter, full = marks[total // 4], marks[total]
    assert report["spool_entries"] > total // 2  # most of it is waiting on disk
    # 150,000 more lines (about 60 MB of lines) add at most the bounded caches
    assert full - quarter < 25, f"RSS grew from {quarter:.1f} MB to {full:.1f} MB"


def test_a_first_runs_rows_are_counted_but_not_as_new(receiver, make_config):
    # counter 0 is a query's first run since osqueryd started: every login already in wtmp
    logger = LokiLogger(make_config(receiver.url))
    name = "pack_incident-response_ssh_logins"
    try:
        for i in (0, 0):  # two rows of the first run
            assert logger.call({"string": result_line(i, name=name), "category": "event"}
                               ).code == 0
        sample = logger.metrics.registry.get_sample_value
        labels = {"name": name, "action": "added"}
        assert sample("osquery_results_total", labels) == 2
        # the series exists from the first line on, at 0: a later login is an increase
        assert sample("osquery_new_results_total", labels) == 0
        assert sample("osquery_new_results_total", {"name": name, "action": "removed"}) == 0
        assert logger.call({"string": result_line(1, name=name), "category": "event"}).code == 0
        assert sample("osquery_new_results_total", labels) == 1
        assert sample("osquery_results_total", labels) == 3
        # a batch-format line of a later run counts too, in and out
        batch = json.dumps({"name": name, "hostIdentifier": "web-1", "calendarTime": "x",
                            "unixTime": int(time.time()), "epoch": 0, "counter": 2,
                            "numerics": False, "diffResults": {"added": [{"u": "a"}],
                                                               "removed": [{"u": "b"}]}})
        assert logger.call({"string": batch, "category": "event"}).code == 0
        assert sample("osquery_new_results_total", labels) == 2
        assert sample("osquery_new_results_total", {"name": name, "action": "removed"}) == 1
    finally:
        logger.close(5)
