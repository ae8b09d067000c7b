"""OSQ3xx: constraints osquery needs, event tables, and what a query costs to run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlglot import exp

from osqsdk.lint._cost import _bytes, log_bytes_per_day
from osqsdk.lint._model import Document, LintRun, QueryUnit
from osqsdk.lint._rule import DocAnchor, QueryRule, Report, RunRule

__all__ = ["EventTimeConstraint", "EventedTableInSnapshot", "EventedTableLogsRemoved",
           "FleetLoad", "IneffectiveOrderByLimit",
           "MissingRequiredConstraint", "PackOverBudget", "QueryOverBudget", "RecursiveGlob",
           "SelectStarOnEvents", "UnconstrainedExpensiveTable", "UserDataWithoutUsersJoin",
           "YaraWithoutSignature"]


class MissingRequiredConstraint(QueryRule):
    """A table that needs a WHERE constraint on a required column does not get one.

    ## Why is this bad?
    Tables such as `file`, `hash`, `curl` or `yara_file` cannot list everything; osquery
    refuses to run them without `path`, `url`, ... in the WHERE clause (`Table file was
    queried without a required column in the WHERE clause`), and the query fails.
    A constraint counts when it is `=`, `IN`, `LIKE`, `GLOB`, a comparison, or a join
    (`ON`/`USING`) on the column. Under `NOT` it does not count; under `OR` it counts only
    when every branch of the `OR` constrains a required column (SQLite then scans the table
    once per branch, each with its own constraint).

    ## Example
    ```sql
    SELECT path, size FROM file;
    ```
    Use instead:
    ```sql
    SELECT path, size FROM file WHERE directory = '/etc';
    ```

    ## Known problems
    Constraints that reach the table only through a view are not followed.
    """

    code = "OSQ301"
    name = "missing-required-constraint"
    message = "table {table} needs a constraint on {columns} in WHERE, ON or USING"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for src, table in a.tables():
                required = table.required_columns
                if not required:
                    continue
                if a.satisfies_any(src, {c.name.lower() for c in required}):
                    continue
                names = " or ".join(c.name for c in required)
                yield self.at(src.node.this, table=src.display, columns=names)


class RecursiveGlob(QueryRule):
    """A `LIKE` pattern on a path column ends in `%%`, a recursive directory walk.

    ## Why is this bad?
    osquery expands a trailing `%%` by walking every directory below the prefix (up to 64
    levels). On a home or system directory that is hundreds of thousands of entries per run,
    which trips the watchdog.

    ## Example
    ```sql
    SELECT path FROM file WHERE path LIKE '/Users/%/Library/%%';
    ```
    Use instead:
    ```sql
    SELECT path FROM file WHERE path LIKE '/Users/%/Library/LaunchAgents/%';
    ```
    """

    code = "OSQ302"
    name = "recursive-glob"
    severity = "warning"
    message = "{table}.{column} LIKE {pattern!r} walks everything below {prefix!r}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for c in a.constraints:
                if c.op not in ("like", "glob") or not isinstance(c.value, exp.Literal):
                    continue
                pattern = str(c.value.this)
                if pattern.rstrip().endswith("%%") and c.column in ("path", "directory"):
                    yield self.at(c.node, table=c.source.display, column=c.column,
                                  pattern=pattern, prefix=pattern.rstrip()[:-2])


class EventedTableInSnapshot(QueryRule):
    """An event table is read by a snapshot query.

    ## Why is this bad?
    Event tables return what happened since the previous run; a snapshot logs the whole
    buffer each time instead (up to `events_expiry`), so events are logged repeatedly and
    the result lines can grow past the logger's limit.

    ## Example
    ```json
    {"query": "SELECT * FROM process_events", "interval": 60, "snapshot": true}
    ```
    Use instead:
    ```json
    {"query": "SELECT pid, path, cmdline FROM process_events", "interval": 60}
    ```
    """

    code = "OSQ303"
    name = "evented-table-in-snapshot"
    severity = "warning"
    message = "event table {table} in a snapshot query"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        if not unit.record.snapshot:
            return
        for a in unit.analyses:
            for src, table in a.tables():
                if table.evented:
                    yield self.at(src.node.this, table=src.display)


class EventedTableLogsRemoved(QueryRule):
    """A differential query reads an event table and still logs removed rows.

    ## Why is this bad?
    An event table returns the events since the previous run, so every row of one run is
    gone at the next: a differential query logs each event twice, once `added` and once
    `removed`. The removed rows say nothing (the event did not un-happen) and double the log
    volume; `"removed": false` keeps only the added rows.

    ## Example
    ```json
    {"query": "SELECT pid, path, cmdline FROM process_events", "interval": 60}
    ```
    Use instead:
    ```json
    {"query": "SELECT pid, path, cmdline FROM process_events", "interval": 60,
     "removed": false}
    ```
    """

    code = "OSQ313"
    name = "evented-table-logs-removed"
    severity = "warning"
    message = ("event table {table} in a differential query that logs removed rows; "
               "they double the log volume")
    hint = 'add "removed": false to the query'

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        record = unit.record
        if record.kind not in ("schedule", "pack") or record.snapshot or \
                record.removed is False:
            return
        for a in unit.analyses:
            for src, table in a.tables():
                if table.evented:
                    yield self.at(src.node.this, table=src.display)
                    return


class SelectStarOnEvents(QueryRule):
    """`SELECT *` on an event table.

    ## Why is this bad?
    Event rows are wide (environment, command line, hashes) and arrive in volume; logging
    every column multiplies the result log and the backend's storage for columns nobody
    reads.

    ## Example
    ```sql
    SELECT * FROM process_events;
    ```
    Use instead:
    ```sql
    SELECT pid, path, cmdline, time FROM process_events;
    ```
    """

    code = "OSQ304"
    name = "select-star-on-events"
    severity = "warning"
    message = "SELECT * on event table {table}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for node, block, sources in a.stars:
                for src in sources:
                    if src.table is not None and src.table.evented and block.parent is None:
                        yield self.at(node, table=src.display)


class UnconstrainedExpensiveTable(QueryRule):
    """A table that does work per process, registry key or path is read without a key.

    ## Why is this bad?
    Tables like `process_open_files`, `process_memory_map` or `registry` visit every
    process (or hive) when their index column is not constrained, which is orders of
    magnitude more work than the query needs.

    ## Example
    ```sql
    SELECT * FROM process_open_files;
    ```
    Use instead:
    ```sql
    SELECT * FROM process_open_files WHERE pid IN (SELECT pid FROM processes WHERE name = 'sshd');
    ```
    """

    code = "OSQ305"
    name = "unconstrained-expensive-table"
    severity = "warning"
    message = "{table} without a constraint on {columns} visits every {unit_name}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        from osqsdk.lint._cost import table_class

        for a in unit.analyses:
            for src, table in a.tables():
                _, facts = table_class(table.name, table.evented)
                if facts.get("unconstrained", 1) <= 1 or table.required_columns:
                    continue
                keys = [c.name for c in table.columns if c.index or c.additional]
                if keys and not a.satisfies_any(src, {k.lower() for k in keys}):
                    yield self.at(src.node.this, table=src.display, columns=" or ".join(keys),
                                  unit_name=facts.get("per", "row"))


class QueryOverBudget(QueryRule):
    """A query's estimated cost per run or per day is over budget.

    ## Why is this bad?
    osquery's watchdog kills the worker when it uses more than its CPU share for a few
    seconds, and denylists the query that was running. Costly queries that run often also
    add up on every host of the fleet. The estimate comes from the static cost model
    (`schema/cost.json`): per-table costs, multiplied through constraints and joins, times
    86400 / interval runs a day.

    ## Example
    ```json
    {"query": "SELECT * FROM hash JOIN processes USING (path)", "interval": 10}
    ```
    Use instead:
    ```json
    {"query": "SELECT * FROM hash JOIN processes USING (path)", "interval": 3600}
    ```

    ## Options
    `budget.run-ms` (default 4000) and `budget.query-ms-per-day` (default 3600000).
    """

    code = "OSQ306"
    name = "query-over-budget"
    severity = "warning"
    message = "estimated {what} is {value} ms, over the budget of {budget} ms ({explain})"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        cost = unit.cost
        if cost is None:
            return
        s = unit.settings
        if cost.ms > s.run_ms:
            yield self.at(None, what="cost per run", value=round(cost.ms),
                          budget=round(s.run_ms), explain=cost.explain())
            return
        daily = unit.ms_per_day
        if daily > s.query_ms_per_day:
            yield self.at(None, what=f"cost per day ({unit.record.runs_per_day:g} runs)",
                          value=round(daily), budget=round(s.query_ms_per_day),
                          explain=cost.explain())


class PackOverBudget(RunRule):
    """The queries of one pack (or of the config's schedule) cost too much per day together.

    ## Why is this bad?
    Each query may be cheap, but a pack's queries all run on the same hosts; their sum is
    what osquery's worker spends, and what the watchdog and users notice.

    ## Example
    A pack of fifty process-list queries every ten seconds.

    Use instead:
    Longer intervals for queries whose data changes slowly, or fewer, joined queries.

    ## Options
    `budget.pack-ms-per-day` (default 21600000, six hours of CPU a day).
    """

    code = "OSQ307"
    name = "pack-over-budget"
    severity = "warning"
    message = ("pack {pack}: estimated {value} ms per day over {count} queries, over the budget "
               "of {budget} ms")

    def check(self, run: LintRun) -> Iterator[Report]:
        from osqsdk.lint._cost import pack_groups

        for (doc, pack), units in pack_groups(run.units).items():
            daily = sum(u.ms_per_day for u in units)
            if daily > run.settings.pack_ms_per_day:
                info = doc.packs.get(pack)
                path = info["path"] if info else ("schedule",) if pack == "schedule" else ()
                yield self.report(DocAnchor(path, key=True), document=doc, pack=pack,
                                  value=round(daily), count=len(units),
                                  budget=round(run.settings.pack_ms_per_day))


class IneffectiveOrderByLimit(QueryRule):
    """`ORDER BY` or `LIMIT` on a costly table does not make osquery do less work.

    ## Why is this bad?
    osquery produces every row of a table before SQLite sorts or limits them, so
    `LIMIT 10` on `processes` still reads every process; `ORDER BY` adds a sort, and in a
    scheduled query the order is lost anyway because results are logged as sets.

    ## Example
    ```sql
    SELECT pid, name FROM processes ORDER BY start_time DESC LIMIT 5;
    ```
    Use instead:
    ```sql
    SELECT pid, name FROM processes WHERE start_time > (SELECT unix_time - 600 FROM time);
    ```
    """

    code = "OSQ308"
    name = "ineffective-order-by-limit"
    severity = "info"
    message = ("{clause} does not reduce the work of reading {table}; osquery produces every row "
               "first")

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        if unit.record.kind in ("decorator", "view", "discovery"):
            return  # single-row picks and existence checks are what LIMIT is for
        cost = unit.cost
        if cost is None or cost.ms < 30:
            return
        a = unit.analysis
        if a is None or not isinstance(a.statement, exp.Select):
            return
        order, limit = a.statement.args.get("order"), a.statement.args.get("limit")
        if order is None and limit is None:
            return
        if a.statement.args.get("group") is not None:
            return
        heavy = max(cost.terms, key=lambda t: t.ms)
        clause = "ORDER BY ... LIMIT" if order is not None and limit is not None else \
            "LIMIT" if limit is not None else "ORDER BY"
        yield self.at(limit if limit is not None else order, clause=clause, table=heavy.table)


class FleetLoad(RunRule):
    """With `--hosts N`: what the config's schedule and intervals cost the whole fleet.

    ## Why is this bad?
    It is not bad in itself: this finding reports, per config, the requests per second the
    TLS endpoints receive (`config_refresh`, `distributed_interval`, `logger_tls_period`:
    one request per node per interval) and the estimated result-log volume per day, so a
    change in intervals shows its fleet-wide effect before it ships.

    ## Example
    `osqsdk lint --hosts 20000 osquery.conf` with `distributed_interval: 10` reports
    2,000 requests per second for distributed reads alone.

    Use instead:
    Longer intervals, or a budget the backend was sized for.

    ## Options
    `hosts` (or `--hosts`).
    """

    code = "OSQ309"
    name = "fleet-load"
    severity = "info"
    message = ("{hosts} hosts: {rps} requests/s to the remote API ({per_node} per host: "
               "{parts}); about {volume} of results per day")

    def check(self, run: LintRun) -> Iterator[Report]:
        hosts = run.settings.hosts
        if not hosts:
            return
        tops = [d for d in run.documents if d.kind in ("config", "fleet") and d.parent is None]
        if not tops and run.documents:
            tops = [run.documents[0]]
        for doc in tops:
            units = [u for u in run.units if _belongs(u.document, doc)]
            if not units and doc.kind == "fleet" and not doc.options:
                continue
            parts, per_node = _request_rate(doc.options)
            volume = sum(log_bytes_per_day(u) for u in units)
            yield self.report(DocAnchor(()), document=doc, hosts=hosts,
                              rps=f"{per_node * hosts:.1f}", per_node=f"{per_node:.4f}",
                              parts=", ".join(parts) or "no TLS intervals set",
                              volume=_bytes(volume * hosts))


def _belongs(doc: Document | None, top: Document) -> bool:
    while doc is not None:
        if doc is top:
            return True
        doc = doc.parent
    return False


def _request_rate(options: dict[str, Any]) -> tuple[list[str], float]:
    from osqsdk._osquery.config import parse_interval

    parts, rate = [], 0.0
    for name in ("config_refresh", "config_tls_refresh", "distributed_interval",
                 "logger_tls_period"):
        value = parse_interval(options.get(name)) if name in options else None
        if value and value > 0:
            rate += 1.0 / value
            parts.append(f"{name}={value}s")
    return parts, rate


class UserDataWithoutUsersJoin(QueryRule):
    """A per-user table is read without joining `users`.

    ## Why is this bad?
    Tables such as `shell_history`, `chrome_extensions` or `authorized_keys` read the home
    directory of the user osquery runs as unless the query names the users: run as root
    by osqueryd, they silently return root's data only (osquery warns once in its log).

    ## Example
    ```sql
    SELECT command FROM shell_history;
    ```
    Use instead:
    ```sql
    SELECT u.username, h.command FROM users u CROSS JOIN shell_history h USING (uid);
    ```

    ## Known problems
    Some of these tables (`python_packages`) also list system-wide entries, so an unjoined
    query is incomplete rather than empty.
    """

    code = "OSQ310"
    name = "user-data-without-users-join"
    severity = "info"
    message = "{table} reads one user's data unless joined with users (or given a uid)"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for src, table in a.tables():
                if not table.user_data or table.column("uid") is None:
                    continue
                if a.satisfies_any(src, {"uid"}):
                    continue
                yield self.at(src.node.this, table=src.display)


class EventTimeConstraint(QueryRule):
    """A scheduled query on an event table constrains `time`.

    ## Why is this bad?
    osquery's `events_optimize` makes a scheduled event query read only the events since
    its previous run; a constraint on `time` turns that off, so every run reads the whole
    buffer again and, unless the window matches the interval exactly, events are lost or
    logged twice.

    ## Example
    ```sql
    SELECT pid, path FROM process_events WHERE time > (SELECT unix_time - 300 FROM time);
    ```
    Use instead:
    ```sql
    SELECT pid, path FROM process_events;
    ```

    ## Known problems
    Ad-hoc (distributed) queries need the `time` window; the rule only looks at
    scheduled queries.
    """

    code = "OSQ311"
    name = "event-time-constraint"
    severity = "info"
    message = "constraint on {table}.time turns off osquery's events_optimize for this query"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        if unit.record.kind not in ("schedule", "pack", "sql") or not unit.record.interval:
            return
        for a in unit.analyses:
            for c in a.constraints:
                if c.column == "time" and c.source.table is not None and c.source.table.evented:
                    yield self.at(c.node, table=c.source.display)
                    break


class YaraWithoutSignature(QueryRule):
    """A YARA table is queried without a signature to scan with.

    ## Why is this bad?
    `yara_file` and `yara_process` need, besides the path or pid, one of `sig_group`,
    `sigfile` or `sigrule`; without one osquery has nothing to match and returns an error
    for every row. osquery's schema cannot mark "one of these three" as required, so the
    required-constraint rule does not see it.

    ## Example
    ```sql
    SELECT matches FROM yara_file WHERE path = '/bin/ls';
    ```
    Use instead:
    ```sql
    SELECT matches FROM yara_file WHERE path = '/bin/ls' AND sigfile = '/etc/osquery/yara/malware.yar';
    ```
    """  # noqa: E501

    code = "OSQ312"
    name = "yara-without-signature"
    message = "{table} needs sig_group, sigfile or sigrule in WHERE"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for src, table in a.tables():
                if table.name not in ("yara_file", "yara_process"):
                    continue
                if not a.satisfies_any(src, {"sig_group", "sigfile", "sigrule"}):
                    yield self.at(src.node.this, table=src.display)
