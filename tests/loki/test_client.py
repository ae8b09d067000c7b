"""LokiClient against the receiver double: batching, every retry path and every drop path."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import time

import pytest

from osqsdk.loki import DropReason, LokiClient, LokiConfig, LokiConfigError, format_labels
from osqsdk.testing import LokiReceiver
from tests.conftest import wait_until

NS = 1_000_000_000
LABELS = {"job": "osquery", "name": "pack_ir_last", "host": "web-1"}


def dropped(client: LokiClient, reason: DropReason) -> float:
    return client.metrics.value("osqsdk_loki_dropped_entries_total", reason=reason.value)


def push_lines(client: LokiClient, count: int, labels=LABELS, start: int = 0) -> list[str]:
    base = time.time_ns()
    lines = [f"line {i}" for i in range(start, start + count)]
    for i, line in enumerate(lines):
        client.push(labels, line, base + i)
    return lines


def test_batches_group_by_stream_and_sort_each_stream_by_time(receiver, make_config):
    with LokiClient(make_config(receiver.url, batch_wait=5)) as client:
        base = time.time_ns()
        for i in (3, 1, 2, 0):
            client.push({"job": "a"}, f"a{i}", base + i)
            client.push({"job": "b"}, f"b{i}", base + i)
        assert client.flush(10)
    assert receiver.stats()["requests"] == 1
    streams = receiver.streams()
    assert [line for _, line, _ in streams['{job="a", service_name="a"}']] == ["a0", "a1", "a2", "a3"]
    assert [line for _, line, _ in streams['{job="b", service_name="b"}']] == ["b0", "b1", "b2", "b3"]


def test_a_batch_is_sent_when_full(receiver, make_config):
    with LokiClient(make_config(receiver.url, batch_bytes=1000, batch_wait=30)) as client:
        lines = push_lines(client, 200)
        sizes = [len(line) for line in lines]
        fits = max(n for n in range(len(sizes) + 1) if sum(sizes[:n]) <= 1000)
        assert wait_until(lambda: receiver.entry_count >= fits, timeout=10)
        assert receiver.requests[0]["entries"] == fits
        assert client.flush(10)
    assert receiver.entry_count == 200


def test_a_batch_is_sent_when_old_enough(receiver, make_config):
    with LokiClient(make_config(receiver.url, batch_wait=0.2)) as client:
        push_lines(client, 3)
        assert wait_until(lambda: receiver.entry_count == 3, timeout=10)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_until_accepted(receiver, make_config, status, caplog):
    receiver.fail(status, times=3)
    # batch_wait: the five lines are one batch (sent by flush), however slow the pushes
    with LokiClient(make_config(receiver.url, batch_wait=5)) as client:
        lines = push_lines(client, 5)
        assert client.flush(10)
        assert client.metrics.value("osqsdk_loki_batch_retries_total") == 3
        assert client.metrics.value("osqsdk_loki_retried_entries_total") == 15
        assert client.metrics.value("osqsdk_loki_sent_entries_total") == 5
        assert client.metrics.value("osqsdk_loki_request_duration_seconds_count",
                                    status_code=str(status)) == 3
    assert receiver.lines() == lines
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and all(r.levelno == logging.WARNING for r in retries)


def test_retry_after_is_honoured(receiver, make_config):
    receiver.fail(429, retry_after=1)
    with LokiClient(make_config(receiver.url, batch_wait=5)) as client:
        started = time.monotonic()
        push_lines(client, 1)
        assert client.flush(10)
        assert time.monotonic() - started >= 1.0  # max_backoff is 0.05 s: the header won




def test_a_malformed_retry_after_is_ignored(receiver, make_config):
    receiver.fail(429, retry_after="\u00b2")  # a digit to str.isdigit(), not to float()
    receiver.fail(503, retry_after="soon")
    with LokiClient(make_config(receiver.url)) as client:
        lines = push_lines(client, 1)
        assert client.flush(10)
        assert client.metrics.value("osqsdk_loki_batch_retries_total") == 2
    assert receiver.lines() == lines

def test_backoff_doubles_up_to_max_backoff_and_stays_there(receiver, make_config):
    with LokiClient(make_config(receiver.url, min_backoff=0.01, max_backoff=0.05)) as client:
        assert 0.01 <= client._backoff(1, None) <= 0.02
        for attempt in (4, 100, 5000):  # a long outage with retries forever
            assert client._backoff(attempt, None) == 0.05
        assert client._backoff(5000, 2.0) == 2.0

def test_connection_resets_and_an_outage_are_retried(receiver, make_config):
    receiver.reset(times=2)
    with LokiClient(make_config(receiver.url)) as client:
        first = push_lines(client, 3)
        assert client.flush(10)
        with receiver.outage():
            second = push_lines(client, 3, start=3)
            assert not client.flush(0.5)
            assert client.metrics.value("osqsdk_loki_request_duration_seconds_count",
                                        status_code="-1") >= 3
        assert client.flush(10)
    assert receiver.lines() == first + second
    assert dropped(client, DropReason.NETWORK_ERROR) == 0


def test_slow_answers_past_the_timeout_are_resent_and_stored_once(receiver, make_config):
    receiver.slow(1.0)
    with LokiClient(make_config(receiver.url, timeout=0.3)) as client:
        lines = push_lines(client, 4)
        time.sleep(1.5)
        receiver.slow(0)
        assert client.flush(10)
        assert client.metrics.value("osqsdk_loki_batch_retries_total") >= 1
    assert receiver.lines() == lines  # resends were exact duplicates
    assert receiver.duplicates >= 4


def test_partial_400_drops_exactly_the_refused_entries(receiver, make_config, caplog):
    config = make_config(receiver.url, max_age=0, max_future=0, batch_wait=5)
    with LokiClient(config) as client:
        now = time.time_ns()
        good = [f"good {i}" for i in range(10)]
        for i, line in enumerate(good[:5]):
            client.push(LABELS, line, now + i)
        client.push(LABELS, "ancient", now - 8 * 86400 * NS)   # Loki: too old
        client.push(LABELS, "future", now + 3600 * NS)         # Loki: too new
        for i, line in enumerate(good[5:]):
            client.push(LABELS, line, now + 10 + i)
        assert client.flush(10)
        assert dropped(client, DropReason.REJECTED) == 2
        assert client.metrics.value("osqsdk_loki_sent_entries_total") >= 10
    assert sorted(receiver.lines()) == sorted(good)
    assert receiver.discarded["greater_than_max_sample_age"] >= 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and all("dropped 1 entries (rejected)" in r.getMessage() for r in errors)


def test_too_old_and_too_new_are_dropped_before_sending(receiver, make_config):
    with LokiClient(make_config(receiver.url, max_age=3600, max_future=60)) as client:
        now = time.time_ns()
        client.push(LABELS, "old", now - 7200 * NS)
        client.push(LABELS, "new", now + 120 * NS)
        client.push(LABELS, "ok", now)
        assert client.flush(10)
        assert dropped(client, DropReason.TOO_OLD) == 1
        assert dropped(client, DropReason.TOO_NEW) == 1
    assert receiver.lines() == ["ok"]
    assert not receiver.discarded


def test_413_splits_the_request(make_config):
    with LokiReceiver(max_recv_msg_size=3000) as receiver:
        import os

        with LokiClient(make_config(receiver.url, batch_wait=5)) as client:
            base = time.time_ns()
            lines = [os.urandom(200).hex() for _ in range(20)]  # ~8 KB, incompressible
            for i, line in enumerate(lines):
                client.push(LABELS, line, base + i)
            assert client.flush(10)
            assert dropped(client, DropReason.TOO_LARGE) == 0
        assert sorted(receiver.lines()) == sorted(lines)
        assert 413 in receiver.statuses


def test_a_single_entry_413_is_dropped(make_config):
    import os

    with LokiReceiver(max_recv_msg_size=100) as receiver:
        with LokiClient(make_config(receiver.url)) as client:
            client.push(LABELS, os.urandom(200).hex())
            assert client.flush(10)
            assert dropped(client, DropReason.TOO_LARGE) == 1


@pytest.mark.parametrize("status, fix", [(401, "check username/password_file"),
                                         (403, "check the tenant"),
                                         (404, "no push endpoint at this URL"),
                                         (405, "does not take POST"),
                                         (422, "")])
def test_endpoint_and_credential_errors_keep_the_entries_and_retry(receiver, make_config,
                                                                   status, fix, caplog):
    # a credential rotation or an ingress mistake is fixed on the server: nothing is lost
    receiver.fail(status, times=4)
    with LokiClient(make_config(receiver.url)) as client:
        push_lines(client, 3)
        assert client.flush(20)
        assert sum(dropped(client, reason) for reason in DropReason) == 0
        assert client.metrics.value("osqsdk_loki_batch_retries_total") >= 4
    assert receiver.lines() == ["line 0", "line 1", "line 2"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{status}:" in m and fix in m for m in warnings), warnings


@pytest.mark.parametrize("status, reason", [(401, DropReason.UNAUTHORIZED),
                                            (404, DropReason.CLIENT_ERROR)])
def test_with_max_retries_an_endpoint_error_drops_counted(receiver, make_config, status,
                                                          reason):
    receiver.fail(status, times=5)
    with LokiClient(make_config(receiver.url, max_retries=2, batch_wait=5)) as client:
        push_lines(client, 3)
        assert client.flush(10)
        assert dropped(client, reason) == 3


def test_drop_rate_limited(receiver, make_config):
    receiver.fail(429)
    with LokiClient(make_config(receiver.url, drop_rate_limited=True, batch_wait=5)) as client:
        push_lines(client, 2)
        assert client.flush(10)
        assert dropped(client, DropReason.RATE_LIMITED) == 2
    assert receiver.entry_count == 0


@pytest.mark.parametrize("fault, reason", [("500", DropReason.SERVER_ERROR),
                                           ("429", DropReason.RATE_LIMITED),
                                           ("reset", DropReason.NETWORK_ERROR)])
def test_max_retries_used_up_drops_with_the_last_reason(receiver, make_config, fault, reason):
    if fault == "reset":
        receiver.reset(times=3)
    else:
        receiver.fail(int(fault), times=3)
    with LokiClient(make_config(receiver.url, max_retries=3, batch_wait=5)) as client:
        push_lines(client, 2)
        assert client.flush(10)
        assert dropped(client, reason) == 2
    assert receiver.entry_count == 0


def test_every_drop_reason_is_exported_from_the_start(make_config, receiver):
    with LokiClient(make_config(receiver.url)) as client:
        for reason in DropReason:
            assert client.metrics.registry.get_sample_value(
                "osqsdk_loki_dropped_entries_total", {"reason": reason.value}) == 0


def test_long_lines_are_truncated_or_dropped_and_counted(receiver, make_config):
    with LokiClient(make_config(receiver.url, max_line_bytes=100)) as client:
        client.push(LABELS, "é" * 80)  # 160 bytes
        assert client.flush(10)
        assert client.metrics.value("osqsdk_loki_mutated_entries_total",
                                    reason="line_too_long") == 1
    (line,) = receiver.lines()
    assert len(line.encode()) <= 100 and line.endswith("[truncated by osqsdk]")
    with LokiClient(make_config(receiver.url, max_line_bytes=100,
                                line_too_long="drop")) as client:
        client.push(LABELS, "x" * 101)
        assert client.flush(10)
        assert dropped(client, DropReason.LINE_TOO_LONG) == 1
    assert len(receiver.lines()) == 1


def test_json_encoding(receiver, make_config):
    for compression in ("gzip", "none"):
        with LokiClient(make_config(receiver.url, encoding="json",
                                    compression=compression)) as client:
            client.push({"job": "j", "q": 'a"b\\c\nd'}, f"json {compression}",
                        metadata=[("trace", "t1")])
            assert client.flush(10)
    assert receiver.requests[0]["content_type"] == "application/json"
    assert receiver.requests[0]["content_encoding"] == "gzip"
    stream = receiver.streams()['{job="j", q="a\\"b\\\\c\\nd", service_name="j"}']
    assert [(line, sm) for _, line, sm in stream] == [("json gzip", (("trace", "t1"),)),
                                                      ("json none", (("trace", "t1"),))]


def test_protobuf_request_headers(receiver, make_config):
    with LokiClient(make_config(receiver.url, tenant="team-a")) as client:
        client.push(LABELS, "x")
        assert client.flush(10)
    request = receiver.requests[0]
    assert request["content_type"] == "application/x-protobuf"
    assert request["content_encoding"] == "snappy"
    assert request["tenant_header"] == "team-a"
    assert request["user_agent"].startswith("osqsdk-loki/")


def test_basic_auth_and_bearer_token(make_config, tmp_path):
    import base64

    expected = "Basic " + base64.b64encode(b"alice:p@ss w0rd").decode()
    with LokiReceiver(required_authorization=expected) as receiver:
        url = receiver.url.replace("http://", "http://alice:p%40ss%20w0rd@")
        with LokiClient(make_config(url)) as client:
            client.push(LABELS, "basic")
            assert client.flush(10)
        assert receiver.lines() == ["basic"]
    with LokiReceiver(required_authorization="Bearer tok-123") as receiver:
        with LokiClient(make_config(receiver.url, bearer_token="tok-123")) as client:
            client.push(LABELS, "bearer")
            assert client.flush(10)
        assert receiver.lines() == ["bearer"]


def test_credentials_never_reach_logs_metrics_or_reprs(make_config, caplog):
    secret, token = "hunter2-secret", "tok-very-secret"
    caplog.set_level(logging.DEBUG)
    with LokiReceiver(required_authorization="nothing matches") as receiver:
        url = receiver.url.replace("http://", f"http://bob:{secret}@")
        config = make_config(url, max_retries=2)
        receiver.fail(500)
        with LokiClient(config) as client:
            client.push(LABELS, "x")
            assert client.flush(10)  # 500, then 401: dropped
            exposition = client.metrics.registry
            from prometheus_client import generate_latest

            text = generate_latest(exposition).decode()
        token_config = make_config(receiver.url, bearer_token=token, max_retries=2)
        with LokiClient(token_config) as client:
            client.push(LABELS, "y")
            assert client.flush(10)
    with receiver.outage():
        with LokiClient(make_config(url, max_retries=2)) as client:
            client.push(LABELS, "z")
            assert client.flush(10)
    everything = "\n".join(r.getMessage() for r in caplog.records) + text + repr(config) \
        + str(config) + repr(token_config) + config.url
    assert secret not in everything and token not in everything
    assert "bob" not in config.url and config.username == "bob"
    assert config.password.reveal() == secret


def test_resume_after_close_sends_exactly_what_was_not_acknowledged(receiver, make_config):
    config = make_config(receiver.url)
    with receiver.outage():
        client = LokiClient(config)
        lines = push_lines(client, 50)
        assert not client.close(timeout=0.2)
        assert client.spool.entries == 50
    with LokiClient(config) as client:
        assert client.flush(10)
        assert client.metrics.value("osqsdk_loki_sent_entries_total") == 50
    assert receiver.lines() == lines
    assert receiver.duplicates == 0


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    import shutil

    if shutil.which("openssl") is None:
        from tests.conftest import peer_missing

        peer_missing("openssl is not installed")
    d = tmp_path
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))
    return d


def test_tls_with_a_custom_ca_and_a_client_certificate(pki, make_config):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    with LokiReceiver(ssl_context=context) as receiver:
        config = make_config(receiver.url, ca_file=str(pki / "ca.pem"),
                             cert_file=str(pki / "client.pem"), key_file=str(pki / "client.key"))
        with LokiClient(config) as client:
            client.push(LABELS, "over tls")
            assert client.flush(10)
        assert receiver.lines() == ["over tls"]


def test_tls_is_verified_by_default(pki, make_config, caplog):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    with LokiReceiver(ssl_context=context) as receiver:
        with LokiClient(make_config(receiver.url, max_retries=2)) as client:  # no ca_file
            client.push(LABELS, "never sent")
            assert client.flush(10)
            assert dropped(client, DropReason.NETWORK_ERROR) == 1
        assert receiver.entry_count == 0
    assert any("CERTIFICATE_VERIFY_FAILED" in r.getMessage() or "certificate verify failed"
               in r.getMessage() for r in caplog.records)


def test_label_values_are_escaped_so_loki_parses_them(receiver, make_config):
    nasty = {"job": "osquery", "path": 'C:\\Windows\\"x"\n', "name": "caf\udce9"}
    with LokiClient(make_config(receiver.url)) as client:
        client.push(nasty, "line")
        assert client.flush(10)
    (labels,) = receiver.streams()
    assert 'path="C:\\\\Windows\\\\\\"x\\"\\n"' in labels
    assert 'name="caf\ufffd"' in labels


def test_format_labels_is_sorted_and_drops_empty_values():
    assert format_labels({"b": "2", "a": "1", "e": ""}) == '{a="1", b="2"}'


def test_a_busy_metrics_port_is_a_configuration_error_and_frees_the_spool(receiver, make_config,
                                                                         busy_port):
    config = make_config(receiver.url, metrics_port=busy_port)
    with pytest.raises(LokiConfigError, match=r"metrics_port: cannot serve metrics on "
                                              r"127.0.0.1:"):
        LokiClient(config)
    LokiClient(dataclasses.replace(config, metrics_port=None)).close()  # not locked


def test_config_from_the_client_is_required():
    with pytest.raises(Exception, match="spool_dir"):
        LokiClient(LokiConfig(url="http://127.0.0.1:1"))
