"""osqueryd's scheduler on a simulated clock: differential results, exactly as logged.

What is reproduced (osquery/dispatcher/scheduler.cpp, osquery/core/query.cpp,
config/packs.cpp; docs/protocol.md §4.3, §5.3):

- a query runs when the simulated second is a multiple of its interval (osqueryd counts
  unix seconds); the clock starts at a second that is a multiple of every interval;
- the first run of a query name (or a new epoch, or changed SQL) reports every row as added
  with ``counter`` 0; later runs report the difference to the previous run (a multiset:
  duplicate rows count) and increment ``counter`` only when something changed;
- ``removed: false`` drops removed rows from the output, ``snapshot: true`` logs every
  run's rows whole; event format (one line per row, removed before added) or batch format
  (``diffResults``, also on a first run with no rows), ``numerics``, decorations (load,
  always, interval) inside ``decorations`` or at the top level;
- packs: platform (osquery's substring rules), version, shard, discovery queries (all
  must return rows; re-checked every ``pack_refresh_interval`` seconds);
- string values are escaped like osqueryd's escapeNonPrintableBytes before diffing;
- a logger that fails a result line stops the scheduler, as osqueryd exits (code 78).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from math import gcd
from pathlib import Path
from typing import Any

from osqsdk._osquery.config import ConfigProblem, osquery_bool
from osqsdk.errors import OsqsdkError, QueryError
from osqsdk.extension._config import DirectoryConfig
from osqsdk.extension._plugin import Response
from osqsdk.runner._engine import Engine
from osqsdk.runner._remote import RemoteLogger
from osqsdk.runner._values import result_text

__all__ = ["LogLine", "RemoteLogger", "ScheduledQuery", "Scheduler", "SchedulerStopped",
           "load_config"]

log = logging.getLogger("osqsdk.runner")

DEFAULT_INTERVAL = 3600          # --schedule_default_interval
MAX_INTERVAL = 604800            # one week; osqueryd skips longer intervals
PACK_REFRESH_INTERVAL = 3600     # --pack_refresh_interval
EXIT_CATASTROPHIC = 78
OSQUERY_VERSION = "5.23.0"


class SchedulerStopped(OsqsdkError):
    """A logger failed a result line; osqueryd would exit with ``code`` (78)."""

    def __init__(self, message: str, code: int = EXIT_CATASTROPHIC) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ScheduledQuery:
    name: str            # as logged: "<query>" or "pack<d><pack><d><query>"
    sql: str
    interval: int
    snapshot: bool = False
    removed: bool = True
    pack: str | None = None
    platform: str = ""
    version: str = ""
    shard: int = 0


@dataclass(frozen=True)
class LogLine:
    """One request osqueryd sends a logger: ``kind`` is "string" or "snapshot"."""

    kind: str
    line: str
    name: str
    tick: int


# -- config --------------------------------------------------------------------------------
def load_config(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read a config file and the packs it names by path, as osqueryd's filesystem config
    plugin would (comment stripping, limits, structure). Returns (config, packs by name)."""
    path = Path(path)
    source = DirectoryConfig(path.parent, config_file=path.name, name="runner")
    try:
        (text,) = source._generate().values()
    except ConfigProblem as exc:
        raise ConfigProblem(f"{path}: {exc}") from None
    config = json.loads(text)
    packs: dict[str, dict[str, Any]] = {}
    for name, value in (config.get("packs") or {}).items():
        if isinstance(value, str):
            pack_text = source._pack(name, value)
            packs[name] = json.loads(pack_text) if pack_text else {}
        else:
            packs[name] = value
    return config, packs


def _interval(value: Any) -> int | None:
    if value is None:
        return DEFAULT_INTERVAL
    try:
        interval = int(value)
    except (TypeError, ValueError):
        return None
    return interval if 1 <= interval <= MAX_INTERVAL else None


def platform_matches(platform: str, build: str) -> bool:
    """osquery's checkPlatform: empty/any/all match; linux/ubuntu/centos mean Linux;
    "posix" matches POSIX builds; otherwise a substring test against the build name."""
    platform = (platform or "").strip().lower()
    if platform in ("", "null", "any", "all"):
        return True
    if build == "linux" and any(p in platform for p in ("linux", "ubuntu", "centos")):
        return True
    if build in ("linux", "darwin", "freebsd") and "posix" in platform:
        return True
    return build in platform


def _version_at_least(minimum: str, version: str) -> bool:
    def parts(text: str) -> list[int]:
        return [int(p) if p.isdigit() else 0 for p in text.split(".")]
    return not minimum or parts(version) >= parts(minimum)


def host_shard(hostname: str) -> int:
    """osquery's getMachineShard: the first SHA1 byte of the hostname, scaled to 1-100."""
    return int(hashlib.sha1(hostname.encode()).hexdigest()[:2], 16) * 100 // 255


# -- result handling -----------------------------------------------------------------------
def escape_non_printable(text: str) -> str:
    """osqueryd's escapeNonPrintableBytes: control bytes and invalid UTF-8 as \\xHH."""
    if text.isprintable() and text.isascii():
        return text
    out = []
    for char in text:
        code = ord(char)
        if code < 0x20:
            out.append(f"\\x{code:02X}")
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte carried as a surrogate escape
            out.append(f"\\x{code - 0xDC00:02X}")
        else:
            out.append(char)
    return "".join(out)


def _typed(value: Any) -> Any:
    # osqueryd's RowTyped: integers, doubles, text (NULL reads as empty text).
    if value is None:
        return ""
    if isinstance(value, bytes):
        return escape_non_printable(value.decode("utf-8", "surrogateescape"))
    if isinstance(value, str):
        return escape_non_printable(value)
    return value


def _rank(value: Any) -> tuple[int, Any]:
    # The order of osquery's row variant: long long, double, string.
    if isinstance(value, int):
        return (0, value)
    if isinstance(value, float):
        return (1, value)
    return (2, value)


def _row_key(row: Mapping[str, Any]) -> tuple[tuple[str, tuple[int, Any]], ...]:
    return tuple((k, _rank(v)) for k, v in sorted(row.items()))


def diff_rows(previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """osquery's diff(): (added, removed). Added keep the current order; removed come in
    the order of osquery's multiset (rows compared column by column)."""
    old = Counter(_row_key(r) for r in previous)
    by_key = {_row_key(r): r for r in previous}
    added = []
    for row in current:
        key = _row_key(row)
        if old[key] > 0:
            old[key] -= 1
        else:
            added.append(dict(row))
    removed = [dict(by_key[key]) for key in sorted(old.elements())]
    return added, removed


@dataclass
class _State:
    rows: list[dict[str, Any]]
    counter: int
    epoch: int
    sql: str


class Scheduler:
    """Run a config's schedule and packs on ``engine`` over simulated ticks.

    ``loggers`` are logger plugins (``osqsdk.LoggerPlugin`` or anything with
    ``call(request)``, e.g. ``RemoteLogger``); the last one's answer to result lines is the
    one osqueryd checks. Each tick advances the clock by ``tick_seconds`` (default: the
    greatest common divisor of the intervals, so that every query's runs fall on ticks);
    ``engine.tick`` follows, so per-tick fixtures apply.
    """

    def __init__(
        self,
        engine: Engine,
        config: Mapping[str, Any],
        packs: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        loggers: Sequence[Any] = (),
        host_identifier: str = "localhost",
        hostname: str | None = None,
        start_time: int | None = None,
        tick_seconds: int | None = None,
        event_format: bool = True,
        snapshot_event_format: bool = False,
        numerics: bool = False,
        decorations_top_level: bool = False,
        pack_delimiter: str = "_",
        epoch: int = 0,
        osquery_version: str = OSQUERY_VERSION,
    ) -> None:
        self.engine = engine
        self.config = dict(config)
        self.packs = dict(packs if packs is not None else
                          {k: v for k, v in (config.get("packs") or {}).items()
                           if isinstance(v, Mapping)})
        self.loggers = list(loggers)
        self.host_identifier = host_identifier
        self.hostname = hostname or host_identifier
        self.event_format = event_format
        self.snapshot_event_format = snapshot_event_format
        self.numerics = numerics
        self.decorations_top_level = decorations_top_level
        self.delimiter = pack_delimiter
        self.epoch = epoch
        self.osquery_version = osquery_version
        self.skipped: list[str] = []
        self.queries = self._collect()
        intervals = [q.interval for q in self.queries] or [60]
        self.tick_seconds = tick_seconds or reduce(gcd, intervals)
        lcm = reduce(lambda a, b: a * b // gcd(a, b), intervals + [60])
        base = start_time if start_time is not None else 1_700_000_000
        self.start_time = base - base % lcm  # a second every interval divides
        self.tick = 0
        self.lines: list[LogLine] = []
        self.errors: list[str] = []
        self._state: dict[str, _State] = {}
        self._decorations: dict[str, dict[str, str]] = {}
        self._discovery: dict[str, tuple[int, bool]] = {}
        self._status_wanted: list[Any] = []
        self._started = False

    # -- schedule ------------------------------------------------------------------------
    def _collect(self) -> list[ScheduledQuery]:
        build = self.engine.platform
        found: list[ScheduledQuery] = []

        def add(name: str, spec: Mapping[str, Any], pack: str | None) -> None:
            if not isinstance(spec, Mapping) or not isinstance(spec.get("query"), str):
                self.skipped.append(f"{name}: no query")
                return
            interval = _interval(spec.get("interval"))
            if interval is None:
                self.skipped.append(f"{name}: interval must be 1..{MAX_INTERVAL} seconds")
                return
            platform = str(spec.get("platform") or "")
            if not platform_matches(platform, build):
                self.skipped.append(f"{name}: platform {platform!r} does not match {build}")
                return
            version = str(spec.get("version") or "")
            if not _version_at_least(version, self.osquery_version):
                self.skipped.append(f"{name}: needs osquery {version}")
                return
            shard = int(spec.get("shard") or 0)
            if shard and shard < host_shard(self.hostname):
                self.skipped.append(f"{name}: shard {shard} excludes this host")
                return
            found.append(ScheduledQuery(
                name=name, sql=spec["query"], interval=interval,
                snapshot=osquery_bool(spec.get("snapshot"), False),
                removed=osquery_bool(spec.get("removed"), True), pack=pack, platform=platform,
                version=version, shard=shard))

        for name, spec in (self.config.get("schedule") or {}).items():
            add(name, spec, None)
        for pack_name, pack in self.packs.items():
            platform = str(pack.get("platform") or "")
            if not platform_matches(platform, build):
                self.skipped.append(
                    f"pack {pack_name}: platform {platform!r} does not match {build}")
                continue
            if not _version_at_least(str(pack.get("version") or ""), self.osquery_version):
                self.skipped.append(f"pack {pack_name}: needs osquery {pack.get('version')}")
                continue
            shard = int(pack.get("shard") or 0)
            if shard and shard < host_shard(self.hostname):
                self.skipped.append(f"pack {pack_name}: shard {shard} excludes this host")
                continue
            seen = set()
            for query_name, spec in (pack.get("queries") or {}).items():
                if query_name in seen:  # later duplicates are dropped
                    continue
                seen.add(query_name)
                log_name = f"pack{self.delimiter}{pack_name}{self.delimiter}{query_name}"
                add(log_name, spec, pack_name)
        return found

    # -- loggers -------------------------------------------------------------------------
    def _start(self) -> None:
        self._started = True
        for logger in self.loggers:
            logger.call({"init": "osqueryd"})
            features = logger.call({"action": "features"})
            if features.code & 1:  # any code with bit 0 asks for status logs
                self._status_wanted.append(logger)
        self._decorate("load", self.config.get("decorators", {}).get("load", []))

    def _status(self, severity: int, message: str, now: int) -> None:
        if not self._status_wanted:
            return
        entry = {"s": severity, "f": "scheduler.cpp", "i": 0, "m": message,
                 "h": self.host_identifier, "c": _calendar(now), "u": now}
        for logger in self._status_wanted:
            logger.call({"status": "true", "log": json.dumps([entry], separators=(",", ":"))})

    def _send(self, kind: str, line: str, name: str) -> None:
        self.lines.append(LogLine(kind, line, name, self.tick))
        request = {"string": line, "category": "event"} if kind == "string" else {"snapshot": line}
        answer: Response | None = None
        for logger in self.loggers:
            answer = logger.call(request)
        # osqueryd checks the answer of the last logger in --logger_plugin (§4.5, §4.6).
        if answer is not None and answer.code != 0:
            raise SchedulerStopped(f"Error logging the results of query: {name}: {answer.message}")

    # -- decorators ----------------------------------------------------------------------
    def _decorate(self, source: str, queries: Iterable[str]) -> None:
        merged: dict[str, str] = {}
        for sql in queries:
            try:
                result = self.engine.query(sql)
            except QueryError as exc:
                self.errors.append(f"decorator {source}: {exc}")
                continue
            if result.rows:
                merged.update({k: result_text(v) for k, v in result.rows[0].items()})
        self._decorations[source] = merged

    def decorations(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for source in ["load", *sorted(k for k in self._decorations if k.startswith("interval")),
                       "always"]:
            merged.update(self._decorations.get(source, {}))
        return merged

    # -- running -------------------------------------------------------------------------
    def run(self, ticks: int) -> list[LogLine]:
        """Advance ``ticks`` ticks; returns the lines logged during them."""
        first = len(self.lines)
        for _ in range(ticks):
            self.step()
        return self.lines[first:]

    def step(self) -> list[LogLine]:
        if not self._started:
            self._start()
        self.tick += 1
        self.engine.tick = self.tick
        first = len(self.lines)
        start = self.start_time + (self.tick - 1) * self.tick_seconds
        for second in range(start, start + self.tick_seconds):
            self._second(second)
        return self.lines[first:]

    def _second(self, now: int) -> None:
        for query in self.queries:
            if now % query.interval == 0:
                self._launch(query, now)
        decorators = self.config.get("decorators", {}) or {}
        if now % 60 == 0:
            for interval, queries in (decorators.get("interval") or {}).items():
                try:
                    seconds = int(interval)
                except ValueError:
                    continue
                if seconds > 0 and seconds % 60 == 0 and now % seconds == 0:
                    self._decorate(f"interval{seconds:09d}", queries)

    def _pack_active(self, pack_name: str, now: int) -> bool:
        pack = self.packs.get(pack_name) or {}
        discovery = pack.get("discovery") or []
        if not discovery:
            return True
        cached = self._discovery.get(pack_name)
        if cached is not None and now - cached[0] < PACK_REFRESH_INTERVAL:
            return cached[1]
        active = True
        for sql in discovery:
            try:
                if not self.engine.query(sql).rows:
                    active = False
                    break
            except QueryError as exc:
                self.errors.append(f"discovery of pack {pack_name}: {exc}")
                active = False
                break
        self._discovery[pack_name] = (now, active)
        return active

    def _launch(self, query: ScheduledQuery, now: int) -> None:
        if query.pack is not None and not self._pack_active(query.pack, now):
            return
        self._decorate("always", (self.config.get("decorators", {}) or {}).get("always", []))
        try:
            result = self.engine.query(query.sql)
        except QueryError as exc:
            message = f"Error executing scheduled query {query.name}: {exc.message}"
            self.errors.append(message)
            log.error("%s", message)
            self._status(2, message, now)
            return
        rows = [{k: _typed(v) for k, v in row.items()} for row in result.rows]
        common = self._common(query, now)
        if query.snapshot:
            common["counter"] = 0
            self._log_snapshot(query, rows, common)
            return
        state = self._state.get(query.name)
        fresh = state is None or state.epoch != self.epoch
        new_sql = state is not None and state.sql != query.sql
        removed: list[dict[str, Any]]
        if state is None or fresh or new_sql:  # "state is None" (fresh) spelled out for mypy
            added, removed = list(rows), []
            counter = 0
        else:
            added, removed = diff_rows(state.rows, rows)
            counter = state.counter + 1 if added or removed else state.counter
        changed = bool(added or removed)
        if fresh or new_sql or changed:
            self._state[query.name] = _State(rows, counter, self.epoch, query.sql)
        if not query.removed:
            removed = []
        common["counter"] = counter
        if self.event_format:
            for action, items in (("removed", removed), ("added", added)):
                for row in items:
                    line = {**common, "columns": self._row(row), "action": action}
                    self._send("string", _dump(line), query.name)
        elif added or removed or fresh or new_sql:  # a first run is logged even when empty
            line = {"diffResults": {"removed": [self._row(r) for r in removed],
                                    "added": [self._row(r) for r in added]}, **common}
            self._send("string", _dump(line), query.name)

    def _log_snapshot(self, query: ScheduledQuery, rows: list[dict[str, Any]],
                      common: dict[str, Any]) -> None:
        if self.snapshot_event_format:
            for row in rows:
                line = {**common, "columns": self._row(row), "action": "snapshot"}
                self._send("snapshot", _dump(line), query.name)
        else:
            line = {"snapshot": [self._row(r) for r in rows], "action": "snapshot", **common}
            self._send("snapshot", _dump(line), query.name)

    def _common(self, query: ScheduledQuery, now: int) -> dict[str, Any]:
        common: dict[str, Any] = {
            "name": query.name, "hostIdentifier": self.host_identifier,
            "calendarTime": _calendar(now), "unixTime": now, "epoch": self.epoch,
            "counter": 0, "numerics": self.numerics}
        decorations = self.decorations()
        if decorations:
            if self.decorations_top_level:
                common.update(decorations)
            else:
                common["decorations"] = decorations
        return common

    def _row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if self.numerics:
            return {k: row[k] for k in sorted(row)}
        return {k: result_text(row[k]) for k in sorted(row)}


def _calendar(now: int) -> str:
    # osquery's getAsciiTime(): asctime() of UTC without its newline, plus " UTC".
    return time.asctime(time.gmtime(now)) + " UTC"


def _dump(line: Mapping[str, Any]) -> str:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False)
