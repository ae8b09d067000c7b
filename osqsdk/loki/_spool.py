"""The durable spool: every accepted entry is on disk before the logger answers osqueryd.

Layout of a spool directory::

    LOCK                      flock()ed by the process using the spool
    ack                       highest sequence number delivered (or given up on), the
                              ranges past it already counted as dropped, + CRC32
    00000000000000000001.seg  segments, named by the first sequence number they hold
    00000000000000004097.seg  ...

A segment is a run of records, each ``<u32 length><u64 seq><u32 crc32>`` + payload, the
CRC covering length, seq and payload. Entry records have seq >= 1, numbered without gaps;
seq 0 marks a meta record (an opaque position the writer wants back after a restart, e.g.
``osqsdk loki tail``'s read offset), written in the same write() as the entries it follows
so that the two can never disagree. A new segment starts with a copy of the latest meta.

Guarantees:

* ``append()`` returns once its records are written to the segment file (they survive
  ``kill -9``); with ``fsync_interval=0`` it also waits for an fsync covering them (group
  commit: one fsync serves every writer waiting at that moment), otherwise a background
  thread fsyncs every ``fsync_interval`` seconds (power loss loses at most that).
* After a restart reading resumes at the first entry not acknowledged. A damaged tail (a
  record cut short or failing its CRC, from a crash during a write) is cut off with a
  warning; a damaged record elsewhere skips the rest of its segment, counted as ``corrupt``.
* The spool never grows past ``max_bytes``: the oldest segment is dropped first and its
  unsent entries are counted as ``spool_full``. Its entries already read and being sent
  stay owed: they are delivered, or counted when the caller gives up on them.
* The invariant: the acknowledgement never moves past an entry that was neither delivered
  nor counted as dropped. The ack file records the acknowledged sequence number and the
  ranges after it already counted, so a restart after ``kill -9`` that finds entries gone
  from disk that were in neither (read and in flight when the size limit removed their
  segment) counts them as ``lost_in_flight``, once.
* When the disk is full (ENOSPC, EDQUOT, EFBIG, EIO), entries are held in memory (up to
  ``memory_bytes``, oldest dropped beyond that as ``disk_full``) and shipped from there;
  writing to disk resumes as soon as it succeeds again. Those held entries do not survive
  ``kill -9``; everything else does.
"""

from __future__ import annotations

import bisect
import collections
import errno
import fcntl
import logging
import os
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from osqsdk.loki._errors import SpoolError
from osqsdk.loki._labels import Entry, sanitize_text
from osqsdk.loki._ratelog import DropLog

__all__ = ["DropCallback", "Spool"]

log = logging.getLogger("osqsdk.loki.spool")

_HEADER = struct.Struct("<IQI")      # payload length, seq (0: meta), crc32
_PREFIX = struct.Struct("<IQ")       # the part of the header the CRC covers
_ENTRY = struct.Struct("<qIIH")      # ts_ns, labels bytes, line bytes, metadata pairs
_PAIR = struct.Struct("<HI")         # metadata name bytes, value bytes
_ACK = struct.Struct("<QI")          # seq, crc32 of seq (an ack file with no ranges)
_ACK_HEAD = struct.Struct("<QI")     # seq, number of counted ranges; then the ranges, crc32
_RANGE = struct.Struct("<QQ")        # first and last seq of a range counted as dropped
_CRC = struct.Struct("<I")
_MAX_RANGES = 4096                   # a bound on the ack file (older ranges merge)
HEADER_BYTES = _HEADER.size
MAX_RECORD_BYTES = 64 << 20
_READ_CHUNK = 1 << 20
_RECENT_LIMIT = 8 << 20
_LABELS_CACHE_LIMIT = 1 << 16  # label strings decoded once, as many as Mapper caches
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
_NS = 1_000_000_000

DropCallback = Callable[[str, int, int], None]  # (reason, entries, bytes)


@dataclass
class _Segment:
    first_seq: int
    path: str
    size: int  # bytes written and complete


@dataclass
class _Held:
    """Records not on disk (the disk was full): one append's worth."""

    first_seq: int
    last_seq: int
    data: bytes
    meta: bytes | None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _parse_ack(data: bytes) -> tuple[int, list[tuple[int, int]]] | None:
    """(acknowledged seq, counted ranges) of an ack file, or None when it is damaged."""
    if len(data) == _ACK.size:  # no ranges (also the format before ranges were recorded)
        seq, crc = _ACK.unpack(data)
        return (seq, []) if zlib.crc32(data[:8]) == crc else None
    if len(data) < _ACK_HEAD.size + _CRC.size:
        return None
    seq, count = _ACK_HEAD.unpack_from(data)
    end = _ACK_HEAD.size + count * _RANGE.size
    if count > _MAX_RANGES or len(data) != end + _CRC.size or \
            zlib.crc32(data[:end]) != _CRC.unpack_from(data, end)[0]:
        return None
    ranges = [_RANGE.unpack_from(data, _ACK_HEAD.size + i * _RANGE.size) for i in range(count)]
    if any(lo > hi for lo, hi in ranges):
        return None
    return seq, sorted(ranges)


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


def _at(entry: Entry, ts_ns: int) -> Entry:
    # Entry._replace(ts_ns=...) costs twice as much, on every logger call.
    return Entry(entry.labels, ts_ns, entry.line, entry.metadata)


def encode_record(seq: int, entry: Entry) -> tuple[bytes, int, Entry]:
    """The record for ``entry``, its line + metadata bytes, and the entry as it will read
    back (lines that were not valid UTF-8 get U+FFFD)."""
    labels = entry.labels.encode("utf-8")
    try:
        line = entry.line.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8 (surrogate escapes): U+FFFD
        entry = entry._replace(line=sanitize_text(entry.line))
        line = entry.line.encode("utf-8")
    nbytes = len(line)
    if entry.metadata:
        parts = [_ENTRY.pack(entry.ts_ns, len(labels), nbytes, len(entry.metadata)), labels,
                 line]
        for name, value in entry.metadata:
            n, v = name.encode("utf-8"), value.encode("utf-8")
            parts += [_PAIR.pack(len(n), len(v)), n, v]
            nbytes += len(n) + len(v)
        payload = b"".join(parts)
    else:
        payload = _ENTRY.pack(entry.ts_ns, len(labels), nbytes, 0) + labels + line
    crc = zlib.crc32(payload, zlib.crc32(_PREFIX.pack(len(payload), seq)))
    return _HEADER.pack(len(payload), seq, crc) + payload, nbytes, entry


def _meta_record(meta: bytes) -> bytes:
    prefix = _PREFIX.pack(len(meta), 0)
    return _HEADER.pack(len(meta), 0, zlib.crc32(meta, zlib.crc32(prefix))) + meta


class _Damaged(Exception):
    def __init__(self, offset: int, cause: str) -> None:
        super().__init__(cause)
        self.offset = offset
        self.cause = cause


def _parse(chunk: bytes, base: int, final: bool, min_seq: int, labels_cache: dict[bytes, str],
           out: list[tuple[int, Entry, int]] | None) -> tuple[int, int, bytes | None]:
    """Parse records from ``chunk`` (file offset ``base``); append entries with seq >=
    ``min_seq`` to ``out`` as (seq, entry, line + metadata bytes). Returns (bytes consumed,
    last seq seen, last meta seen).

    ``final``: the chunk ends where the segment's data ends, so an incomplete record is
    damage rather than "read more". Raises _Damaged at the first bad record (the records
    before it are already in ``out``; the exception carries the offset).
    """
    view = memoryview(chunk)
    pos, size = 0, len(chunk)
    last_seq, meta = 0, None
    unpack_header, unpack_entry = _HEADER.unpack_from, _ENTRY.unpack_from
    crc32 = zlib.crc32
    while pos + HEADER_BYTES <= size:
        length, seq, crc = unpack_header(chunk, pos)
        end = pos + HEADER_BYTES + length
        if length > MAX_RECORD_BYTES:
            raise _Damaged(base + pos, f"record length {length} is not plausible")
        if end > size:
            if final:
                raise _Damaged(base + pos, f"record cut short ({size - pos} of "
                                           f"{HEADER_BYTES + length} bytes)")
            return pos, last_seq, meta
        payload = view[pos + HEADER_BYTES:end]
        if crc32(payload, crc32(view[pos:pos + 12])) != crc:
            raise _Damaged(base + pos, "checksum mismatch")
        if seq == 0:
            meta = bytes(payload)
        else:
            last_seq = seq
            if out is not None and seq >= min_seq:
                ts, nl, nline, npairs = unpack_entry(payload, 0)
                p = 18 + nl
                raw_labels = bytes(payload[18:p])
                labels = labels_cache.get(raw_labels)
                if labels is None:
                    if len(labels_cache) >= _LABELS_CACHE_LIMIT:
                        labels_cache.clear()
                    labels = labels_cache[raw_labels] = raw_labels.decode("utf-8")
                line = str(payload[p:p + nline], "utf-8")
                metadata: tuple[tuple[str, str], ...] = ()
                nbytes = nline
                if npairs:
                    p += nline
                    pairs = []
                    for _ in range(npairs):
                        nn, nv = _PAIR.unpack_from(payload, p)
                        p += 6
                        name = str(payload[p:p + nn], "utf-8")
                        p += nn
                        pairs.append((name, str(payload[p:p + nv], "utf-8")))
                        p += nv
                        nbytes += nn + nv
                    metadata = tuple(pairs)
                out.append((seq, Entry(labels, ts, line, metadata), nbytes))
        pos = end
    if final and pos < size:
        raise _Damaged(base + pos, f"record cut short ({size - pos} bytes of header)")
    return pos, last_seq, meta


class Spool:
    """An on-disk queue of Loki entries with an acknowledgement cursor.

    Many threads may ``append``; one reader (the shipper) calls ``read`` and ``ack``.
    """

    def __init__(
        self,
        directory: str,
        *,
        max_bytes: int,
        segment_bytes: int,
        fsync_interval: float = 1.0,
        memory_bytes: int = 16 << 20,
        on_drop: DropCallback | None = None,
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes))
        self.fsync_interval = fsync_interval
        self.memory_bytes = memory_bytes
        self.on_drop = on_drop or (lambda reason, entries, nbytes: None)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._segments: list[_Segment] = []
        self._fd = -1
        self._lock_fd = -1
        self._next_seq = 1
        self._acked = 0
        self._read_seq = 1
        self._written_seq = 0     # highest seq on disk
        self._synced_seq = 0      # highest seq fsynced
        self._syncing = False
        self._dirty = False
        self._meta: bytes | None = None
        self._held: collections.deque[_Held] = collections.deque()
        self._dropped: list[tuple[int, int]] = []  # counted, not yet acknowledged; sorted
        # read while held in memory, then gone from memory without reaching the disk: only
        # the reader has them (lost, and counted, if the spool closes before their ack)
        self._unsaved: list[tuple[int, int]] = []
        self._drop_log = DropLog(log)  # one error line per reason per 10 s, counted
        self._advanced = False  # read() passed to the next segment
        self._held_bytes = 0
        self._disk_error: str | None = None
        self._to_close: list[int] = []
        self._reader_seg: int | None = None   # first_seq of the segment being read
        self._reader_off = 0
        self._rfd = -1
        self._labels_cache: dict[bytes, str] = {}
        self._total = 0  # bytes in segment files
        # Wake-up accounting for read(): record bytes appended and consumed since start.
        self._appended = 0
        self._consumed = 0
        self._wake_at: int | None = None
        self._kicked = False
        self._ack_pending = False
        self._ack_trusted = False  # the ack file was read and passed its checksum
        self._ack_on_disk = 0      # the acknowledged seq the ack file holds
        # Entries just written, kept so that a reader keeping up needs no pread and no
        # decoding: (seq, entry, nbytes, record bytes, segment first_seq, end offset). A
        # cache only: past _RECENT_LIMIT bytes the oldest go and are read from disk.
        self._recent: collections.deque[tuple[int, Entry, int, int, int, int]] = \
            collections.deque()
        self._recent_bytes = 0
        self._closed = False
        self._open()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._background, name="osqsdk-loki-spool",
                                        daemon=True)
        self._thread.start()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            self._lock_fd = os.open(os.path.join(self.directory, "LOCK"),
                                    os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: cannot create: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise SpoolError(f"spool {self.directory} is in use by another process") from None
        for name in sorted(n for n in os.listdir(self.directory) if n.endswith(".seg")):
            path = os.path.join(self.directory, name)
            stem = name[:-4]
            if not (len(stem) == 20 and stem.isdigit() and 0 < int(stem) < 2**63):
                log.warning("spool %s: %s is not a segment osqsdk wrote; left alone",
                            self.directory, name)
                continue
            try:
                st = os.lstat(path)
            except OSError as exc:
                log.warning("spool %s: %s cannot be read (%s); left alone", self.directory,
                            name, exc.strerror)
                continue
            if not stat.S_ISREG(st.st_mode):
                log.warning("spool %s: %s is not a regular file; left alone",
                            self.directory, name)
                continue
            self._segments.append(_Segment(int(stem), path, st.st_size))
        self._acked = self._ack_on_disk = self._read_ack()
        self._count_lost_in_flight()
        if not self._ack_trusted:
            # from now on a restart can tell entries that left the disk unacknowledged
            self._write_ack()
        if self._segments:
            self._recover_last()
        # numbering goes on past entries counted as dropped that never reached the disk, so
        # that a number recorded as counted is never given to a new entry
        self._next_seq = max(self._next_seq, self._acked + 1,
                             *(hi + 1 for _, hi in self._dropped))
        if not self._segments:
            self._new_segment(self._next_seq)
        else:
            last = self._segments[-1]
            self._fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
        self._written_seq = self._synced_seq = self._next_seq - 1
        self._read_seq = self._acked + 1
        self._total = sum(s.size for s in self._segments)
        self._appended = self._total  # the backlog counts as unread for read()'s wake-ups
        self._delete_acked()
        backlog = self._next_seq - 1 - self._acked
        if backlog:
            log.info("spool %s: resuming with %d entries not yet acknowledged",
                     self.directory, backlog)

    def _read_ack(self) -> int:
        """The acknowledged sequence number from the ack file, and (into ``_dropped``) the
        ranges after it that were counted as dropped."""
        path = os.path.join(self.directory, "ack")
        first = self._segments[0].first_seq - 1 if self._segments else 0
        try:
            with open(path, "rb") as f:
                data = f.read(_ACK_HEAD.size + _MAX_RANGES * _RANGE.size + _CRC.size + 1)
        except FileNotFoundError:
            return first
        parsed = _parse_ack(data)
        if parsed is not None:
            seq, ranges = parsed
            self._ack_trusted = True
            self._dropped = [r for r in ranges if r[1] > seq]
            return seq
        log.warning("spool %s: the ack file is damaged; entries still in the spool will be "
                    "sent again (Loki drops exact duplicates)", path)
        return first

    def _count_lost_in_flight(self) -> None:
        """Entries after the acknowledgement that are no longer in any segment, and were not
        counted as dropped: read and being sent when the size limit removed their segment,
        then the process ended before Loki took them. Counted once, here."""
        if not self._segments:
            return
        first = self._segments[0].first_seq
        if self._ack_trusted and first - 1 > self._acked:
            lost = self._uncounted(self._acked + 1, first - 1)
            if lost:
                log.error("spool %s: %d entries (sequence %d to %d) were being sent when the "
                          "spool's size limit removed them from disk, and the previous process "
                          "ended before Loki took them; counted as lost_in_flight",
                          self.directory, lost, self._acked + 1, first - 1)
                self.on_drop("lost_in_flight", lost, 0)
        if first - 1 > self._acked:
            self._acked = first - 1
            self._dropped = [r for r in self._dropped if r[1] > self._acked]
            self._write_ack()

    def _uncounted(self, first: int, last: int) -> int:
        """How many of the entries ``first..last`` no counted drop covers."""
        covered = 0
        for lo, hi in self._dropped:
            lo, hi = max(lo, first), min(hi, last)
            if lo <= hi:
                covered += hi - lo + 1
        return max(0, last - first + 1 - covered)

    def _counted(self, first: int, last: int) -> None:
        """Record ``first..last`` as counted as dropped (kept sorted, merged, bounded)."""
        bisect.insort(self._dropped, (first, last))
        merged: list[tuple[int, int]] = []
        for lo, hi in self._dropped:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        while len(merged) > _MAX_RANGES:  # merge the closest neighbours: never under-count
            gap = min(range(len(merged) - 1), key=lambda i: merged[i + 1][0] - merged[i][1])
            merged[gap:gap + 2] = [(merged[gap][0], merged[gap + 1][1])]
        self._dropped = merged

    def _recover_last(self) -> None:
        """Find the last good record of the last segment; cut off a damaged tail."""
        last = self._segments[-1]
        with open(last.path, "rb") as f:
            data = f.read()
        try:
            consumed, last_seq, meta = _parse(data, 0, True, 0, {}, None)
            good = consumed
        except _Damaged as exc:
            good = exc.offset
            consumed, last_seq, meta = _parse(data[:good], 0, True, 0, {}, None)
            log.warning("spool %s: damaged record at byte %d (%s); the %d bytes from there, "
                        "a write cut short by a crash or power loss, are cut off",
                        last.path, good, exc.cause, len(data) - good)
            with open(last.path, "r+b") as f:
                f.truncate(good)
        last.size = good
        if meta is not None:
            self._meta = meta
        if last_seq:
            self._next_seq = last_seq + 1
        else:  # no entry in it: numbering continues at its name
            self._next_seq = last.first_seq
            if len(self._segments) > 1:
                # the previous segment holds the entries before this one
                self._next_seq = max(self._next_seq, self._segments[-2].first_seq)

    # -- writing -------------------------------------------------------------------------
    def append(self, entries: Sequence[Entry], *, subsecond: bool = False,
               meta: bytes | None = None) -> int:
        """Write ``entries`` (and an optional meta record after them); return the last seq.

        ``subsecond``: the entries carry whole-second timestamps; add a sub-second part
        from the sequence number, fixed here once (see Mapper).
        """
        with self._lock:
            if self._closed:
                raise SpoolError(f"spool {self.directory} is closed")
            first = seq = self._next_seq
            parts = []
            written = []
            for entry in entries:
                if subsecond:
                    entry = _at(entry, entry.ts_ns + seq % _NS)
                record, nbytes, entry = encode_record(seq, entry)
                parts.append(record)
                written.append((seq, entry, nbytes, len(record)))
                seq += 1
            if meta is not None:
                parts.append(_meta_record(meta))
                self._meta = meta
            if not parts:
                return first - 1
            last = seq - 1
            self._next_seq = seq
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            size = len(data)
            if not self._fast_write(data, first, last):
                self._write(data, first, last, meta)
            self._appended += size
            if written and last <= self._written_seq:
                self._remember(written, len(data))
            if self._wake_at is not None and self._appended >= self._wake_at:
                self._wake_at = None
                self._cond.notify_all()
            on_disk = last <= self._written_seq
        if self.fsync_interval == 0 and on_disk and last >= first:
            self._sync_until(last)
        return last

    def append_one(self, entry: Entry, *, subsecond: bool = False) -> int:
        """``append((entry,))``, faster: the path every logger call and push() takes."""
        with self._lock:
            if self._closed:
                raise SpoolError(f"spool {self.directory} is closed")
            seq = self._next_seq
            if subsecond:
                entry = _at(entry, entry.ts_ns + seq % _NS)
            record, nbytes, entry = encode_record(seq, entry)
            size = len(record)
            self._next_seq = seq + 1
            if self._fast_write(record, seq, seq):
                segment = self._segments[-1]
                self._recent.append((seq, entry, nbytes, size, segment.first_seq, segment.size))
                self._recent_bytes += nbytes
                if self._recent_bytes > _RECENT_LIMIT:
                    self._recent_bytes -= self._recent.popleft()[2]
            else:
                self._write(record, seq, seq, None)
                if seq <= self._written_seq:
                    self._remember([(seq, entry, nbytes, size)], size)
            self._appended += size
            if self._wake_at is not None and self._appended >= self._wake_at:
                self._wake_at = None
                self._cond.notify_all()
            on_disk = seq <= self._written_seq
        if self.fsync_interval == 0 and on_disk:
            self._sync_until(seq)
        return seq

    def _remember(self, written: list[tuple[int, Entry, int, int]], size: int) -> None:
        segment = self._segments[-1]
        offset = segment.size - size  # where this write started
        recent = self._recent
        for seq, entry, nbytes, length in written:
            offset += length
            recent.append((seq, entry, nbytes, length, segment.first_seq, offset))
            self._recent_bytes += nbytes
        while self._recent_bytes > _RECENT_LIMIT:
            self._recent_bytes -= recent.popleft()[2]

    def _fast_write(self, data: bytes, first: int, last: int) -> bool:
        """One write() of the whole record run, the common case: nothing held in memory,
        room in the segment and under the cap. False sends the caller to the careful path
        (_write: short writes, rotation, the cap, a full disk)."""
        segment = self._segments[-1]
        size = len(data)
        if (self._held or segment.size + size > self.segment_bytes
                or self._total + size > self.max_bytes):
            return False
        try:
            written = os.write(self._fd, data)
        except OSError:
            return False
        if written != size or self._disk_error is not None:
            os.ftruncate(self._fd, segment.size)  # undo a short write
            return False
        segment.size += size
        self._total += size
        if last >= first:
            self._written_seq = last
        self._dirty = True
        return True

    def _write(self, data: bytes, first: int, last: int, meta: bytes | None) -> None:
        if self._held and not self._flush_held():
            self._hold(data, first, last, meta)
            return
        if not self._disk_write(data, first, last):
            self._hold(data, first, last, meta)

    def _disk_write(self, data: bytes, first: int, last: int) -> bool:
        segment = self._segments[-1]
        if segment.size and segment.size + len(data) > self.segment_bytes and last >= first:
            if not self._rotate(first):
                return False
            segment = self._segments[-1]
        self._enforce_cap(len(data))
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            self._undo_partial(segment)
            self._note_disk_error(exc)
            return False
        segment.size += len(data)
        self._total += len(data)
        if last >= first:
            self._written_seq = last
        self._dirty = True
        if self._disk_error is not None:
            log.warning("spool %s: writing to disk works again", self.directory)
            self._disk_error = None
        return True

    def _undo_partial(self, segment: _Segment) -> None:
        try:  # a short write left part of a record; cut it off so the file stays readable
            os.ftruncate(self._fd, segment.size)
        except OSError:
            pass

    def _note_disk_error(self, exc: OSError) -> None:
        if self._disk_error is None:
            log.error("spool %s: cannot write (%s); holding new entries in memory (up to %d "
                      "bytes) until the disk has room again", self.directory, exc.strerror,
                      self.memory_bytes)
        self._disk_error = exc.strerror or str(exc)

    def _rotate(self, first_seq: int) -> bool:
        old_fd = self._fd
        try:
            self._new_segment(first_seq)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            self._note_disk_error(exc)
            return False
        if self.fsync_interval == 0:
            self._fsync_and_close(old_fd)  # writers waiting on a group commit count on it
        else:
            self._to_close.append(old_fd)
        return True

    def _new_segment(self, first_seq: int) -> None:
        path = os.path.join(self.directory, _segment_name(first_seq))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        size = 0
        if self._meta is not None:
            record = _meta_record(self._meta)
            try:
                os.write(fd, record)
            except OSError:
                os.close(fd)
                os.unlink(path)
                raise
            size = len(record)
        if self.fsync_interval == 0:  # answers wait for fsync: the file's name must last too
            self._fsync_and_close(os.dup(fd), directory=True)
        self._fd = fd
        self._segments.append(_Segment(first_seq, path, size))
        self._total += size
        self._dirty = True

    def _enforce_cap(self, incoming: int) -> None:
        while self._total + incoming > self.max_bytes and len(self._segments) > 1:
            self._drop_oldest_segment("spool_full")

    def _drop_oldest_segment(self, reason: str) -> None:
        victim, following = self._segments[0], self._segments[1]
        first_unread = max(self._read_seq, victim.first_seq)
        unread = max(0, following.first_seq - first_unread)
        if unread:
            self._drop_log.drop(reason, unread, f"spool {self.directory}: over its size "
                                f"limit of {self.max_bytes} bytes; the oldest not yet sent")
            self.on_drop(reason, unread, victim.size)
            self._counted(first_unread, following.first_seq - 1)
        self._segments.pop(0)
        self._remove(victim)
        self._read_seq = max(self._read_seq, following.first_seq)
        # The invariant: entries of the victim already read are in flight and still owed;
        # the ack passes the counted ones only once those are acknowledged.
        if not self._ack_over_dropped() and unread:
            self._write_ack()  # the ack file records the counted range

    def _remove(self, segment: _Segment) -> None:
        if self._reader_seg == segment.first_seq:
            self._close_reader()
        self._total -= segment.size
        try:
            os.unlink(segment.path)
        except FileNotFoundError:
            pass

    def _hold(self, data: bytes, first: int, last: int, meta: bytes | None) -> None:
        self._held.append(_Held(first, last, data, meta))
        self._held_bytes += len(data)
        while self._held_bytes > self.memory_bytes and len(self._held) > 1:
            old = self._held.popleft()
            self._held_bytes -= len(old.data)
            first_unread = max(self._read_seq, old.first_seq)
            unread = max(0, old.last_seq - first_unread + 1)
            if first_unread > old.first_seq and first_unread - 1 > self._acked:
                self._unsaved.append((max(old.first_seq, self._acked + 1), first_unread - 1))
            if unread:
                self.on_drop("disk_full", unread, len(old.data))
                self._drop_log.drop("disk_full", unread,
                                    f"spool {self.directory}: disk full and "
                                    f"{self.memory_bytes} bytes held in memory; the oldest "
                                    "held")
            # The invariant: neither the reader nor the acknowledgement moves past an entry
            # that was neither delivered nor counted as dropped. Entries before this block
            # (on disk, or read and in flight) are still owed: only a reader inside the
            # block skips its rest, and the ack jumps the block only once it reaches it.
            if old.first_seq <= self._read_seq <= old.last_seq:
                self._read_seq = old.last_seq + 1
            if unread:
                self._counted(first_unread, old.last_seq)
                if not self._ack_over_dropped():
                    self._write_ack()

    def _flush_held(self) -> bool:
        """Write held records to disk, oldest first; True when none are left."""
        while self._held:
            held = self._held[0]
            if not self._disk_write(held.data, held.first_seq, held.last_seq):
                return False
            self._held.popleft()
            self._held_bytes -= len(held.data)
        return True

    def _sync_until(self, seq: int) -> None:
        with self._cond:
            while self._synced_seq < seq and seq <= self._written_seq and not self._closed:
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target, fd = self._written_seq, os.dup(self._fd)
                self._cond.release()
                try:
                    self._fsync_and_close(fd)
                finally:
                    self._cond.acquire()
                    self._syncing = False
                self._synced_seq = max(self._synced_seq, target)
                self._cond.notify_all()

    def _background(self) -> None:
        interval = self.fsync_interval if self.fsync_interval > 0 else 0.5
        while not self._stop.wait(interval):
            self.sync()

    def sync(self) -> None:
        """fsync what was written, write held entries once the disk has room again."""
        with self._lock:
            if self._closed:
                return
            if self._held:
                self._flush_held()
            if self._ack_pending:
                self._write_ack()
                self._delete_acked()
            closing, self._to_close = self._to_close, []
            fd = os.dup(self._fd) if self._dirty else -1
            target = self._written_seq
            self._dirty = False
        for old in closing:
            self._fsync_and_close(old)
        if fd >= 0:
            self._fsync_and_close(fd, directory=True)
            with self._lock:
                self._synced_seq = max(self._synced_seq, target)

    def _fsync_and_close(self, fd: int, *, directory: bool = False) -> None:
        """fsync ``fd`` (and with ``directory`` the spool directory, which holds the segments'
        names), then close ``fd``. A failure is logged: the data is written, not durable."""
        try:
            os.fsync(fd)
            if directory:
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            log.error("spool %s: fsync failed: %s", self.directory, exc.strerror)
        finally:
            os.close(fd)

    # -- reading and acknowledging -----------------------------------------------------
    def read(self, max_bytes: int, timeout: float,
             wait_bytes: int = 1) -> list[tuple[int, Entry, int]]:
        """Entries not yet read, oldest first, as (seq, entry, line + metadata bytes):
        about ``max_bytes`` of them at most. Waits up to ``timeout`` seconds until about
        ``wait_bytes`` are there (at least one entry), then returns what there is. Only one
        thread may read."""
        while True:
            self._advanced = False
            before = self._read_seq
            out = self._read_once(max_bytes, timeout, wait_bytes)
            # a segment with nothing to give (emptied, damaged at its start) was passed, or
            # the disk's end was reached with newer entries held in memory: go on instead
            # of answering "nothing"
            if out or not (self._advanced or self._read_seq != before):
                return out
            timeout = 0

    def _read_once(self, max_bytes: int, timeout: float,
                   wait_bytes: int) -> list[tuple[int, Entry, int]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed and (self._read_seq >= self._next_seq or (
                    self._appended - self._consumed < wait_bytes)):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._kicked:
                    break
                self._wake_at = self._consumed + max(1, wait_bytes)
                self._cond.wait(remaining)
            self._wake_at = None
            self._kicked = False
            if self._read_seq >= self._next_seq:
                return []
            recent = self._recent
            while recent and recent[0][0] < self._read_seq:
                self._recent_bytes -= recent.popleft()[2]
            if recent and recent[0][0] == self._read_seq:
                return self._read_recent(max_bytes)
            if self._read_seq > self._written_seq:
                return self._read_held(max_bytes)
            segment = self._reader_segment()
            if segment is None:
                return []
            offset, path, size = self._reader_off, segment.path, segment.size
            is_last = segment is self._segments[-1]
            min_seq = self._read_seq
            if self._rfd < 0:
                self._rfd = os.open(path, os.O_RDONLY)
            rfd = os.dup(self._rfd)
        try:
            want = min(size - offset, max(max_bytes + (64 << 10), _READ_CHUNK))
            chunk = os.pread(rfd, want, offset) if want > 0 else b""
        finally:
            os.close(rfd)
        out: list[tuple[int, Entry, int]] = []
        final = offset + len(chunk) >= size
        damaged: _Damaged | None = None
        try:
            consumed, _, _ = _parse(chunk, offset, final, min_seq, self._labels_cache, out)
            if consumed == 0 and chunk and not final:  # one record bigger than the chunk
                length = _HEADER.unpack_from(chunk, 0)[0]
                rfd2 = os.open(path, os.O_RDONLY)
                try:
                    chunk = os.pread(rfd2, HEADER_BYTES + length, offset)
                finally:
                    os.close(rfd2)
                consumed, _, _ = _parse(chunk, offset, True, min_seq, self._labels_cache, out)
        except _Damaged as exc:
            damaged = exc
            consumed = exc.offset - offset
        with self._cond:
            if self._reader_seg != segment.first_seq:
                return []  # the segment was dropped meanwhile; its entries are counted
            self._reader_off = offset + consumed
            self._consumed += consumed
            if out and out[0][0] < self._read_seq:
                out = [item for item in out if item[0] >= self._read_seq]
            if out:
                self._read_seq = out[-1][0] + 1
            if damaged is not None:
                self._skip_damaged(segment, damaged, is_last)
            elif self._reader_off >= segment.size and not is_last:
                self._advance_reader(segment)
            elif is_last and self._reader_off >= segment.size:
                # everything on disk is read; anything newer is held in memory
                self._read_seq = max(self._read_seq, min(self._written_seq + 1,
                                                         self._next_seq))
        return out

    def _reader_segment(self) -> _Segment | None:
        if self._reader_seg is not None:
            for segment in self._segments:
                if segment.first_seq == self._reader_seg:
                    return segment
            self._close_reader()
        # the segment holding _read_seq: the last one starting at or before it
        candidate = None
        for segment in self._segments:
            if segment.first_seq <= self._read_seq:
                candidate = segment
        if candidate is None and self._segments:
            candidate = self._segments[0]
        if candidate is not None:
            self._reader_seg, self._reader_off = candidate.first_seq, 0
        return candidate

    def _advance_reader(self, segment: _Segment) -> None:
        # segment is the one being read: self._reader_seg == segment.first_seq
        index = [s.first_seq for s in self._segments].index(segment.first_seq)
        nxt = self._segments[index + 1]
        missing = self._uncounted(self._read_seq, nxt.first_seq - 1)
        if missing > 0:
            # entries that should be in this segment are not there (the file was emptied,
            # cut, or a segment between was deleted): counted and said, then reading goes on
            log.error("spool %s: %d entries (sequence %d to %d) are missing from %s; counted "
                      "as corrupt", self.directory, missing, self._read_seq,
                      nxt.first_seq - 1, segment.path)
            self.on_drop("corrupt", missing, 0)
            self._counted(self._read_seq, nxt.first_seq - 1)
        self._read_seq = max(self._read_seq, nxt.first_seq)
        self._advanced = True
        self._close_reader()
        self._reader_seg, self._reader_off = nxt.first_seq, 0

    def _skip_damaged(self, segment: _Segment, damaged: _Damaged, is_last: bool) -> None:
        if is_last:
            end_seq = self._written_seq + 1
            self._reader_off = segment.size
        else:
            index = self._segments.index(segment)
            end_seq = self._segments[index + 1].first_seq
        lost = max(0, end_seq - self._read_seq)
        log.error("spool %s: damaged record at byte %d (%s); skipping the rest of the "
                  "segment (%d entries lost)", segment.path, damaged.offset, damaged.cause, lost)
        if lost:
            self.on_drop("corrupt", lost, segment.size - damaged.offset)
            self._counted(self._read_seq, end_seq - 1)
        self._read_seq = max(self._read_seq, end_seq)
        if not is_last:
            self._advance_reader(segment)

    def _read_recent(self, max_bytes: int) -> list[tuple[int, Entry, int]]:
        out: list[tuple[int, Entry, int]] = []
        recent, size, consumed = self._recent, 0, 0
        item = recent[0]
        # Only a run of consecutive sequence numbers: entries held in memory while the disk
        # was full reach the file later, between cached ones, and are read from the file.
        while recent and size < max_bytes and recent[0][0] == self._read_seq + len(out):
            item = recent.popleft()
            out.append(item[:3])
            size += item[2]
            consumed += item[3]
        self._recent_bytes -= size
        self._consumed += consumed
        self._read_seq = item[0] + 1
        if self._reader_seg != item[4]:
            self._close_reader()
            self._reader_seg = item[4]
        self._reader_off = item[5]
        return out

    def _read_held(self, max_bytes: int) -> list[tuple[int, Entry, int]]:
        out: list[tuple[int, Entry, int]] = []
        size = 0
        for held in self._held:
            if held.last_seq < self._read_seq:
                continue
            _parse(held.data, 0, True, self._read_seq, self._labels_cache, out)
            size += len(held.data)
            self._consumed += len(held.data)
            if size >= max_bytes:
                break
        if out:
            self._read_seq = out[-1][0] + 1
        return out

    def _close_reader(self) -> None:
        if self._rfd >= 0:
            os.close(self._rfd)
        self._rfd = -1
        self._reader_seg = None
        self._reader_off = 0

    def wake(self) -> None:
        """Make a waiting read() return what there is now."""
        with self._cond:
            self._kicked = True
            self._cond.notify_all()

    def ack(self, seq: int, settle: Callable[[], None] | None = None) -> None:
        """Everything up to ``seq`` was delivered or deliberately dropped. ``settle`` runs
        first, under the spool's lock, so that counts read under the same lock (the metrics)
        see the outcome and the acknowledgement together."""
        with self._cond:
            if settle is not None and not self._closed:
                settle()
            if seq <= self._acked or self._closed:
                return
            self._set_ack(min(seq, self._next_seq - 1))
            self._ack_over_dropped()
            self._delete_acked()
            if self._ack_pending:  # a full disk may have room now that segments are gone
                self._write_ack()
            while self._held and self._held[0].last_seq <= self._acked:
                self._held_bytes -= len(self._held.popleft().data)
            self._unsaved = [r for r in self._unsaved if r[1] > self._acked]
            self._cond.notify_all()

    def _ack_over_dropped(self) -> bool:
        """Acknowledge counted drops right after the acknowledged entries; True if it moved
        (and wrote the ack file)."""
        moved = False
        while self._dropped and self._dropped[0][0] <= self._acked + 1:
            _first, last = self._dropped.pop(0)
            if last > self._acked:
                self._acked = last
                moved = True
        if moved:
            self._write_ack()
        return moved

    def _set_ack(self, seq: int) -> None:
        self._acked = seq
        self._write_ack()

    def _write_ack(self) -> None:
        self._dropped = [r for r in self._dropped if r[1] > self._acked]
        if self._dropped:
            data = _ACK_HEAD.pack(self._acked, len(self._dropped)) + b"".join(
                _RANGE.pack(lo, hi) for lo, hi in self._dropped)
        else:
            data = struct.pack("<Q", self._acked)
        data += _CRC.pack(zlib.crc32(data))
        path = os.path.join(self.directory, "ack")
        tmp = path + ".tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            # A full disk has no block for a new file, but the ack file's own block can be
            # written over in place (a crash in between leaves a checksum that fails: then
            # the restart trusts the segments instead, and resends rather than loses).
            try:
                fd = os.open(path, os.O_WRONLY)
                try:
                    _write_all(fd, data)
                    os.ftruncate(fd, len(data))
                finally:
                    os.close(fd)
            except OSError:
                self._ack_pending = True  # retried by sync()
                log.debug("spool %s: cannot write the ack file: %s", self.directory,
                          exc.strerror)
                self._dirty = True
                return
        self._ack_pending = False
        self._ack_on_disk = self._acked
        self._dirty = True

    def _delete_acked(self) -> None:
        # only what the ack file on disk covers: a restart must never find entries gone
        # from the segments that its ack file says are still owed
        while len(self._segments) > 1 and \
                self._segments[1].first_seq - 1 <= min(self._acked, self._ack_on_disk):
            self._remove(self._segments.pop(0))

    def wait_acked(self, seq: int, timeout: float) -> bool:
        """Wait until everything up to ``seq`` is acknowledged."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._acked < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._cond.wait(remaining)
            return True

    # -- state -------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def acked_seq(self) -> int:
        return self._acked

    @property
    def meta(self) -> bytes | None:
        """The latest meta record (survives restarts)."""
        return self._meta

    @property
    def entries(self) -> int:
        """Entries not yet acknowledged, less those already counted as dropped."""
        last = self._next_seq - 1
        return max(0, last - self._acked) - sum(
            max(0, min(hi, last) - max(lo, self._acked + 1) + 1) for lo, hi in self._dropped)

    @property
    def lock(self) -> threading.Lock:
        """The lock every change to the spool holds (for counts that must add up)."""
        return self._lock

    @property
    def disk_bytes(self) -> int:
        return self._total

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Sync and close; the spool directory keeps whatever was not acknowledged."""
        if self._closed:
            return
        self._stop.set()
        self._thread.join(5)
        self.sync()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            # Entries only in memory (the disk was full) end with the spool, read or not: a
            # reader that has not had them acknowledged by now will not.
            gone = [(max(h.first_seq, self._acked + 1), h.last_seq) for h in self._held]
            gone += [(max(lo, self._acked + 1), hi) for lo, hi in self._unsaved]
            lost = sum(self._uncounted(lo, hi) for lo, hi in gone if lo <= hi)
            if lost:
                self.on_drop("disk_full", lost, self._held_bytes)
                self._drop_log.drop("disk_full", lost, f"spool {self.directory}: closing "
                                    "with entries that never reached the disk")
            self._drop_log.flush()
            for fd in [self._fd, *self._to_close]:
                if fd >= 0:
                    os.close(fd)
            self._fd = -1
            self._to_close = []
            self._close_reader()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

