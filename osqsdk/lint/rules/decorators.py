"""OSQ5xx: decorator queries, which add columns to every result osquery logs."""

from __future__ import annotations

from collections.abc import Iterator

from sqlglot import exp

from osqsdk.lint._model import Document, QueryUnit
from osqsdk.lint._rule import DocAnchor, DocumentRule, QueryRule, Report
from osqsdk.lint._sql import Analysis

__all__ = ["DecoratorColumnCollision", "DecoratorIntervalNotMinute", "DecoratorMultipleRows"]

_AGGREGATES = (exp.AggFunc,)


def _single_row(analysis: Analysis) -> bool:
    from osqsdk.lint._cost import table_class

    statement = analysis.statement
    if not isinstance(statement, exp.Select):
        return False
    limit = statement.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Literal) and \
            str(limit.expression.this) in ("0", "1"):
        return True
    if statement.args.get("group") is None and any(
            isinstance(p.unalias(), _AGGREGATES) for p in statement.expressions):
        return True
    if not analysis.sources:
        return True  # SELECT 'x' AS y
    tables = list(analysis.tables())
    return bool(tables) and len(tables) == len(analysis.sources) and all(
        table_class(table.name)[0] == "single-row" for _, table in tables)


class DecoratorMultipleRows(QueryRule):
    """A decorator query can return more than one row.

    ## Why is this bad?
    osquery uses only the first row of a decorator and logs `Multiple rows returned for
    decorator query`; which row comes first is up to the table, so the decoration changes
    from run to run.

    ## Example
    ```sql
    SELECT user AS username FROM logged_in_users;
    ```
    Use instead:
    ```sql
    SELECT user AS username FROM logged_in_users ORDER BY time DESC LIMIT 1;
    ```

    ## Known problems
    Single-row tables are known from `schema/cost.json` (`system_info`, `os_version`,
    `osquery_info`, `uptime`, `time`, ...); a WHERE that selects one row is not recognised.
    """

    code = "OSQ501"
    name = "decorator-multiple-rows"
    severity = "warning"
    message = "decorator query can return several rows; osquery uses only the first"
    hint = "add LIMIT 1 or aggregate"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        if unit.record.kind != "decorator" or unit.analysis is None:
            return
        if not _single_row(unit.analysis):
            yield self.at(None)


class DecoratorIntervalNotMinute(DocumentRule):
    """A decorator interval is not a whole number of minutes.

    ## Why is this bad?
    osquery runs interval decorators on a one-minute tick and skips keys that are not a
    multiple of 60 (`Invalid decorator interval rate`), so those decorators never run.

    ## Example
    ```json
    {"decorators": {"interval": {"90": ["SELECT total_seconds AS uptime FROM uptime"]}}}
    ```
    Use instead:
    ```json
    {"decorators": {"interval": {"120": ["SELECT total_seconds AS uptime FROM uptime"]}}}
    ```
    """

    code = "OSQ502"
    name = "decorator-interval-not-minute"
    message = ("decorator interval {key!r} is not a positive multiple of 60 seconds; osquery "
               "skips it")

    def check(self, document: Document) -> Iterator[Report]:
        from osqsdk._osquery.config import parse_interval

        seen = set()
        for rec in document.queries:
            if rec.decorator != "interval":
                continue
            key = rec.path[-2]
            base = rec.path[:-1]
            if base in seen:
                continue
            seen.add(base)
            value = parse_interval(key)
            if value is None or value <= 0 or value % 60:
                yield self.report(DocAnchor(base, key=True), key=key)


class DecoratorColumnCollision(DocumentRule):
    """Two decorators produce a column of the same name.

    ## Why is this bad?
    Decorations are merged into one map per result, so one decorator's value overwrites
    the other's, depending on the order osquery happens to run them.

    ## Example
    ```json
    {"decorators": {"load": ["SELECT hostname AS host FROM system_info",
                             "SELECT computer_name AS host FROM system_info"]}}
    ```
    Use instead:
    ```json
    {"decorators": {"load": ["SELECT hostname AS host FROM system_info",
                             "SELECT computer_name AS computer FROM system_info"]}}
    ```
    """

    code = "OSQ503"
    name = "decorator-column-collision"
    severity = "warning"
    message = "decorator column {column!r} is also produced by {other}"

    def check(self, document: Document) -> Iterator[Report]:
        from osqsdk.lint._sql import parse

        seen: dict[str, str] = {}
        for rec in document.queries:
            if rec.kind != "decorator":
                continue
            parsed = parse(rec.sql)
            if not parsed.statements or not isinstance(parsed.statements[0], exp.Select):
                continue
            for proj in parsed.statements[0].expressions:
                if isinstance(proj, exp.Star) or (isinstance(proj, exp.Column)
                                                  and isinstance(proj.this, exp.Star)):
                    continue
                name = proj.alias_or_name.lower()
                if name in seen and seen[name] != rec.name:
                    yield self.report(DocAnchor(rec.path), column=name, other=seen[name])
                seen.setdefault(name, rec.name)
