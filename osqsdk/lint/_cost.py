"""A static, explainable cost model for osquery queries.

Each table has a cost class (``schema/cost.json``): milliseconds per execution, typical row
count, and for tables that do work per constraint value (a pid, a path, a URL, a registry
key) the unit of that work. A query's cost is the sum over its tables; a per-value table is
multiplied by the number of values it will see: literals in ``=``/``IN``, paths a ``LIKE``
pattern expands to, or the rows of the table that drives it through a join. Daily cost is
that times ``86400 / interval``. Every term keeps a sentence saying where it came from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from osqsdk.lint._model import Document, QueryUnit
from osqsdk.lint._sql import Analysis, Source

__all__ = ["SCHEDULED_KINDS", "QueryCost", "Term", "cost_facts", "cost_report", "estimate",
           "pack_groups"]


@functools.lru_cache(maxsize=1)
def cost_facts() -> dict[str, Any]:
    from osqsdk.schema import read_data

    facts: dict[str, Any] = read_data("cost.json")
    return facts


@dataclass
class Term:
    table: str
    ms: float
    rows: float
    why: str
    cls: str


@dataclass
class QueryCost:
    """Estimated cost of one execution, its parts, and the estimated rows returned."""

    ms: float = 0.0
    rows: float = 1.0
    terms: list[Term] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.ms < 10:
            return "low"
        if self.ms < 100:
            return "moderate"
        if self.ms < 1000:
            return "high"
        return "very high"

    def explain(self) -> str:
        return "; ".join(f"{t.table}: {t.why}" for t in self.terms) or "no tables"


def table_class(name: str, evented: bool = False) -> tuple[str, dict[str, Any]]:
    facts = cost_facts()
    cls = facts["tables"].get(name)
    if cls is None:
        cls = "events" if evented else "unclassified"
    return cls, facts["classes"][cls]


def _values(constraints: list[Any], driver_rows: float) -> tuple[float, str] | None:
    """How many values a per-value table receives, from its constraints; None: none."""
    facts = cost_facts()["patterns"]
    best: tuple[float, str] | None = None
    for c in constraints:
        count: float
        why: str
        if c.op in ("in",) and isinstance(c.node, exp.In):
            items = c.node.expressions
            if c.node.args.get("query") is not None:
                count, why = driver_rows, "values from a subquery"
            else:
                count, why = max(1, len(items)), f"{max(1, len(items))} listed values"
        elif c.op in ("like", "glob") and isinstance(c.value, exp.Literal):
            pattern = str(c.value.this)
            if pattern.rstrip().endswith("%%") or "**" in pattern:
                count, why = facts["recursive"]["paths"], "a recursive %% pattern"
            elif "%" in pattern or "*" in pattern or "_" in pattern:
                levels = pattern.count("%") + pattern.count("*")
                count = float(facts["one-level"]["paths"]) * float(
                    facts["deeper-level"]["factor"]) ** max(0, min(levels, 4) - 1)
                why = f"a pattern with {levels} wildcard level(s)"
            else:
                count, why = 1, "one pattern without wildcards"
        elif c.value is not None and isinstance(c.value, exp.Column):
            count, why = driver_rows, "one value per row of the joined table"
        elif c.column == "directory":
            count, why = facts["directory"]["paths"], "every entry of a directory"
        elif c.op == "=" and c.value is None:  # USING join
            count, why = driver_rows, "one value per row of the joined table"
        else:
            count, why = 1, "one value"
        if best is None or count < best[0]:
            best = (count, why)
    return best


def estimate(analysis: Analysis) -> QueryCost:
    """Cost of one execution of the statement ``analysis`` describes."""
    cost = QueryCost()
    tables = [(s, s.table) for s in analysis.sources if s.table is not None and s.kind == "table"]
    flat_rows = 1.0
    for _, table in tables:
        cls, facts = table_class(table.name, table.evented)
        if "per" not in facts:
            flat_rows = max(flat_rows, float(facts["rows"]))
    for src, table in tables:
        cls, facts = table_class(table.name, table.evented)
        ms, rows = float(facts["ms"]), float(facts["rows"])
        if "per" in facts:
            constrained = analysis.constrained(src)
            keyed = [c for name, cs in constrained.items()
                     for c in cs if _is_key(src, name)]
            values = _values(keyed, flat_rows) if keyed else None
            if values is None:
                count = float(facts.get("unconstrained", 1))
                why = (f"{facts['ms']} ms per {facts['per']} x {count:g} "
                       f"({'every ' + facts['per'] if count > 1 else 'no constraint'})")
            else:
                count, how = values
                why = f"{facts['ms']} ms per {facts['per']} x {count:g} ({how})"
            produced = rows * count
            kept = _kept_rows(analysis, src, produced)
            if kept is not None and kept[0] < produced:
                produced, how = kept
                why += f", {how}"
            cost.terms.append(Term(table.name, ms * count, produced, why, cls))
        else:
            kept = _kept_rows(analysis, src, rows)
            why = f"{cls} ({facts['ms']} ms)"
            if kept is not None:
                rows, how = kept
                why += f", {how}"
            cost.terms.append(Term(table.name, ms, rows, why, cls))
    cost.ms = sum(t.ms for t in cost.terms)
    cost.rows = max([t.rows for t in cost.terms] or [1.0])
    return cost


def _kept_rows(analysis: Analysis, src: Source, rows: float) -> tuple[float, str] | None:
    """Rows a WHERE equality leaves of a table osquery reads whole: SQLite still filters
    every row (the time does not change), but only the matching ones are logged. One row per
    value on a key column, a handful (a hundredth of the table, at most 10) per value on any
    other; None when the query has no equality on the table."""
    best: tuple[float, str] | None = None
    for column, constraints in analysis.constrained(src).items():
        for c in constraints:
            if c.op in ("eq", "=") and isinstance(c.value, exp.Literal):
                values = 1
            elif c.op == "in" and isinstance(c.node, exp.In) and \
                    c.node.args.get("query") is None:
                values = max(1, len(c.node.expressions))
            else:
                continue
            if _is_key(src, column):
                kept, how = float(values), f"{values} row(s) kept by {column} ="
            else:
                kept = min(rows, values * min(10.0, max(1.0, rows / 100)))
                how = f"about {kept:g} row(s) kept by {column} ="
            if best is None or kept < best[0]:
                best = (kept, how)
    return best


def log_bytes_per_day(unit: QueryUnit) -> float:
    """Result-log bytes one host writes a day for ``unit`` (0: not scheduled): rows each run
    (all of them for a snapshot, about a twentieth changing for a differential query) times
    an estimated line size."""
    if unit.cost is None or not unit.record.runs_per_day:
        return 0.0
    width = len(unit.analysis.outputs or []) if unit.analysis else 5
    row_bytes = 60 + 30 * max(1, width)
    rows = unit.cost.rows if unit.record.snapshot else max(1.0, unit.cost.rows * 0.05)
    return float(unit.record.runs_per_day * rows * row_bytes)


def _is_key(src: Source, column: str) -> bool:
    col = src.table.column(column) if src.table is not None else None
    return col is not None and (col.index or col.required or col.additional)


#: Record kinds osquery runs on a schedule: their cost adds up per pack.
SCHEDULED_KINDS = ("schedule", "pack", "discovery", "fleet_query", "sql")


def pack_groups(units: list[QueryUnit]) -> dict[tuple[Document, str], list[QueryUnit]]:
    """Scheduled units that have an estimate, by document and pack (``schedule`` for a
    config's own schedule), in the order they were linted."""
    groups: dict[tuple[Document, str], list[QueryUnit]] = {}
    for unit in units:
        # a query without an interval (a .sql file, a Fleet query outside a pack) is not
        # scheduled by anything linted here
        if unit.cost is not None and unit.record.kind in SCHEDULED_KINDS and \
                unit.record.interval is not None:
            groups.setdefault((unit.document, unit.record.pack or "schedule"), []).append(unit)
    return groups


def cost_report(result: Any) -> str:
    """The cost model's view of every scheduled query of a lint run, grouped by pack:
    estimated ms per run, runs a day (86400 / interval), ms per day, and the terms behind
    the estimate; then each pack's total per day."""
    run = getattr(result, "run", None)
    groups = pack_groups(run.units if run else [])
    hosts = run.settings.hosts if run else None
    if not groups:
        return "Cost report: no scheduled queries."
    lines = ["Cost report (static estimate, see schema/cost.json):"]
    for (document, pack), members in groups.items():
        total = sum(u.ms_per_day for u in members)
        lines.append(f"{document.path}: pack {pack}: {total / 1000:,.1f} s of work per day "
                     f"over {len(members)} queries")
        for unit in members:
            record, cost = unit.record, unit.cost
            daily = unit.ms_per_day
            volume = ""
            if hosts:
                volume = (f", {_bytes(log_bytes_per_day(unit) * hosts)}/day of results "
                          f"from {hosts} hosts")
            lines.append(f"  {record.name:28s} {cost.label:9s} {cost.ms:8.1f} ms/run "
                         f"x {record.runs_per_day:7g} runs/day = {daily / 1000:9.1f} s/day"
                         f"{volume}  ({cost.explain()})")
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"
