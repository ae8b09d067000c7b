"""osqueryd's virtual table rules on SQLite, through apsw (docs/protocol.md §3.3-§3.5).

Planning (xBestIndex) and filtering (xFilter) follow osquery/sql/virtual_table.cpp:
constraints are passed only for INDEX, REQUIRED and ADDITIONAL columns (extension columns
with no options count as INDEX under --extensions_default_index); range operators on TEXT
columns are dropped; constraint values that are NULL or empty are dropped; an IN list
reaches ``generate`` once per value unless the column is OPTIMIZED; constraints are never
"omitted", so SQLite re-checks every row; a REQUIRED column without a constraint fails
the statement before ``generate`` is called.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import apsw

from osqsdk._osquery.columns import ColumnOptions, ColumnType
from osqsdk.runner._values import constraint_text, to_sqlite

__all__ = ["ColumnInfo", "TableError", "TableSource", "VirtualTableModule"]

# SQLite's constraint operator codes (sqlite3.h SQLITE_INDEX_CONSTRAINT_*), which osqueryd
# copies into the context unchanged; osquery's own enum uses the same numbers.
_GT, _LE, _LT, _GE = 4, 8, 16, 32
_EQ = 2
_RANGE = {_GT, _LE, _LT, _GE}
_CALLS_KEPT = 10_000
# The cost osquery gives a plan that cannot use its constraints (kMaxIndexCost).
_MAX_COST = 1_000_000.0


class TableError(Exception):
    """A table failed the statement; ``message`` is what osqueryd reports as the error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: ColumnType
    options: ColumnOptions
    alias_of: int | None = None  # index of the target column for osquery's column aliases

    @property
    def indexed(self) -> bool:
        return bool(self.options & (ColumnOptions.INDEX | ColumnOptions.ADDITIONAL
                                    | ColumnOptions.REQUIRED))


class TableSource(Protocol):
    """Where a virtual table's rows come from (a plugin, a remote extension, fixtures)."""

    name: str
    columns: Sequence[ColumnInfo]
    aliases: Sequence[str]
    writable: bool

    def generate(self, context: str | None) -> list[dict[str, Any]]: ...

    def write(self, request: dict[str, str]) -> list[dict[str, str]]: ...


def create_statement(name: str, columns: Sequence[ColumnInfo]) -> str:
    parts = []
    for column in columns:
        part = f'"{column.name}" {column.type.value}'
        if column.options & ColumnOptions.HIDDEN:
            part += " HIDDEN"
        for bit, collation in ((ColumnOptions.COLLATE_NOCASE, "NOCASE"),
                               (ColumnOptions.COLLATE_RTRIM, "RTRIM"),
                               (ColumnOptions.COLLATE_BINARY, "BINARY")):
            if column.options & bit:
                part += f" COLLATE {collation}"
        parts.append(part)
    return f'CREATE TABLE "{name}"({", ".join(parts)})'


@dataclass
class _Plan:
    constraints: list[tuple[int, int]]  # (column index, operator) in argv order
    in_lists: set[int]                  # argv positions carrying a whole IN list
    used: list[str]
    bitset: int


@dataclass
class CallRecord:
    """One ``generate`` call, for tests and ``--explain``: the table and its context."""

    table: str
    context: dict[str, Any]


class _Table:
    def __init__(self, module: VirtualTableModule, source: TableSource) -> None:
        self.module = module
        self.source = source
        self.columns = list(source.columns)
        self.plans: dict[int, _Plan] = {}
        self._next = itertools.count(1)

    # -- planning ------------------------------------------------------------------------
    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        cost = _MAX_COST
        constraints: list[tuple[int, int]] = []
        in_lists: set[int] = set()
        required_constrained = False
        for i in range(info.nConstraint):
            if not info.get_aConstraint_usable(i):
                continue
            column_index = info.get_aConstraint_iColumn(i)
            if column_index < 0 or column_index >= len(self.columns):
                continue
            column = self.columns[column_index]
            op = info.get_aConstraint_op(i)
            if column.type is ColumnType.TEXT and op in _RANGE:
                cost += 10  # osquery: no range comparisons on text columns
                continue
            if column.options & ColumnOptions.REQUIRED:
                required_constrained = True
                cost = 1
            elif column.options & (ColumnOptions.INDEX | ColumnOptions.ADDITIONAL):
                cost = 1
            else:
                continue  # not indexed: SQLite filters it
            constraints.append((column_index, op))
            info.set_aConstraintUsage_argvIndex(i, len(constraints))
            # OPTIMIZED columns get every IN value in one call (osquery 5.14+,
            # sqlite3_vtab_in); others get one xFilter per value.
            if (column.options & ColumnOptions.OPTIMIZED and op == _EQ
                    and info.get_aConstraintUsage_in(i)):
                info.set_aConstraintUsage_in(i, True)
                in_lists.add(len(constraints) - 1)
        used: list[str] = []
        bitset = 0
        required_used = False
        for index in sorted(info.colUsed):
            if index >= len(self.columns):
                continue
            target = self.columns[index].alias_of
            real = target if target is not None else index
            bitset |= 1 << min(real, 63)
            name = self.columns[real].name
            if name not in used:
                used.append(name)
            if self.columns[index].options & ColumnOptions.REQUIRED:
                required_used = True
        if required_used and not required_constrained:
            cost = _MAX_COST
        idx = next(self._next)
        self.plans[idx] = _Plan(constraints, in_lists, used, bitset)
        info.idxNum = idx
        info.estimatedCost = cost
        return True

    def Open(self) -> _Cursor:
        return _Cursor(self)

    def Disconnect(self) -> None:
        pass

    Destroy = Disconnect

    # -- writes (docs/protocol.md §3.6, osquery's xUpdate) -------------------------------------
    def _values_json(self, fields: Sequence[Any]) -> str:
        values: list[int | float | str | None] = []
        for column, value in zip(self.columns, fields):
            if value is None:
                if column.options in (ColumnOptions.INDEX, ColumnOptions.REQUIRED):
                    raise apsw.MismatchError("datatype mismatch")
                values.append(None)
            elif isinstance(value, int):
                if column.type not in (ColumnType.INTEGER, ColumnType.BIGINT,
                                       ColumnType.UNSIGNED_BIGINT):
                    raise apsw.MismatchError("datatype mismatch")
                values.append(value)
            elif isinstance(value, float):
                if column.type is not ColumnType.DOUBLE:
                    raise apsw.MismatchError("datatype mismatch")
                values.append(value)
            elif isinstance(value, bytes):
                if column.type is not ColumnType.BLOB:
                    raise apsw.MismatchError("datatype mismatch")
                values.append(value.decode("utf-8", "surrogateescape"))
            else:
                if column.type is not ColumnType.TEXT:
                    raise apsw.MismatchError("datatype mismatch")
                values.append(value)
        return json.dumps(values, separators=(",", ":"))

    def _write(self, request: dict[str, str]) -> dict[str, str]:
        if not self.source.writable:
            raise apsw.ReadOnlyError(f"table {self.source.name} may not be modified")
        request["context"] = '{"constraints":[]}'
        rows = self.source.write(request)
        if len(rows) != 1 or "status" not in rows[0]:
            raise apsw.SQLError("SQL logic error")
        status = rows[0]["status"]
        if status == "readonly":
            raise apsw.ReadOnlyError(f"table {self.source.name} may not be modified")
        if status == "failure":
            raise apsw.SQLError(rows[0].get("message", "SQL logic error"))
        if status == "constraint":
            raise apsw.ConstraintError("constraint failed")
        if status != "success":
            raise apsw.SQLError("SQL logic error")
        return rows[0]

    def UpdateInsertRow(self, rowid: int | None, fields: Sequence[Any]) -> int:
        request = {"action": "insert", "json_value_array": self._values_json(fields)}
        if rowid is not None:
            request.update(auto_rowid="true", id=str(rowid))
        else:
            request["auto_rowid"] = "false"
        answer = self._write(request)
        if rowid is not None:
            return rowid
        try:
            return int(answer["id"], 10)
        except (KeyError, ValueError):
            raise apsw.SQLError("the table did not return a valid rowid") from None

    def UpdateChangeRow(self, row: int, newrowid: int, fields: Sequence[Any]) -> None:
        request = {"action": "update", "id": str(row),
                   "json_value_array": self._values_json(fields)}
        if newrowid != row:
            request["new_id"] = str(newrowid)
        self._write(request)

    def UpdateDeleteRow(self, rowid: int) -> None:
        self._write({"action": "delete", "id": str(rowid)})


def _in_order(value: Any) -> tuple[int, Any]:
    # SQLite walks an IN list in its ephemeral index's order: NULL, numbers, text, blobs.
    if value is None:
        return (0, 0)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


class _Cursor:
    def __init__(self, table: _Table) -> None:
        self.table = table
        self.rows: list[dict[str, Any]] = []
        self.position = 0

    def Filter(self, indexnum: int, indexname: str, args: Sequence[Any]) -> None:
        table = self.table
        plan = table.plans.get(indexnum, _Plan([], set(), [], 0))
        lists: dict[str, list[dict[str, Any]]] = {c.name: [] for c in table.columns}
        required_done = False
        for position, ((column_index, op), value) in enumerate(zip(plan.constraints, args)):
            column = table.columns[column_index]
            if column.options & ColumnOptions.REQUIRED:
                required_done = True  # satisfied whatever the value (osquery's xFilter)
            values = sorted(value, key=_in_order) if position in plan.in_lists else [value]
            for item in values:
                text = constraint_text(item)
                # osqueryd drops NULL values, and empty ones outside IN lists.
                if text is None or (text == "" and position not in plan.in_lists):
                    continue
                lists[column.name].append({"op": op, "expr": text})
        if not required_done and any(c.options & ColumnOptions.REQUIRED for c in table.columns):
            raise TableError(f"Table {table.source.name} was queried without a required column "
                             "in the WHERE clause")
        context = {
            "constraints": [
                {"name": c.name, "list": lists[c.name],
                 "affinity": "UNKNOWN" if c.alias_of is not None else c.type.value}
                for c in sorted(table.columns, key=lambda c: c.name.encode())],
            "colsUsed": plan.used,
            "colsUsedBitset": plan.bitset,
        }
        table.module.record(CallRecord(table.source.name, context))
        self.rows = table.source.generate(json.dumps(context, separators=(",", ":")))
        self.position = 0

    def Eof(self) -> bool:
        return self.position >= len(self.rows)

    def Next(self) -> None:
        self.position += 1

    def Rowid(self) -> int:
        row = self.rows[self.position]
        rowid = row.get("rowid")
        if rowid is None:
            return self.position
        try:
            return int(rowid, 10) if isinstance(rowid, str) else int(rowid)
        except ValueError:
            raise apsw.SQLError(f"table {self.table.source.name} returned a bad rowid "
                                f"{rowid!r}") from None

    def Column(self, number: int) -> Any:
        if number == -1:
            return self.Rowid()
        column = self.table.columns[number]
        if column.alias_of is not None:
            column = self.table.columns[column.alias_of]
        return to_sqlite(self.rows[self.position].get(column.name), column.type)

    def Close(self) -> None:
        self.rows = []


@dataclass
class VirtualTableModule:
    """Attaches TableSources to an apsw connection as osquery virtual tables."""

    connection: apsw.Connection
    # The most recent generate calls (bounded: a long scheduler run makes millions).
    calls: deque[CallRecord] = field(default_factory=lambda: deque(maxlen=_CALLS_KEPT))

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)

    def attach(self, source: TableSource) -> None:
        table = _Table(self, source)
        statement = create_statement(source.name, table.columns)

        class Module:
            def Create(self, *args: Any) -> tuple[str, _Table]:
                return statement, table

            Connect = Create

        # cast: apsw's VTModule/VTTable protocols list every optional method (ShadowName,
        # Begin, Rename, ...) as required, but apsw looks each one up and skips those missing.
        self.connection.createmodule(source.name, cast("apsw.VTModule", Module()),
                                     use_bestindex_object=True)
        self.connection.execute(
            f'CREATE VIRTUAL TABLE temp."{source.name}" USING "{source.name}"()')
        for alias in source.aliases:
            self.connection.execute(
                f'CREATE VIEW temp."{alias}" AS SELECT * FROM "{source.name}"')

    def detach(self, name: str, aliases: Sequence[str] = ()) -> None:
        for alias in aliases:
            self.connection.execute(f'DROP VIEW IF EXISTS temp."{alias}"')
        self.connection.execute(f'DROP TABLE IF EXISTS temp."{name}"')
        self.connection.createmodule(name, None)
