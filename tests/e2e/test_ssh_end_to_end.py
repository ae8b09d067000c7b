"""Detect SSH logins with osquery, Loki and Prometheus, end to end, without osqueryd.

The local runner schedules the incident-response pack over fixture ticks in which alice logs
in over SSH at tick 3; its differential result lines go, over the Thrift socket, to the Loki
logger extension running as its own process (launched as osqueryd launches extensions);
the extension spools and pushes them to the Loki receiver double. The test checks the exact
streams, labels and lines Loki stored, and that the counter the alert rule reads rose by one.
"""

import json
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from osqsdk.runner._scheduler import Scheduler, load_config
from tests.conftest import wait_until
from tests.e2e.conftest import HOST, PACKS, SSH


def scrape(port: int) -> dict[tuple[str, str], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "osquery_results_total":
                found[(sample.labels["name"], sample.labels["action"])] = sample.value
    return found


def test_ssh_login_end_to_end(pipeline):
    engine, receiver, metrics_port = pipeline
    config, packs = load_config(PACKS / "osquery.conf")
    packs = {"incident-response": packs["incident-response"]}
    now = int(time.time())
    start = now - now % 86400  # today, 00:00 UTC: recent enough for Loki to accept
    scheduler = Scheduler(engine, config, packs, loggers=[engine.logger("loki")],
                          host_identifier=HOST, start_time=start)

    baseline = scheduler.run(2)  # ticks 1-2: what was already there
    assert wait_until(lambda: receiver.stats()["entries"] == len(baseline), timeout=20)
    assert wait_until(lambda: scrape(metrics_port).get((SSH, "added")) == 1.0, timeout=10)

    tick3 = scheduler.step()  # alice logs in from 203.0.113.7
    assert [json.loads(l.line)["name"] for l in tick3] == [SSH]
    assert wait_until(lambda: receiver.stats()["entries"] == len(baseline) + 1, timeout=20)

    # The counter the alert rule reads rose by exactly one.
    assert wait_until(lambda: scrape(metrics_port).get((SSH, "added")) == 2.0, timeout=10)

    # Exactly the streams and lines osqueryd's logger would have shipped.
    streams = receiver.streams()
    # Loki's service name discovery copies the first of service, app, application, name,
    # ..., job into service_name: here the query name.
    ssh_stream = (f'{{action="added", host="{HOST}", job="osquery", log_type="result", '
                  f'name="{SSH}", service_name="{SSH}"}}')
    assert ssh_stream in streams, sorted(streams)
    ssh_entries = streams[ssh_stream]
    login = json.loads(ssh_entries[-1][1])
    assert login["columns"] == {"host": "203.0.113.7", "pid": "4242", "time": "1699920100",
                                "tty": "pts/1", "username": "alice"}
    assert login["decorations"] == {"host_uuid": HOST, "hostname": "web-1",
                                    "primary_ip": "10.0.0.5"}
    assert login["counter"] == 1 and login["action"] == "added"
    assert [line for _, line, _ in ssh_entries] == [
        l.line for l in scheduler.lines if l.name == SSH]
    assert ssh_entries[-1][0] // 10**9 == start + 120  # Loki time = the line's unixTime
    every_line = sorted(l.line for l in scheduler.lines)
    assert sorted(receiver.lines()) == every_line
    expected_streams = {(json.loads(l.line)["name"], json.loads(l.line)["action"])
                        for l in scheduler.lines}
    assert {(dict(_labels(s))["name"], dict(_labels(s))["action"]) for s in streams} == \
        expected_streams
    assert receiver.stats()["duplicates"] == 0


def _labels(stream: str) -> list[tuple[str, str]]:
    from osqsdk.loki._receiver import parse_label_string

    return parse_label_string(stream)
