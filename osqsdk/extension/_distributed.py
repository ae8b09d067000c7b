"""Distributed plugins: queries on demand (osqueryd's distributed API, docs/protocol.md §6)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from osqsdk.extension._plugin import Plugin, Response

__all__ = ["DistributedPlugin", "DistributedQueries", "DistributedResult", "QueryStats",
           "parse_write_results"]

log = logging.getLogger("osqsdk.distributed")


@dataclass(frozen=True)
class DistributedQueries:
    """What ``get_queries`` hands osqueryd: ``{id: sql}``, discovery SQL per id (the query
    runs only where its discovery SQL returns rows), and an optional ``accelerate`` period
    in seconds (osqueryd then polls every 5 s for that long)."""

    queries: Mapping[str, str] = field(default_factory=dict)
    discovery: Mapping[str, str] = field(default_factory=dict)
    accelerate: int | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {"queries": dict(self.queries)}
        if self.discovery:
            body["discovery"] = dict(self.discovery)
        if self.accelerate is not None:
            body["accelerate"] = int(self.accelerate)
        return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True)
class QueryStats:
    wall_time_ms: int = 0
    user_time: int = 0
    system_time: int = 0
    memory: int = 0


@dataclass(frozen=True)
class DistributedResult:
    """One query's outcome: ``status`` 0 is success; ``message`` is osqueryd's error text."""

    query_id: str
    rows: list[dict[str, str]]
    status: int = 0
    message: str = ""
    stats: QueryStats | None = None

    @property
    def ok(self) -> bool:
        return self.status == 0


def _int(value: Any, default: int = 0) -> int:
    # osqueryd sends statuses and stats as numbers, some builds as numeric strings.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return default
    return default


def parse_write_results(text: str) -> list[DistributedResult]:
    """Parse writeResults' JSON, tolerant of the shapes osqueryd sends (numbers as strings,
    ``""`` for an empty row list, missing sections). Raises ValueError if it is not JSON."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"writeResults is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("writeResults is not a JSON object")
    sections = {}
    for key in ("queries", "statuses", "messages", "stats"):
        value = data.get(key)
        if value is None or value == "":
            value = {}
        if not isinstance(value, dict):
            raise ValueError(f"writeResults {key!r} must be an object")
        sections[key] = value
    ids = list(dict.fromkeys([*sections["queries"], *sections["statuses"]]))
    results = []
    for query_id in ids:
        rows = sections["queries"].get(query_id) or []
        if not isinstance(rows, list):
            raise ValueError(f"writeResults rows of {query_id!r} must be a list")
        rows = [{str(k): "" if v is None else str(v) for k, v in row.items()}
                for row in rows if isinstance(row, dict)]
        raw_stats = sections["stats"].get(query_id)
        stats = None
        if isinstance(raw_stats, dict) and raw_stats:
            stats = QueryStats(*(_int(raw_stats.get(k)) for k in
                                 ("wall_time_ms", "user_time", "system_time", "memory")))
        message = sections["messages"].get(query_id, "")
        results.append(DistributedResult(
            query_id=str(query_id), rows=rows, status=_int(sections["statuses"].get(query_id), 0),
            message=message if isinstance(message, str) else str(message), stats=stats))
    return results


class DistributedPlugin(Plugin):
    """A source of on-demand queries (``--distributed_plugin=<name>``,
    ``--disable_distributed=false``).

    osqueryd calls ``get_queries()`` every ``--distributed_interval`` seconds; return a
    ``DistributedQueries`` (or a mapping with the same keys, or ``{id: sql}``). After running
    them it calls ``write_results(results)`` with a list of ``DistributedResult``. If
    ``write_results`` raises, osqueryd keeps the results and sends them again next time.
    """

    registry = "distributed"

    def __init__(self, name: str, get_queries: Callable[[], Any],
                 write_results: Callable[[list[DistributedResult]], Any]) -> None:
        self.name = name
        self.get_queries = get_queries
        self.write_results = write_results

    def call(self, request: Mapping[str, str]) -> Response:
        action = request.get("action")
        if action == "getQueries":
            work = self.get_queries()
            if not isinstance(work, DistributedQueries):
                work = self._coerce(work)
            return Response.ok([{"results": work.to_json()}])
        if action == "writeResults":
            try:
                results = parse_write_results(request.get("results", ""))
            except ValueError as exc:
                return Response.failed(f"distributed {self.name!r}: {exc}")
            self.write_results(results)
            return Response.ok()
        return Response.failed(f"distributed {self.name!r}: unknown action {action!r}")

    @staticmethod
    def _coerce(work: Any) -> DistributedQueries:
        if work is None:
            return DistributedQueries()
        if not isinstance(work, Mapping):
            raise TypeError("get_queries must return DistributedQueries or a mapping")
        if set(work) <= {"queries", "discovery", "accelerate"}:
            return DistributedQueries(dict(work.get("queries") or {}),
                                      dict(work.get("discovery") or {}), work.get("accelerate"))
        return DistributedQueries(dict(work))
