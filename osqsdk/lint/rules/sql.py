"""OSQ1xx: the query against SQLite and the osquery schema."""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp

from osqsdk.lint._model import QueryUnit
from osqsdk.lint._rule import QueryRule, Report, SqlAnchor
from osqsdk.lint._sql import suggest
from osqsdk.schema import Schema, version_key

__all__ = ["AmbiguousColumn", "DoubleQuotedString", "DuplicateOutputColumn",
           "LikeWithoutWildcard", "MultipleStatements", "NotASelect", "SelectStar",
           "UnknownColumn", "UnknownFunction", "UnknownTable", "WrongArgumentCount"]


class MultipleStatements(QueryRule):
    """A query string holds more than one SQL statement.

    ## Why is this bad?
    osquery runs every `;`-separated statement of the string, but only one result set is
    logged under the query's name, and a failure in any statement fails the query. It is
    usually a leftover of pasting two queries together.

    ## Example
    ```sql
    SELECT * FROM users; SELECT * FROM groups;
    ```
    Use instead:
    Two scheduled queries, one per statement.
    """

    code = "OSQ101"
    name = "multiple-statements"
    severity = "warning"
    message = "{count} statements in one query; osquery runs each of them"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        from osqsdk.lint._judge import split_statements

        spans = split_statements(unit.record.sql)
        if len(spans) > 1:
            start, end = spans[1]
            text = unit.record.sql[start:end]
            lead = len(text) - len(text.lstrip())
            yield self.report(SqlAnchor(start + lead, end), count=len(spans))


class NotASelect(QueryRule):
    """The statement is not a SELECT.

    ## Why is this bad?
    osquery is read-only: scheduled and distributed queries are expected to be SELECT
    statements (a WITH or UNION of them is fine). Anything else fails or, for the few
    writable extension tables, changes state on every host at every interval.

    ## Example
    ```sql
    ATTACH '/tmp/x.db' AS x;
    ```
    Use instead:
    ```sql
    SELECT * FROM file WHERE path = '/tmp/x.db';
    ```
    """

    code = "OSQ102"
    name = "not-a-select"
    message = "{statement} statement; osquery queries must be SELECT"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        refused = unit.refused_as("not_select")
        if refused is None:  # SQLite compiles it as a query (docs/lint.md §1.6)
            return
        text = unit.record.sql[refused.start:refused.end].strip()
        word = re.match(r"\w+", text)
        yield self.at_refusal(unit, refused, statement=word.group().upper() if word else text)


class UnknownTable(QueryRule):
    """The query reads a table the osquery schema does not have.

    ## Why is this bad?
    Every run fails with `no such table` in osqueryd's log and the query returns nothing.
    The usual causes are a typo, a table of another osquery release, or an extension table
    the linter was not told about.

    ## Example
    ```sql
    SELECT * FROM proceses;
    ```
    Use instead:
    ```sql
    SELECT * FROM processes;
    ```

    ## Options
    `schema` (extension tables), `fleetd`, `osquery-version`.
    """

    code = "OSQ103"
    name = "unknown-table"
    message = "no such table: {table}{detail}"
    hint = "did you mean {suggestion!r}?"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        schema = unit.schema
        version = unit.settings.osquery_version
        refused = unit.refused_as("table")  # SQLite decides (docs/lint.md §1.6)
        found = False
        for a in unit.analyses:
            for src in a.unknown_tables if refused is not None else ():
                found = True
                name = src.display
                detail = ""
                removed = schema.removed_table(name)
                if removed is not None and removed.until:
                    detail = f" (removed after osquery {removed.until})"
                fleet = unit.fleetd.table(name) if unit.fleetd is not None else None
                if fleet is not None and not detail:
                    detail = " (a Fleet fleetd table, not core osquery)"
                yield self.at(src.node.this if isinstance(src.node, exp.Table) else src.node,
                              table=name, detail=detail,
                              suggestion=suggest(name, list(schema.tables)))
            if version:
                for src, t in a.tables():
                    if t.origin != "osquery" or not t.since:
                        continue
                    first = _first_release(schema, src.display, t.since)
                    if version_key(first) > version_key(version) and \
                            not _named_so_since(schema, src.display, version):
                        yield self.at(src.node.this, table=src.display,
                                      detail=f" in osquery {version} (added in {first})",
                                      suggestion=None)
        if refused is not None and not found and refused.name:
            yield self.at_refusal(unit, refused, table=refused.name, detail="",
                                  suggestion=suggest(refused.name, list(schema.tables)))


def _named_so_since(schema: Schema, name: str, version: str) -> bool:
    """Whether a table was called ``name`` in osquery ``version``: a table renamed later
    keeps its old name as an alias (``yara``, ``yara_file`` since 5.23.0)."""
    old = schema.removed_table(name)
    return (old is not None and old.since is not None
            and version_key(old.since) <= version_key(version)
            and (old.until is None or version_key(version) <= version_key(old.until)))


def _first_release(schema: Schema, name: str, since: str) -> str:
    """The first release that had a table called ``name``: a renamed table's old name is
    older than the table's current one."""
    old = schema.removed_table(name)
    if old is not None and old.since and version_key(old.since) < version_key(since):
        return old.since
    return since


class UnknownColumn(QueryRule):
    """The query names a column that its table (or subquery) does not have.

    ## Why is this bad?
    SQLite refuses the statement with `no such column`, so osqueryd logs an error at every
    interval and the query never returns rows.

    ## Example
    ```sql
    SELECT pid, nmae FROM processes;
    ```
    Use instead:
    ```sql
    SELECT pid, name FROM processes;
    ```

    ## Known problems
    Columns of table-valued functions other than `json_each`/`json_tree` and of extension
    tables without a schema are not checked.

    ## Options
    `schema` (extension tables), `osquery-version` (columns added in a later release are
    reported too).
    """

    code = "OSQ104"
    name = "unknown-column"
    message = "no such column: {column}{where}"
    hint = "did you mean {suggestion!r}?"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        version = unit.settings.osquery_version
        refused = unit.refused_as("column")  # SQLite decides (docs/lint.md §1.6)
        found = False
        for a in unit.analyses:
            for ref in a.columns:
                if ref.status in ("unknown", "unknown-qualifier") and refused is None:
                    continue
                if ref.status in ("unknown", "unknown-qualifier"):
                    found = True
                if ref.status == "unknown":
                    sources = [ref.source] if ref.source else ref.candidates
                    names = [n for s in sources if s for n in s.column_names()]
                    where = ""
                    if ref.source is not None:
                        where = f" in {ref.source.display}"
                        t = ref.source.table
                        if t is not None and ref.name in t.removed_columns:
                            where += f" (removed after osquery {t.removed_columns[ref.name]})"
                    elif sources:
                        where = " in " + ", ".join(s.display for s in sources if s.display)
                    shown = f"{ref.qualifier}.{ref.name}" if ref.qualifier else ref.name
                    yield self.at(ref.node, column=shown, where=where,
                                  suggestion=suggest(ref.name, names) if names else None)
                elif ref.status == "unknown-qualifier":
                    yield self.at(ref.node, column=f"{ref.qualifier}.{ref.name}",
                                  where=f" (no table or alias {ref.qualifier!r})",
                                  suggestion=None)
                elif version and ref.column is not None and ref.column.since and \
                        version_key(ref.column.since) > version_key(version):
                    yield self.at(ref.node, column=ref.name,
                                  where=f" in osquery {version} (added in {ref.column.since})",
                                  suggestion=None)
            for node, name, src in a.using_errors if refused is not None else ():
                found = True
                where = f" in {src.display}" if src is not None else " on the left of the join"
                yield self.at(node, column=name, where=where + " (JOIN ... USING)",
                              suggestion=None)
        if refused is not None and not found:
            yield self.at_refusal(unit, refused, column=refused.name or "?", where="",
                                  suggestion=None)


class AmbiguousColumn(QueryRule):
    """An unqualified column exists in more than one joined table.

    ## Why is this bad?
    SQLite refuses the statement with `ambiguous column name`; the query fails at every run.

    ## Example
    ```sql
    SELECT uid FROM users JOIN processes ON users.uid = processes.uid;
    ```
    Use instead:
    ```sql
    SELECT users.uid FROM users JOIN processes ON users.uid = processes.uid;
    ```
    """

    code = "OSQ105"
    name = "ambiguous-column"
    message = "ambiguous column name: {column} (in {tables})"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        refused = unit.refused_as("ambiguous")  # SQLite decides (docs/lint.md §1.6)
        if refused is None:
            return
        found = False
        for a in unit.analyses:
            for ref in a.columns:
                if ref.status == "ambiguous":
                    found = True
                    yield self.at(ref.node, column=ref.name,
                                  tables=", ".join(s.display for s in ref.candidates))
        if not found:
            yield self.at_refusal(unit, refused, column=refused.name or "?",
                                  tables="more than one table")


class UnknownFunction(QueryRule):
    """The query calls a function that neither SQLite nor osquery provides.

    ## Why is this bad?
    SQLite refuses the statement with `no such function`. Functions of other databases
    (`LEN`, `NOW`, `CONCAT_WS` before osquery added it, `REGEXP`) are the usual cause.

    ## Example
    ```sql
    SELECT LEN(name) FROM processes;
    ```
    Use instead:
    ```sql
    SELECT length(name) FROM processes;
    ```
    """

    code = "OSQ106"
    name = "unknown-function"
    message = "no such function: {function}"
    hint = "did you mean {suggestion!r}?"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        refused = unit.refused_as("function")  # SQLite decides (docs/lint.md §1.6)
        if refused is None:
            return
        known = unit.functions
        found = False
        for a in unit.analyses:
            for call in a.functions:
                if call.name.lower() not in known:
                    found = True
                    yield self.at(call.node, function=call.name,
                                  suggestion=suggest(call.name, list(known)))
            for node in a.statement.find_all(exp.RegexpLike):
                if "regexp" not in known:
                    found = True
                    yield self.at(node, function="REGEXP (operator)", suggestion="regex_match")
        if not found:
            name = refused.name or "?"
            yield self.at_refusal(unit, refused, function=name,
                                  suggestion=suggest(name, list(known)))


class WrongArgumentCount(QueryRule):
    """A function is called with a number of arguments it does not accept.

    ## Why is this bad?
    SQLite refuses the statement (`wrong number of arguments to function`), so the query
    fails at every run.

    ## Example
    ```sql
    SELECT regex_match(path, '^/tmp') FROM processes;
    ```
    Use instead:
    ```sql
    SELECT regex_match(path, '^/tmp', 0) FROM processes;
    ```
    """

    code = "OSQ107"
    name = "wrong-argument-count"
    message = "{function}() takes {expected} argument(s), not {count}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        refused = unit.refused_as("arguments")  # SQLite decides (docs/lint.md §1.6)
        if refused is None:
            return
        known = unit.functions
        found = False
        for a in unit.analyses:
            for call in a.functions:
                allowed = known.get(call.name.lower())
                if not allowed or -1 in allowed or call.nargs in allowed:
                    continue
                found = True
                expected = " or ".join(str(n) for n in sorted(allowed))
                yield self.at(call.node, function=call.name, expected=expected,
                              count=call.nargs)
        if not found:
            from osqsdk.lint._sql import written_arguments

            name = refused.name or "?"
            allowed = known.get(name.lower(), ())
            count = (written_arguments(unit.record.sql, refused.offset)
                     if refused.offset is not None else None)
            yield self.at_refusal(unit, refused, function=name,
                                  expected=" or ".join(str(n) for n in sorted(allowed)) or "?",
                                  count="?" if count is None else count)


class DoubleQuotedString(QueryRule):
    """A double-quoted word that matches no column is read by SQLite as a string.

    ## Why is this bad?
    In SQL, `"x"` names a column; SQLite falls back to the string `'x'` when no column has
    that name. The query then compares against a string by accident, and silently changes
    meaning as soon as a table gains a column with that name.

    ## Example
    ```sql
    SELECT * FROM users WHERE shell = "/bin/bash";
    ```
    Use instead:
    ```sql
    SELECT * FROM users WHERE shell = '/bin/bash';
    ```
    """

    code = "OSQ108"
    name = "double-quoted-string"
    severity = "warning"
    message = 'double-quoted "{text}" is not a column; SQLite reads it as a string'
    hint = "use single quotes for strings"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for ref in a.columns:
                if ref.status == "quoted-string":
                    yield self.at(ref.node, text=ref.name)


class DuplicateOutputColumn(QueryRule):
    """Two result columns have the same name.

    ## Why is this bad?
    osquery logs each row as a map from column name to value, so one of the values is lost
    in results and differential logs.

    ## Example
    ```sql
    SELECT p.name, u.name FROM processes p JOIN users u USING (uid);
    ```
    Use instead:
    ```sql
    SELECT p.name AS process, u.name AS user FROM processes p JOIN users u USING (uid);
    ```
    """

    code = "OSQ109"
    name = "duplicate-output-column"
    severity = "warning"
    message = "result column {column!r} appears {count} times; osquery keeps only one"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            if not a.outputs:
                continue
            seen: dict[str, int] = {}
            for name in a.outputs:
                seen[name.lower()] = seen.get(name.lower(), 0) + 1
            for name, count in seen.items():
                if count > 1:
                    node = next((n for n in a.output_nodes
                                 if n.alias_or_name.lower() == name), None)
                    yield self.at(node, column=name, count=count)


class SelectStar(QueryRule):
    """The query selects `*`.

    ## Why is this bad?
    `SELECT *` logs every column, including ones nobody reads, and the result changes shape
    whenever osquery adds a column to the table, which shows up as a flood of differential
    changes after an upgrade.

    ## Example
    ```sql
    SELECT * FROM users;
    ```
    Use instead:
    ```sql
    SELECT uid, username, shell FROM users;
    ```
    """

    code = "OSQ110"
    name = "select-star"
    severity = "info"
    message = "SELECT * returns every column of {tables}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for node, block, sources in a.stars:
                if block.parent is not None:
                    continue  # inside EXISTS (...) or a subquery: harmless
                if any(s.table is not None and s.table.evented for s in sources):
                    continue  # OSQ304 reports this star (one finding per problem)
                tables = [s.display for s in sources if s.kind in ("table", "view")]
                if tables:
                    yield self.at(node, tables=", ".join(tables))


class LikeWithoutWildcard(QueryRule):
    """`LIKE` with a pattern that has no `%` or `_`.

    ## Why is this bad?
    Without a wildcard, `LIKE` is a case-insensitive equality. Either a wildcard was
    forgotten, or `=` says what is meant (and is cheaper for osquery's path tables).

    ## Example
    ```sql
    SELECT * FROM file WHERE path LIKE '/etc/';
    ```
    Use instead:
    ```sql
    SELECT * FROM file WHERE path LIKE '/etc/%';
    ```
    """

    code = "OSQ111"
    name = "like-without-wildcard"
    severity = "info"
    message = "LIKE {pattern!r} has no wildcard; it is a case-insensitive ="

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        for a in unit.analyses:
            for node in a.statement.find_all(exp.Like):
                pat = node.expression
                if isinstance(pat, exp.Literal) and pat.is_string:
                    text = str(pat.this)
                    if "%" not in text and "_" not in text:
                        yield self.at(node, pattern=text)
