"""The encoder process: the same request bodies as encoding in process, and no loss when
it fails."""

from __future__ import annotations

import gzip
import logging
import os
import signal
import time

import pytest

from osqsdk.loki import DropReason, LokiClient, LokiConfig, LokiLogger, format_labels
from osqsdk.loki._batch import RAW, prepare_batch
from osqsdk.loki._encode import encode
from osqsdk.loki._encoder import EncoderBatchError, EncoderError, EncoderProcess, _read_frame
from osqsdk.loki._labels import Entry, Mapper
from tests.loki.conftest import result_line, stamped_now
from tests.sdk.test_logger import BATCH, SNAPSHOT

NS = 1_000_000_000


def a_batch(now_ns: int) -> list[tuple[int, Entry, int]]:
    labels = format_labels({"job": "osquery", "log_type": "status"})
    entries = [Entry(RAW, now_ns, result_line(i, dc="eu")) for i in range(50)]
    entries += [Entry(RAW, now_ns, stamped_now(BATCH)), Entry(RAW, now_ns, stamped_now(SNAPSHOT)),
                Entry(RAW, now_ns, "not osquery's"), Entry(RAW, now_ns, "[1, 2]"),
                Entry(RAW, now_ns, result_line(7, unix_time=0)),          # time: accepted
                Entry(RAW, now_ns, result_line(8, unix_time=1)),          # too old
                Entry(labels, now_ns + 3600 * NS, "from the future"),     # too new
                Entry(labels, now_ns - 5, "status ü", (("severity", "info"),))]
    return [(seq, entry, len(entry.line)) for seq, entry in enumerate(entries, start=1000)]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_the_encoder_process_gives_the_body_encoded_here(encoding):
    config = LokiConfig(url="http://l:1", encoding=encoding, max_age=30 * 86400,
                        structured_metadata={"dc": "decoration:dc", "counter": "counter"},
                        labels={"name": "name", "action": "action", "log_type": "log_type"})
    now_ns = time.time_ns()
    batch = a_batch(now_ns)
    here = prepare_batch(Mapper(config), config, batch, now_ns)
    body = encode(here.items, config.encoding, config.compression)
    encoder = EncoderProcess(config)
    try:
        there = encoder.encode(batch, now_ns)
        again = encoder.encode(batch[:3], now_ns)  # the process serves batch after batch
    finally:
        encoder.close()
    if encoding == "json":  # gzip stamps the time of compression; compare what is inside
        assert gzip.decompress(there.body) == gzip.decompress(body.data)
    else:
        assert there.body == body.data
    assert there.headers == dict(body.headers)
    assert (there.entries, there.nbytes) == (body.entries, here.nbytes) == (len(batch) - 2,
                                                                            here.nbytes)
    assert there.dropped == here.dropped
    assert [d.reason for d in there.dropped] == [DropReason.TOO_OLD, DropReason.TOO_NEW]
    assert there.unreadable == here.unreadable and len(there.unreadable) == 2
    assert again.entries == 3


def test_the_encoder_process_gets_no_credentials(monkeypatch):
    monkeypatch.setenv("OSQSDK_LOKI_PASSWORD", "hunter2")
    monkeypatch.setenv("OSQSDK_LOKI_BEARER_TOKEN", "t0ken")
    encoder = EncoderProcess(LokiConfig(url="http://u:hunter2@l:1"))
    try:
        with open(f"/proc/{encoder.pid}/environ", "rb") as f:
            environ = f.read()
        with open(f"/proc/{encoder.pid}/cmdline", "rb") as f:
            cmdline = f.read()
    finally:
        encoder.close()
    for secret in (b"hunter2", b"t0ken"):
        assert secret not in environ and secret not in cmdline


def test_a_dead_encoder_process_is_an_error_not_a_hang():
    encoder = EncoderProcess(LokiConfig(url="http://l:1"))
    os.kill(encoder.pid, signal.SIGKILL)
    with pytest.raises(EncoderError):
        encoder.encode(a_batch(time.time_ns()), time.time_ns())
    encoder.close()


def test_a_stopped_encoder_process_is_an_error_within_its_timeout():
    encoder = EncoderProcess(LokiConfig(url="http://l:1"), timeout=1.0)
    os.kill(encoder.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        big = [(i, Entry(RAW, 0, "x" * 1000), 1000) for i in range(2000)]  # > a pipe's worth
        with pytest.raises(EncoderError, match="1s"):
            encoder.encode(big, time.time_ns())
        assert time.monotonic() - started < 10
    finally:
        os.kill(encoder.pid, signal.SIGKILL)
        encoder.close()


def test_a_killed_encoder_process_loses_nothing(receiver, make_config, caplog):
    logger = LokiLogger(make_config(receiver.url, batch_wait=0.02))
    assert logger.config.encoder_process  # on by default in the logger plugin
    lines = [result_line(i, name=f"pack_ir_q{i % 3}") for i in range(300)]
    try:
        for line in lines[:100]:
            assert logger.call({"string": line, "category": "event"}).code == 0
        assert logger.client.flush(10)
        encoder = logger.client._encoder
        assert encoder is not None
        os.kill(encoder.pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="osqsdk.loki"):
            for line in lines[100:]:
                assert logger.call({"string": line, "category": "event"}).code == 0
            assert logger.client.flush(10)
    finally:
        logger.close()
    assert sorted(receiver.lines()) == sorted(lines)  # every line, once
    assert any("encoding batches in this process from now on" in r.getMessage()
               for r in caplog.records)
    assert logger.metrics.value("osquery_results_total", name="pack_ir_q0",
                                action="added") == 100


@pytest.mark.parametrize("encoder_process", [False, True])
def test_a_refused_request_is_split_whoever_encoded_it(receiver, make_config,
                                                       encoder_process):
    # Splitting needs the entries back: from the encoder process's batch they are labelled
    # again here, to the same streams.
    config = make_config(receiver.url, max_age=0, max_future=0, batch_wait=5,
                         encoder_process=encoder_process)
    with LokiClient(config) as client:
        assert (client._encoder is not None) == encoder_process
        now = int(time.time())
        good = [result_line(i, unix_time=now) for i in range(6)]
        for line in good[:3]:
            client.push_result_line(line)
        client.push_result_line(result_line(99, unix_time=now - 8 * 86400))  # Loki: too old
        for line in good[3:]:
            client.push_result_line(line)
        assert client.flush(10)
        assert client.metrics.value("osqsdk_loki_dropped_entries_total",
                                    reason="rejected") == 1
    assert sorted(receiver.lines()) == sorted(good)


def test_a_batch_the_process_cannot_encode_is_answered_and_it_goes_on():
    encoder = EncoderProcess(LokiConfig(url="http://l:1"))
    try:
        now = time.time_ns()
        encoder._send({"now_ns": now, "batch": [[1, "", now, "line", [], "not a size"]]})
        header, body = _read_frame(encoder._reader)
        assert "TypeError" in header["error"] and body == b""
        assert encoder.encode(a_batch(now), now).entries > 0  # the same process, still there
    finally:
        encoder.close()


def test_a_batch_the_process_cannot_encode_is_encoded_here(make_config, monkeypatch):
    client = LokiClient(make_config("http://127.0.0.1:9", encoder_process=True))
    try:
        encoder = client._encoder

        def refuse(batch, now_ns):
            raise EncoderBatchError("the encoder process could not encode a batch: test")

        monkeypatch.setattr(encoder, "encode", refuse)
        now = time.time_ns()
        last_seq, streams, body, _, _ = client._prepare(a_batch(now))
        assert last_seq == a_batch(now)[-1][0] and body is not None and body.entries > 0
        assert isinstance(streams, list)  # encoded here
        assert client._encoder is encoder  # and the process stays in use
    finally:
        client.abort()


@pytest.mark.parametrize("encoder_process", [False, True])
def test_a_time_past_int64_is_dropped_not_a_crash(make_config, encoder_process):
    # a unixTime in milliseconds, with the future check off: past what Loki can store
    client = LokiClient(make_config("http://127.0.0.1:9", max_future=0,
                                    encoder_process=encoder_process))
    try:
        now = time.time_ns()
        batch = [(1, Entry(RAW, now, result_line(1, unix_time=int(time.time() * 1000))), 300),
                 (2, Entry(RAW, now, result_line(2)), 300)]
        _, _, body, _, settlement = client._prepare(batch)
        assert body.entries == 1
        # counted when the batch leaves the spool, together with its sent entries
        assert settlement.dropped == [("too_new", 1)]
        assert client.metrics.value("osqsdk_loki_dropped_entries_total", reason="too_new") == 0
        client.metrics.settle_locked(settlement)
        assert client.metrics.value("osqsdk_loki_dropped_entries_total", reason="too_new") == 1
        assert (client._encoder is not None) == encoder_process
    finally:
        client.abort()


def test_stopping_while_a_batch_is_being_encoded_ends_the_process(make_config, caplog):
    client = LokiClient(make_config("http://127.0.0.1:9", encoder_process=True,
                                    batch_wait=0.01))
    encoder = client._encoder
    os.kill(encoder.pid, signal.SIGSTOP)  # the batcher will wait for its answer
    for i in range(5):
        client.push_result_line(result_line(i))
    time.sleep(0.3)
    started = time.monotonic()
    client.abort()
    assert time.monotonic() - started < 30  # not waiting for the stopped encoder forever
    assert encoder._proc.poll() is not None  # ended and reaped
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_encoder_process_imports_nothing_from_its_surroundings(tmp_path, monkeypatch):
    # Under osqueryd the logger runs as root: a module planted in its working directory or
    # named by PYTHONPATH must not run in the child.
    marker = tmp_path / "ran"
    for name in ("orjson", "sitecustomize", "usercustomize"):  # the last two run at start
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    encoder = EncoderProcess(LokiConfig(url="http://l:1"))
    try:
        assert encoder.encode(a_batch(time.time_ns()), time.time_ns()).entries > 0
    finally:
        encoder.close()
    assert not marker.exists(), marker.read_text()
