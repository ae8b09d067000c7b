"""The spool: durability, resume, damage, size cap, disk full (a real full tmpfs)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import uuid

import pytest

from osqsdk.loki import Entry, Spool, SpoolError, _spool
from tests.conftest import peer_missing

LABELS = '{job="osquery"}'


def entries(count: int, start: int = 0, size: int = 0) -> list[Entry]:
    pad = "x" * size
    return [Entry(LABELS, 1_700_000_000 * 10**9 + i, f"line {i}{pad}") for i in
            range(start, start + count)]


def spool(path, **options) -> Spool:
    settings = dict(max_bytes=1 << 30, segment_bytes=1 << 20, fsync_interval=0.05)
    settings.update(options)
    return Spool(str(path), **settings)


def read_all(s: Spool) -> list[tuple[int, Entry]]:
    out = []
    while True:
        got = s.read(1 << 20, 0)
        if not got:
            return out
        out += [(seq, entry) for seq, entry, _ in got]


def test_entries_read_back_in_order_with_metadata(tmp_path):
    with spool(tmp_path) as s:
        data = entries(5) + [Entry(LABELS, 5, "with sm", (("k", "v"), ("n", "é")))]
        assert s.append(data) == 6
        got = read_all(s)
    assert [seq for seq, _ in got] == [1, 2, 3, 4, 5, 6]
    assert [e for _, e in got] == data


def test_resume_exactly_the_unacknowledged_entries(tmp_path):
    with spool(tmp_path, segment_bytes=4096) as s:
        for i in range(30):
            s.append(entries(10, start=10 * i))
        got = read_all(s)
        s.ack(got[123][0])
    with spool(tmp_path, segment_bytes=4096) as s:
        assert s.entries == 300 - 124
        assert [e.line for _, e in read_all(s)] == [f"line {i}" for i in range(124, 300)]
        s.append(entries(1, start=300))
        assert s.last_seq == 301


def test_acknowledged_segments_are_deleted(tmp_path):
    with spool(tmp_path, segment_bytes=4096) as s:
        for i in range(50):
            s.append(entries(10, start=10 * i))
        assert len(list(tmp_path.glob("*.seg"))) > 3
        got = read_all(s)
        s.ack(got[-1][0])
        assert len(list(tmp_path.glob("*.seg"))) == 1
        assert s.entries == 0


def test_subsecond_timestamps_are_fixed_from_the_sequence(tmp_path):
    with spool(tmp_path) as s:
        same = [Entry(LABELS, 1_700_000_000 * 10**9, "same line")] * 3
        s.append(same, subsecond=True)
        got = [e.ts_ns % 10**9 for _, e in read_all(s)]
    assert got == [1, 2, 3]


def test_meta_survives_restart_and_segment_rotation(tmp_path):
    with spool(tmp_path, segment_bytes=4096) as s:
        for i in range(100):
            s.append(entries(3, start=3 * i), meta=f"pos {i}".encode())
        s.ack(s.last_seq)
    with spool(tmp_path, segment_bytes=4096) as s:
        assert s.meta == b"pos 99"


def test_torn_tail_is_cut_off_with_a_warning(tmp_path, caplog):
    with spool(tmp_path) as s:
        s.append(entries(10))
    (segment,) = tmp_path.glob("*.seg")
    size = segment.stat().st_size
    with open(segment, "r+b") as f:  # a write cut short by a crash
        f.truncate(size - 7)
    with open(segment, "ab") as f:
        pass
    with caplog.at_level(logging.WARNING):
        with spool(tmp_path) as s:
            assert [e.line for _, e in read_all(s)] == [f"line {i}" for i in range(9)]
            s.append(entries(1, start=9))
            assert [e.line for _, e in read_all(s)] == ["line 9"]
    assert any("damaged record" in r.getMessage() and str(segment) in r.getMessage()
               for r in caplog.records)


def test_garbage_after_the_last_record_is_cut_off(tmp_path, caplog):
    with spool(tmp_path) as s:
        s.append(entries(3))
    (segment,) = tmp_path.glob("*.seg")
    with open(segment, "ab") as f:
        f.write(os.urandom(100))
    with caplog.at_level(logging.WARNING):
        with spool(tmp_path) as s:
            assert len(read_all(s)) == 3
    assert any("damaged record" in r.getMessage() for r in caplog.records)


def test_a_damaged_record_in_an_older_segment_skips_the_rest_of_it_counted(tmp_path, caplog):
    drops = []
    with spool(tmp_path, segment_bytes=4096) as s:
        for i in range(200):
            s.append(entries(1, start=i))
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[200] ^= 0xFF  # inside the 4th-or-so record
    first.write_bytes(bytes(data))
    with spool(tmp_path, segment_bytes=4096,
               on_drop=lambda reason, n, b: drops.append((reason, n))) as s:
        got = read_all(s)
    seqs = [seq for seq, _ in got]
    lost = 200 - len(seqs)
    assert lost > 0 and drops == [("corrupt", lost)]
    assert seqs == sorted(seqs) and seqs[-1] == 200
    assert any("damaged record" in r.getMessage() and "checksum" in r.getMessage()
               for r in caplog.records)


def test_size_cap_drops_the_oldest_and_counts_them(tmp_path):
    drops = []
    with spool(tmp_path, max_bytes=64 * 1024, segment_bytes=8 * 1024,
               on_drop=lambda reason, n, b: drops.append((reason, n))) as s:
        for i in range(2000):
            s.append(entries(1, start=i, size=50))
        assert s.disk_bytes <= 64 * 1024
        got = read_all(s)
    dropped = sum(n for reason, n in drops if reason == "spool_full")
    assert dropped > 0 and {r for r, _ in drops} == {"spool_full"}
    assert len(got) + dropped == 2000
    assert got[-1][1].line.startswith("line 1999")  # the newest are kept


def test_label_strings_read_back_are_cached_within_a_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(_spool, "_LABELS_CACHE_LIMIT", 10)
    data = [Entry(f'{{job="j{i}"}}', i, f"line {i}") for i in range(50)]  # 50 streams
    with spool(tmp_path) as s:
        s.append(data)
    with spool(tmp_path) as s:  # read from disk, not from what was just written
        assert [e for _, e in read_all(s)] == data
        assert 0 < len(s._labels_cache) <= 10


def test_a_spool_is_used_by_one_process_at_a_time(tmp_path):
    with spool(tmp_path):
        with pytest.raises(SpoolError, match="in use"):
            spool(tmp_path)


def test_group_commit_with_concurrent_writers(tmp_path):
    with spool(tmp_path, fsync_interval=0) as s:
        def writer(k: int) -> None:
            for i in range(50):
                s.append(entries(1, start=k * 1000 + i))

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert s._synced_seq == s.last_seq == 400
        got = read_all(s)
    assert sorted(e.line for _, e in got) == sorted(f"line {k * 1000 + i}" for k in range(8)
                                                    for i in range(50))


def test_with_fsync_interval_0_a_new_segment_is_in_a_synced_directory_before_append_returns(
        tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if threading.current_thread() is threading.main_thread():  # not the background sync
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    with spool(tmp_path, fsync_interval=0, segment_bytes=4096) as s:
        monkeypatch.setattr(os, "fsync", fsync)
        while len(list(tmp_path.glob("*.seg"))) < 2:
            s.append(entries(1, size=100))
        monkeypatch.undo()
    assert str(tmp_path) in synced


def test_entries_written_by_a_killed_process_are_there(tmp_path):
    code = (
        "import os, sys\n"
        "from osqsdk.loki import Spool, Entry\n"
        f"s = Spool({str(tmp_path)!r}, max_bytes=1<<30, segment_bytes=1<<20, fsync_interval=60)\n"
        "for i in range(1000):\n"
        "    s.append([Entry('{a=\"b\"}', i, f'line {i}')])\n"
        "os.kill(os.getpid(), 9)\n")
    result = subprocess.run([os.sys.executable, "-c", code])
    assert result.returncode == -9
    with spool(tmp_path) as s:  # the lock died with the process
        assert [e.line for _, e in read_all(s)] == [f"line {i}" for i in range(1000)]


# -- disk full: a real, small tmpfs ------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        peer_missing(f"cannot mount a tmpfs for the disk-full test: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount, leave: int = 0) -> str:
    """Fill the filesystem, leaving about ``leave`` bytes; returns the filler's path."""
    path = mount / f"filler-{uuid.uuid4().hex}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    if leave:
        os.truncate(path, max(0, os.path.getsize(path) - leave))
    return str(path)


def test_disk_full_holds_entries_in_memory_then_writes_them_when_space_returns(small_fs, caplog):
    drops = []
    with spool(small_fs / "spool", fsync_interval=0.05,
               on_drop=lambda reason, n, b: drops.append((reason, n))) as s:
        s.append(entries(5))
        filler = fill(small_fs)
        with caplog.at_level(logging.ERROR):
            s.append(entries(20, start=5, size=1000))  # ENOSPC: held in memory
        assert s.held_bytes > 0
        assert any("cannot write" in r.getMessage() and "No space left" in r.getMessage()
                   for r in caplog.records)
        got = read_all(s)  # shipped from disk, then from memory
        assert [e.line[:8].rstrip("x") for _, e in got] == [f"line {i}" for i in range(25)]
        s.ack(got[-1][0])
        os.unlink(filler)
        s.append(entries(1, start=25))
        assert s.held_bytes == 0
        assert [e.line for _, e in read_all(s)] == ["line 25"]
    assert drops == []
    with spool(small_fs / "spool") as s:
        assert s.entries == 1 and s.last_seq == 26


def test_disk_full_beyond_the_memory_bound_drops_the_oldest_held(small_fs):
    drops = []
    with spool(small_fs / "spool", memory_bytes=2000,
               on_drop=lambda reason, n, b: drops.append((reason, n))) as s:
        fill(small_fs)
        for i in range(100):
            s.append(entries(1, start=i, size=100))
        got = read_all(s)
        s.ack(got[-1][0])  # delivered (read, then unacknowledged at close, they are lost)
    dropped = sum(n for _, n in drops)
    assert {r for r, _ in drops} == {"disk_full"}
    assert dropped + len(got) == 100
    assert got[-1][1].line.startswith("line 99")


def test_a_full_disk_and_memory_never_skip_entries_already_on_disk(small_fs):
    # Loki is down (nothing read or acknowledged) while the disk fills and the memory tail
    # overflows: the entries written before the disk filled must still be read, and every
    # entry is either read or counted as dropped
    drops = []
    with spool(small_fs / "spool", memory_bytes=2000,
               on_drop=lambda reason, n, b: drops.append((reason, n))) as s:
        s.append(entries(30, size=100))            # on disk
        filler = fill(small_fs)
        for i in range(30, 130):                   # held in memory; the oldest dropped
            s.append(entries(1, start=i, size=100))
        assert s.acked_seq < 30                    # nothing on disk acknowledged unsent
        got = read_all(s)
        seqs = [seq for seq, _ in got]
        assert seqs[:30] == list(range(seqs[0], seqs[0] + 30))  # the disk entries, in order
        dropped = sum(n for _, n in drops)
        assert dropped + len(got) == 130
        s.ack(got[-1][0])
        assert s.acked_seq == s.last_seq
        os.unlink(filler)


def test_drops_on_a_full_disk_are_logged_once_per_interval_with_their_count(small_fs, caplog):
    drops = []
    with caplog.at_level(logging.ERROR, logger="osqsdk.loki"):
        with spool(small_fs / "spool", memory_bytes=2000,
                   on_drop=lambda reason, n, b: drops.append(n)) as s:
            fill(small_fs)
            for i in range(300):
                s.append(entries(1, start=i, size=100))
    lines = [r.getMessage() for r in caplog.records if "entries dropped" in r.getMessage()]
    assert 1 <= len(lines) <= 3  # not one per dropped entry
    logged = sum(int(m.split(": ")[-1].split()[0]) for m in lines)
    assert logged == sum(drops) > 200  # every dropped entry counted in the log too


@pytest.mark.parametrize("damage", ["emptied", "deleted"])
def test_a_missing_middle_segment_is_counted_and_reading_goes_on(tmp_path, caplog, damage):
    with spool(tmp_path, segment_bytes=4096) as s:
        for i in range(50):
            s.append(entries(10, start=10 * i))
    segments = sorted(tmp_path.glob("*.seg"))
    assert len(segments) > 3
    victim = segments[1]
    if damage == "emptied":
        victim.write_bytes(b"")
    else:
        victim.unlink()
    drops = []
    with caplog.at_level(logging.ERROR, logger="osqsdk.loki"):
        with spool(tmp_path, segment_bytes=4096,
                   on_drop=lambda reason, n, b: drops.append((reason, n))) as s:
            got = read_all(s)
    lost = sum(n for reason, n in drops if reason == "corrupt")
    assert lost > 0 and len(got) + lost == 500  # every entry delivered or counted
    assert got[-1][1].line == "line 499"
    assert any("missing from" in r.getMessage() for r in caplog.records)


def test_files_that_are_not_segments_are_left_alone(tmp_path, caplog):
    with spool(tmp_path) as s:
        s.append(entries(3))
    (tmp_path / ("9" * 20 + ".seg")).write_bytes(b"junk")     # past what a sequence can be
    (tmp_path / "00000000000000000042.seg").mkdir()            # a directory named like one
    (tmp_path / "notes.seg").write_text("x")
    for _ in range(2):  # and again after a restart
        with caplog.at_level(logging.WARNING, logger="osqsdk.loki"):
            with spool(tmp_path) as s:
                s.append(entries(2, start=3))
                assert [e.line for _, e in read_all(s)][-2:] == ["line 3", "line 4"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "not a segment osqsdk wrote" in warned and "not a regular file" in warned
