"""Ship an osqueryd log file the way promtail does, without losing or repeating lines.

Reads osqueryd's results or snapshots log (JSON lines, any of the result formats), a status
log written as JSON lines (osquery's re-rendered form or osqsdk's file logger), or glog text
status lines (``I1124 07:30:19.437271 2849 scheduler.cpp:105] message``).

The read position is written into the spool in the same write() as the lines read up to
it (a spool meta record), so the two cannot disagree after a crash: a restart resumes
exactly after the last line that reached the spool, and the spool resends exactly what
Loki did not acknowledge. Unlike promtail's positions file (read offsets, synced every
10 s; docs/loki.md §5.2), nothing is skipped or read twice.

Rotation: when the path names a new file (rename rotation), the old file is read to its
end first; a file that shrank (copytruncate) is read again from the start, with a warning.
After a restart, a position in a file that has since been renamed is found again among the
path's siblings by device and inode.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

from osqsdk._osquery.records import Severity, StatusLog, result_from_json
from osqsdk.loki._client import LokiClient
from osqsdk.loki._labels import Entry, Mapper

__all__ = ["Tailer"]

log = logging.getLogger("osqsdk.loki.tail")

_GLOG = re.compile(r"([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?\s+(\d+)\s+"
                   r"([^:\]\s]+):(\d+)\] ?(.*)\Z", re.S)
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_FINGERPRINT = 256  # bytes hashed from the start of a file to tell files apart
_CHUNK = 1 << 20


@dataclass
class _Position:
    dev: int
    ino: int
    offset: int
    fingerprint: str

    def encode(self, path: str) -> bytes:
        return json.dumps({"path": path, "dev": self.dev, "ino": self.ino,
                           "offset": self.offset, "fingerprint": self.fingerprint}).encode()


def _fingerprint(fd: int) -> str:
    head = os.pread(fd, _FINGERPRINT, 0)
    return hashlib.sha256(head).hexdigest()[:16] if len(head) == _FINGERPRINT else ""


def _glog_status(match: re.Match[str], host: str, now: datetime.datetime) -> StatusLog:
    level, month, day, hh, mm, ss, micro, _thread, filename, line, message = match.groups()
    year = now.year - (1 if int(month) > now.month else 0)  # glog has no year
    when = datetime.datetime(year, int(month), int(day), int(hh), int(mm), int(ss),
                             int((micro or "0").ljust(6, "0"))).astimezone()
    unix = int(when.timestamp())
    calendar = when.astimezone(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S %Y UTC")
    return StatusLog(severity=Severity(_SEVERITY[level]), filename=filename, line=int(line),
                     message=message, host_identifier=host, calendar_time=calendar,
                     unix_time=unix, raw={})


class Tailer:
    """Follow ``path`` and push its lines through ``client``.

    ``host`` fills the host label of glog status lines (which do not carry one).
    """

    def __init__(self, path: str, client: LokiClient, mapper: Mapper, *,
                 poll_interval: float = 0.25, host: str | None = None) -> None:
        self.path = os.path.abspath(path)
        self.client = client
        self.mapper = mapper
        self.poll_interval = poll_interval
        self.host = host or os.uname().nodename
        self.stop_event = threading.Event()
        self.lines_read = 0
        self.problems = 0
        self._fd = -1
        self._pos: _Position | None = None
        self._partial = b""
        self._lineno: int | None = None  # known when reading from the start of the file
        self._pending_rotated: list[str] = []

    # -- opening -------------------------------------------------------------------------
    def _open(self, path: str, offset: int) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        if offset > st.st_size:
            log.warning("%s is shorter (%d bytes) than the saved position %d (truncated?); "
                        "reading it from the start", path, st.st_size, offset)
            offset = 0
        self._close()
        self._fd = fd
        self._pos = _Position(st.st_dev, st.st_ino, offset, _fingerprint(fd))
        self._partial = b""
        self._lineno = 0 if offset == 0 else None
        self._current_path = path
        return True

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def _resume(self) -> None:
        """Open the file and offset recorded in the spool, or the path from its start."""
        saved: dict[str, Any] | None = None
        if self.client.spool.meta:
            try:
                saved = json.loads(self.client.spool.meta)
            except ValueError:
                log.warning("spool %s: the saved read position is not readable; starting %s "
                            "from the beginning", self.client.spool.directory, self.path)
        if saved and saved.get("path") != self.path:
            log.warning("spool %s was used for %s; starting %s from the beginning",
                        self.client.spool.directory, saved.get("path"), self.path)
            saved = None
        if not saved:
            self._open(self.path, 0)
            return
        dev, ino, offset = saved["dev"], saved["ino"], saved["offset"]
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (dev, ino):
            self._open(self.path, offset)
            if self._pos and saved.get("fingerprint") and self._pos.fingerprint and \
                    self._pos.fingerprint != saved["fingerprint"]:
                log.warning("%s has the same inode but other content; reading from the start",
                            self.path)
                self._open(self.path, 0)
            return
        # The file we were reading was rotated away while we were stopped: find it.
        rotated = self._find_rotated(dev, ino)
        if rotated is not None:
            log.info("%s was rotated to %s; reading that from byte %d first", self.path,
                     rotated, offset)
            self._open(rotated, offset)
            self._pending_rotated = [self.path]
            return
        log.warning("the file read before the restart (inode %d) is gone; lines written to "
                    "it after byte %d were not shipped; starting %s from the beginning", ino,
                    offset, self.path)
        self._open(self.path, 0)

    def _find_rotated(self, dev: int, ino: int) -> str | None:
        directory, base = os.path.split(self.path)
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        for name in sorted(names):
            if name == base or not name.startswith(base):
                continue
            candidate = os.path.join(directory, name)
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (dev, ino):
                return candidate
        return None

    # -- reading -------------------------------------------------------------------------
    def _read_available(self) -> int:
        """Read and ship what the open file has now; returns the number of lines."""
        if self._fd < 0 or self._pos is None:
            return 0
        total = 0
        while not self.stop_event.is_set():
            data = os.pread(self._fd, _CHUNK, self._pos.offset + len(self._partial))
            if not data:
                return total
            buf = self._partial + data
            end = buf.rfind(b"\n")
            if end < 0:
                self._partial = buf
                continue
            complete, self._partial = buf[:end + 1], buf[end + 1:]
            entries = self._entries(complete.split(b"\n")[:-1])
            self._pos.offset += len(complete)
            if not self._pos.fingerprint:
                self._pos.fingerprint = _fingerprint(self._fd)
            # Lines and the position after them go into the spool in one write.
            self.client.push_entries(entries, subsecond=True,
                                     meta=self._pos.encode(self.path))
            total += len(entries)
        return total

    def _entries(self, lines: list[bytes]) -> list[Entry]:
        out = []
        now = datetime.datetime.now()
        start_offset = self._pos.offset if self._pos else 0
        consumed = 0
        for raw in lines:
            where_offset = start_offset + consumed
            consumed += len(raw) + 1
            if self._lineno is not None:
                self._lineno += 1
            text = raw.decode("utf-8", "surrogateescape").rstrip("\r")
            if not text.strip():
                continue
            self.lines_read += 1
            entry = self._entry(text, now, where_offset)
            out.append(entry)
        return out

    def _where(self, offset: int) -> str:
        name = getattr(self, "_current_path", self.path)
        if self._lineno is not None:
            return f"{name}:{self._lineno}"
        return f"{name} (byte {offset})"

    def _entry(self, text: str, now: datetime.datetime, offset: int) -> Entry:
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError as exc:
                return self._unparsed(text, offset, f"not JSON: {exc}")
            if isinstance(data, dict) and "name" in data:
                try:
                    return self.mapper.result(result_from_json(data, text))
                except ValueError as exc:
                    return self._unparsed(text, offset, str(exc))
            if isinstance(data, dict) and "message" in data and "severity" in data:
                try:
                    return self.mapper.status(StatusLog(
                        severity=Severity(int(data.get("severity", 0))),
                        filename=str(data.get("filename", "")), line=int(data.get("line", 0)),
                        message=str(data.get("message", "")),
                        host_identifier=str(data.get("hostIdentifier", "")),
                        calendar_time=str(data.get("calendarTime", "")),
                        unix_time=int(data.get("unixTime", 0)), raw=data))
                except (TypeError, ValueError) as exc:
                    return self._unparsed(text, offset, f"status log: {exc}")
            return self._unparsed(text, offset, "JSON object is neither a result nor a "
                                                "status log")
        match = _GLOG.match(text)
        if match:
            try:
                return self.mapper.status(_glog_status(match, self.host, now))
            except ValueError as exc:  # a date that does not exist, e.g. I1332
                return self._unparsed(text, offset, f"glog status line: {exc}")
        return self._unparsed(text, offset, "neither JSON nor a glog status line")

    def _unparsed(self, text: str, offset: int, cause: str) -> Entry:
        self.problems += 1
        log.warning("%s: %s; shipped as is with log_type=unparsed", self._where(offset), cause)
        return self.mapper.unparsed(text)

    def _check_rotation(self) -> None:
        """At the end of the open file: switch files if the path was rotated or truncated."""
        if self._pos is None:
            self._open(self.path, 0)
            return
        if self._pending_rotated:
            nxt = self._pending_rotated.pop(0)
            if self._open(nxt, 0):
                log.info("now reading %s", nxt)
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # rotated away and not recreated yet: keep the old one open
        if (st.st_dev, st.st_ino) != (self._pos.dev, self._pos.ino):
            log.info("%s was rotated; reading the new file from the start", self.path)
            self._open(self.path, 0)
        elif st.st_size < self._pos.offset:
            log.warning("%s shrank to %d bytes (copytruncate?); reading it from the start",
                        self.path, st.st_size)
            self._open(self.path, 0)

    def run(self, *, once: bool = False) -> bool:
        """Follow the file until ``stop_event`` is set; with ``once``, stop at its end and
        wait until everything is acknowledged. Returns True when nothing is left unsent."""
        self._resume()
        try:
            while not self.stop_event.is_set():
                self._read_available()
                if self.stop_event.is_set():
                    break
                before = (self._pos.dev, self._pos.ino) if self._pos else None
                self._check_rotation()
                after = (self._pos.dev, self._pos.ino) if self._pos else None
                if before != after:
                    continue
                if once and not self._pending_rotated:
                    break
                self.stop_event.wait(self.poll_interval)
            if once and not self.stop_event.is_set():
                while not self.stop_event.is_set():
                    if self.client.flush(timeout=1.0):
                        return True
                return self.client.spool.entries == 0
            return self.client.spool.entries == 0
        finally:
            self._close()
