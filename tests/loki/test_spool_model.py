"""The spool's invariant, checked by a state machine (hypothesis) on a real, small tmpfs:
an entry is acknowledged only once it was delivered or counted as dropped, whatever the
order of appends, deliveries, batches held in flight, a full disk, the size cap, restarts
and crashes (kill -9: the process ends with nothing written on the way out)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from osqsdk.loki import Entry, Spool
from tests.conftest import peer_missing

LABELS = '{job="osquery"}'


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory):
    mount = tmp_path_factory.mktemp("spoolfs")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        peer_missing(f"cannot mount a tmpfs for the spool model: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_the_spool_never_acknowledges_an_entry_it_neither_delivered_nor_counted(tmpfs):
    class SpoolModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.dir = tmpfs / uuid.uuid4().hex
            self.dropped = 0
            self.delivered: set[int] = set()
            self.acked_entries: set[int] = set()
            self.appended = 0
            self.filler: str | None = None
            self.in_flight: list[tuple[int, Entry, int]] = []
            self.spool = self.open()

        def open(self) -> Spool:
            return Spool(str(self.dir), max_bytes=64 * 1024, segment_bytes=8 * 1024,
                         memory_bytes=4 * 1024, fsync_interval=0.05,
                         on_drop=self.count_drop)

        def count_drop(self, reason: str, entries: int, nbytes: int) -> None:
            self.dropped += entries

        @rule(count=st.integers(1, 40), size=st.sampled_from([10, 200, 1500]))
        def append(self, count: int, size: int) -> None:
            start = self.appended
            self.spool.append([Entry(LABELS, 1_700_000_000 * 10**9 + i, f"{i} " + "x" * size)
                               for i in range(start, start + count)])
            self.appended += count

        @rule(max_bytes=st.sampled_from([512, 8192, 1 << 20]))
        def deliver(self, max_bytes: int) -> None:
            if self.in_flight:
                return  # one batch at a time, as the shipper sends
            got = self.spool.read(max_bytes, 0)
            self.take(got)
            if got:
                self.spool.ack(got[-1][0])
                self.acked_entries = {number for number in self.delivered}

        @rule(max_bytes=st.sampled_from([512, 8192]))
        def read_in_flight(self, max_bytes: int) -> None:
            # the shipper reads a batch and is still sending it (Loki down, retrying)
            if not self.in_flight:
                self.in_flight = self.spool.read(max_bytes, 0)

        @rule()
        def in_flight_delivered(self) -> None:
            if self.in_flight:
                self.take(self.in_flight)
                self.spool.ack(self.in_flight[-1][0])
                self.in_flight = []

        @rule()
        def crash(self) -> None:
            # kill -9: no close(), nothing more written. Entries held only in memory while
            # the disk is full do not survive a crash (the spool's documented exception), so
            # the model crashes only when none are held (or read from memory and unacked).
            if self.spool._held or self.spool._unsaved:
                return
            spool = self.spool
            spool._stop.set()
            spool._thread.join(5)
            with spool._cond:
                spool._closed = True
                for fd in {spool._fd, spool._rfd, spool._lock_fd, *spool._to_close} - {-1}:
                    os.close(fd)
            self.in_flight = []
            self.spool = self.open()

        def take(self, got: list[tuple[int, Entry, int]]) -> None:
            # entries are told apart by their own number (sequence numbers restart with
            # the spool's files); one delivered twice would be a resend, not a loss
            for _, entry, _ in got:
                self.delivered.add(int(entry.line.split(" ", 1)[0]))

        @rule()
        def disk_full(self) -> None:
            if self.filler is None:
                self.filler = str(tmpfs / f"filler-{uuid.uuid4().hex}")
                fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    while True:
                        os.write(fd, b"\0" * 4096)
                except OSError:
                    pass
                finally:
                    os.close(fd)

        @rule()
        def disk_freed(self) -> None:
            if self.filler is not None:
                os.unlink(self.filler)
                self.filler = None

        @rule()
        def restart(self) -> None:
            self.spool.close()
            self.in_flight = []  # a stopping shipper gives its batch back to the spool
            self.spool = self.open()

        @invariant()
        def nothing_is_lost_uncounted(self) -> None:
            # what the spool still holds, plus what was delivered or counted as dropped,
            # covers every entry appended
            assert self.spool.entries + len(self.delivered) + self.dropped >= self.appended, (
                self.spool.entries, len(self.delivered), self.dropped, self.appended)

        def teardown(self) -> None:
            try:
                self.disk_freed()
                self.in_flight_delivered()
                while True:  # deliver what is left
                    got = self.spool.read(1 << 20, 0)
                    if not got:
                        break
                    self.take(got)
                    self.spool.ack(got[-1][0])
                # every entry appended was delivered or counted as dropped
                assert len(self.delivered) + self.dropped >= self.appended, (
                    len(self.delivered), self.dropped, self.appended)
            finally:
                self.spool.close()
                subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(SpoolModel, settings=settings(
        max_examples=60, stateful_step_count=30, deadline=None,
        suppress_health_check=list(HealthCheck)))
