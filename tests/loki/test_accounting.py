"""The Loki logger's entry counts add up at every scrape, under every fault:
received = sent + dropped (all reasons) + in the spool.

Each case pushes lines through a LokiClient while a thread scrapes /metrics' text (the
exposition Prometheus reads) as fast as it can; every scrape must satisfy the identity,
and at the end the spool is empty and what Loki stored matches ``sent``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from osqsdk.loki import LokiClient
from osqsdk.testing import LokiReceiver
from tests.conftest import wait_until

NS = 1_000_000_000
LABELS = {"job": "osquery", "name": "pack_ir_last", "host": "web-1"}


def scrape(client: LokiClient) -> dict[str, float]:
    text = generate_latest(client.metrics.registry).decode()
    values = {"dropped": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "osqsdk_loki_received_entries_total":
                values["received"] = sample.value
            elif sample.name == "osqsdk_loki_sent_entries_total":
                values["sent"] = sample.value
            elif sample.name == "osqsdk_loki_dropped_entries_total":
                values["dropped"] += sample.value
            elif sample.name == "osqsdk_loki_spool_entries":
                values["spool"] = sample.value
    return values


class Scraper(threading.Thread):
    def __init__(self, client: LokiClient) -> None:
        super().__init__(daemon=True)
        self.client, self.stop, self.scrapes, self.broken = client, threading.Event(), 0, []
        self._scraped = threading.Condition()

    def run(self) -> None:
        while not self.stop.is_set():
            v = scrape(self.client)
            with self._scraped:
                self.scrapes += 1
                self._scraped.notify_all()
            if v["received"] != v["sent"] + v["dropped"] + v["spool"]:
                self.broken.append(v)

    def next_scrape(self) -> None:
        """Wait until a scrape has started and ended after this call, however busy the host."""
        with self._scraped:
            target = self.scrapes + 2
            assert self._scraped.wait_for(lambda: self.scrapes >= target, timeout=30)


def now_lines(count: int, start: int = 0) -> list[tuple[str, int]]:
    base = time.time_ns()
    return [(f"line {i}", base + i) for i in range(start, start + count)]


def fault_none(rx: LokiReceiver, client: LokiClient, push: Callable) -> None:
    push(now_lines(300))


def fault_500s(rx, client, push):
    rx.fail(500, 6)
    push(now_lines(300))


def fault_429s(rx, client, push):
    rx.fail(429, 6, retry_after="0")
    push(now_lines(300))


def fault_resets(rx, client, push):
    rx.reset(6)
    push(now_lines(300))


def fault_outage(rx, client, push):
    rx.down()
    push(now_lines(300))
    time.sleep(0.5)
    rx.up()


def fault_401_then_fixed(rx, client, push):
    rx.fail(401, 4)
    push(now_lines(300))


def fault_partial_400(rx, client, push):
    lines = now_lines(300)
    now = time.time_ns()
    for i in range(0, 300, 37):  # Loki refuses these: older than 7 days, or an hour ahead
        lines[i] = (lines[i][0], now - 8 * 86400 * NS if i % 2 else now + 3600 * NS)
    push(lines)


def fault_413(rx, client, push):
    push(now_lines(300))


def fault_too_old_here(rx, client, push):
    lines = now_lines(300)
    for i in range(0, 300, 10):
        lines[i] = (lines[i][0], time.time_ns() - 2 * 86400 * NS)
    push(lines)


def fault_line_too_long(rx, client, push):
    lines = now_lines(300)
    for i in range(0, 300, 25):
        lines[i] = ("x" * 5000, lines[i][1])
    push(lines)


def fault_retries_used_up(rx, client, push):
    rx.fail(500, 10_000)
    push(now_lines(100))
    time.sleep(0.5)
    rx._faults.clear()


def fault_spool_full_while_down(rx, client, push):
    rx.down()
    push(now_lines(3000))
    rx.up()


CASES = {
    "none": (fault_none, {}),
    "500s": (fault_500s, {}),
    "429s": (fault_429s, {}),
    "resets": (fault_resets, {}),
    "outage": (fault_outage, {}),
    "401-then-fixed": (fault_401_then_fixed, {}),
    "partial-400": (fault_partial_400, {"max_age": 0, "max_future": 0}),
    "413-splits": (fault_413, {}),
    "too-old-before-sending": (fault_too_old_here, {"max_age": 86400}),
    "line-too-long-dropped": (fault_line_too_long, {"max_line_bytes": 1000,
                                                    "line_too_long": "drop"}),
    "retries-used-up": (fault_retries_used_up, {"max_retries": 2}),
    "spool-full-while-down": (fault_spool_full_while_down, {"spool_max_bytes": 64 << 10,
                                                             "segment_bytes": 8 << 10}),
}


@pytest.mark.parametrize("case", CASES)
def test_received_is_sent_plus_dropped_plus_spooled_at_every_scrape(case, make_config):
    fault, settings = CASES[case]
    receiver_settings = {"max_recv_msg_size": 2000} if case == "413-splits" else {}
    with LokiReceiver(**receiver_settings) as rx:
        config = make_config(rx.url, batch_bytes=4096, **settings)
        client = LokiClient(config)
        scraper = Scraper(client)
        scraper.start()
        try:
            def push(lines: list[tuple[str, int]]) -> None:
                for i, (line, ts) in enumerate(lines):
                    client.push(LABELS, line, ts)
                    if i % 100 == 0:  # scrapes while the fault is on, not only after it
                        scraper.next_scrape()

            fault(rx, client, push)
            assert wait_until(lambda: scrape(client)["spool"] == 0, timeout=60)
        finally:
            scraper.stop.set()
            scraper.join(10)
            final = scrape(client)
            client.close(5)
        assert scraper.scrapes >= 2  # push() waited for scrapes during the fault
        assert not scraper.broken, scraper.broken[:3]
        assert final["received"] == final["sent"] + final["dropped"]
        # sent is what Loki stored (a 400's valid part is stored at once and again, once,
        # by the split; Loki keeps one copy)
        assert len(set(rx.lines())) == final["sent"], (len(set(rx.lines())), final)
