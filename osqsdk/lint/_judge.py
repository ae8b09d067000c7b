"""SQLite decides whether a query compiles (docs/lint.md §1.6).

:class:`Judge` keeps an in-memory SQLite database (apsw) with one empty table per schema
table (every column, hidden ones and column aliases included, and one per table alias),
osquery's SQL functions and collations. A query is compiled statement by statement and
never run: each statement is prepared, and the execution tracer stops it before its first
step. An authorizer refuses everything but reading tables and calling the functions
osqueryd's SQLite has, so a pack cannot make the linter attach, write or pragma anything.

What differs from the SQLite inside osqueryd (docs/lint.md §1.6): the version (apsw's,
newer than any osqueryd's), so syntax added to SQLite later compiles here; functions are
limited to osqueryd's list by the authorizer, so a newer built-in is still refused.
Double-quoted strings are accepted as string literals, as osqueryd's SQLite (built without
``SQLITE_DQS=0``) accepts them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import apsw

from osqsdk.lint._lexer import code_chars
from osqsdk.schema import Schema

__all__ = ["Judge", "Verdict", "split_statements"]

#: Statements compiled per query at most; a query is one or two statements in practice.
MAX_STATEMENTS = 64

_ALLOWED = frozenset({apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_RECURSIVE})
_NO_SUCH_TABLE = re.compile(r"no such table: (?:\w+\.)?(.+)$")


#: Verdicts kept per Judge (the language server lints the same queries after every edit).
MAX_CACHED_VERDICTS = 50_000


@dataclass(frozen=True)
class Verdict:
    """SQLite's answer for one statement of a query.

    ``start``/``end`` are character offsets of the statement in the query text; ``error``
    is SQLite's message (None: it compiles), ``offset`` where SQLite points, as a character
    offset in the query text, when it says; ``kind`` sorts the error for the rules:
    ``syntax``, ``table``, ``column``, ``ambiguous``, ``function``, ``arguments``,
    ``not_select`` or ``other``; ``name`` is the table, column or function it names.
    """

    start: int
    end: int
    error: str | None = None
    offset: int | None = None
    kind: str | None = None
    name: str | None = None


def split_statements(sql: str) -> list[tuple[int, int]]:
    """(start, end) of each statement of ``sql``: split at semicolons outside strings,
    quoted names and comments; empty statements (blank, comments, lone ``;``) dropped."""
    return list(_split(sql))


@functools.lru_cache(maxsize=MAX_CACHED_VERDICTS)
def _split(sql: str) -> tuple[tuple[int, int], ...]:
    spans: list[tuple[int, int]] = []
    start = 0
    for i in code_chars(sql, ";"):
        spans.append((start, i + 1))
        start = i + 1
    spans.append((start, len(sql)))
    return tuple((a, b) for a, b in spans if _has_content(sql[a:b]))


def _has_content(text: str) -> bool:
    text = re.sub(r"--[^\n]*|/\*.*?(\*/|$)", " ", text, flags=re.S)
    return bool(text.strip(" \t\r\n\f\v;"))


class Judge:
    """Compile queries against ``schema`` with osquery's ``functions`` and ``collations``.

    ``functions`` maps a lower-case name to the argument counts osqueryd accepts (-1: any):
    the only functions a query may call.
    """

    def __init__(self, schema: Schema, functions: Mapping[str, Iterable[int]],
                 collations: Iterable[str] = ()) -> None:
        self._con = apsw.Connection(":memory:")
        self._verdicts: dict[str, tuple[Verdict, ...]] = {}
        self._functions = frozenset(name.lower() for name in functions)
        # register what osqueryd has and this SQLite lacks (osquery's own functions, and
        # soundex: osquery builds SQLite with SQLITE_SOUNDEX); SQLite's own are left alone,
        # and the authorizer still refuses any function osqueryd does not have
        present = {str(row[0]).lower()
                   for row in self._con.execute("SELECT name FROM pragma_function_list")}
        for table in schema:
            columns = ", ".join(_quote(c) for c in table.column_names) or '"_"'
            for name in {table.name.lower(), *(a.lower() for a in table.aliases)}:
                self._con.execute(f"CREATE TABLE {_quote(name)} ({columns})")
        for name, counts in functions.items():
            if name.lower() in present:
                continue
            for count in set(counts):
                self._con.create_scalar_function(name, _never_called, count)
        for name in collations:
            self._con.create_collation(name, _compare)
        self._denied: str | None = None
        self._con.authorizer = self._authorize
        # nothing may run; should a statement ever step, stop it at once
        self._con.set_progress_handler(lambda: True, 1000)

    def compile(self, sql: str) -> list[Verdict]:
        """One verdict per statement, up to the first that SQLite refuses."""
        cached = self._verdicts.get(sql)
        if cached is not None:  # the same text, the same schema: the same verdicts
            return list(cached)
        verdicts: list[Verdict] = []
        for start, end in split_statements(sql)[:MAX_STATEMENTS]:
            verdict = self._statement(sql, start, end)
            verdicts.append(verdict)
            if verdict.error is not None:
                break
        if len(self._verdicts) >= MAX_CACHED_VERDICTS:
            self._verdicts.clear()
        self._verdicts[sql] = tuple(verdicts)
        return verdicts

    def program(self, sql: str) -> tuple[tuple[Any, ...], ...] | None:
        """The bytecode SQLite compiles ``sql`` to (every statement's, without the comment
        column) and its result column names, or None when it does not compile: two queries
        with the same program read the same columns, compare with the same literals and
        name their results the same (``--fix`` relies on it)."""
        out: list[tuple[Any, ...]] = []
        for verdict in self.compile(sql):
            if verdict.error is not None:
                return None
            text = sql[verdict.start:verdict.end]
            if not _has_content(text):
                continue
            self._con.set_progress_handler(None)
            try:
                rows = self._con.execute("EXPLAIN " + text).fetchall()
            except apsw.Error:
                return None
            finally:
                self._con.set_progress_handler(lambda: True, 1000)
            out.extend(tuple(row[1:7]) for row in rows)  # opcode, p1, p2, p3, p4, p5
            # and the names of the result columns, which osquery's rows are keyed by
            out.append(("result columns", *self._result_names(text)))
        return tuple(out)

    def _result_names(self, text: str) -> tuple[str, ...]:
        cursor = self._con.cursor()
        cursor.exec_trace = _stop
        try:
            cursor.execute(text)
        except apsw.ExecTraceAbort:
            pass
        except apsw.Error:
            return ()
        try:
            return tuple(str(d[0]) for d in cursor.description)
        except apsw.Error:
            return ()
        finally:
            cursor.close()

    def _statement(self, sql: str, start: int, end: int) -> Verdict:
        text = sql[start:end]
        if "\x00" in text:  # osqueryd hands SQLite a C string: it would end the query there
            offset = start + text.index("\x00")
            return Verdict(start, end, "the query contains a NUL character", offset, "syntax")
        self._denied = None
        cursor = self._con.cursor()
        cursor.exec_trace = _stop
        try:
            cursor.execute(text)
        except apsw.ExecTraceAbort:
            return Verdict(start, end)
        except apsw.Error as exc:
            return self._refused(exc, sql, start, end)
        finally:
            cursor.close()
        return Verdict(start, end)  # nothing to prepare (only comments)

    def _refused(self, exc: apsw.Error, sql: str, start: int, end: int) -> Verdict:
        message = re.sub(r"^\w+Error: ", "", str(exc))
        raw = getattr(exc, "error_offset", -1)
        offset = None
        if isinstance(raw, int) and raw >= 0:
            prefix = sql[start:end].encode("utf-8", "surrogatepass")[:raw]
            offset = start + len(prefix.decode("utf-8", "ignore"))
        kind, name = _classify(message)
        if self._denied is not None and "not authorized" in message:
            if self._denied.startswith("function:"):
                name = self._denied.split(":", 1)[1]
                kind, message = "function", f"no such function: {name}"
            else:
                kind, message = "not_select", f"not a query: {self._denied}"
        return Verdict(start, end, message, offset, kind, name)

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
        if action in _ALLOWED:
            return apsw.SQLITE_OK
        if action == apsw.SQLITE_FUNCTION:
            if arg2 is not None and arg2.lower() in self._functions:
                return apsw.SQLITE_OK
            self._denied = f"function:{arg2}"
            return apsw.SQLITE_DENY
        self._denied = str(apsw.mapping_authorizer_function.get(action, action))
        return apsw.SQLITE_DENY


def _classify(message: str) -> tuple[str, str | None]:
    table = _NO_SUCH_TABLE.match(message)
    if table:
        return "table", table.group(1)
    if message.startswith("cannot join using column "):
        return "column", message.split()[4]
    for prefix, kind in (("no such column: ", "column"), ("ambiguous column name: ", "ambiguous"),
                         ("no such function: ", "function"),
                         ("wrong number of arguments to function ", "arguments")):
        if message.startswith(prefix):
            return kind, message[len(prefix):].removesuffix("()")
    if "syntax error" in message or message in ("incomplete input",) or \
            message.startswith("unrecognized token"):
        return "syntax", None
    return "other", None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _stop(cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
    return False  # compiled: stop before the first step


def _never_called(*args: Any) -> None:
    return None


def _compare(a: str, b: str) -> int:
    return (a > b) - (a < b)
