"""Table plugins: declared columns, a ``generate`` callable, optional write handlers."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from osqsdk._osquery.columns import Column, ColumnType
from osqsdk.errors import (
    ConstraintViolation,
    PluginDefinitionError,
    ReadOnlyTable,
    ValueCoercionError,
)
from osqsdk.extension._context import QueryContext
from osqsdk.extension._plugin import Plugin, Response

__all__ = ["GenerateFunc", "TablePlugin", "coerce_value", "table"]

log = logging.getLogger("osqsdk.table")

GenerateFunc = Callable[[QueryContext], Iterable[Mapping[str, Any]]]
InsertFunc = Callable[[dict[str, Any], "int | None"], "int | None"]
UpdateFunc = Callable[[int, dict[str, Any], "int | None"], None]
DeleteFunc = Callable[[int], None]

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Calls that skip the column-wise path after it missed once.
_COLUMNWISE_BACKOFF = 64

# Table attributes (osquery's TableAttributes, docs/protocol.md §2.4).
_ATTR_CACHEABLE = 2
_ATTR_EVENT_BASED = 4
_ATTR_USER_BASED = 8

# Integer ranges osqueryd can store without changing the value (docs/protocol.md §3.5):
# INTEGER goes through sqlite3_result_int (32 bits); BIGINT and UNSIGNED BIGINT through
# std::stoll, so unsigned values of 2^63 and above come out NULL.
_RANGES = {
    ColumnType.INTEGER: (-(2**31), 2**31 - 1),
    ColumnType.BIGINT: (-(2**63), 2**63 - 1),
    ColumnType.UNSIGNED_BIGINT: (-(2**63), 2**63 - 1),
}


def coerce_value(value: Any, type_: ColumnType, column: str = "?") -> str | bytes:
    """Turn a Python value into the string osqueryd parses back into the same value.

    The one coercion osqsdk applies to every row (None is handled by the caller: the key is
    left out, which osqueryd reads as NULL):

    - ``str`` is sent as is; ``bytes``/``bytearray``/``memoryview`` are sent as raw bytes;
    - ``bool`` becomes ``1``/``0`` (never ``True``/``False``);
    - ``int`` becomes plain decimal; in INTEGER columns it must fit 32 bits and in BIGINT
      and UNSIGNED BIGINT columns 64 bits signed, because osqueryd would otherwise store a
      different number (INTEGER) or NULL (UNSIGNED BIGINT ≥ 2^63): ValueCoercionError;
    - ``float`` becomes ``repr`` (shortest text that round-trips); in integer columns only
      whole floats are accepted;
    - anything else is sent as ``str(value)``.
    """
    cls = value.__class__
    if cls is str:
        text: str = value
        return text
    if cls is bool:  # bool cannot be subclassed: this catches every bool
        return "1" if value else "0"
    if isinstance(value, int):
        bounds = _RANGES.get(type_)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            hint = "declare it BIGINT" if type_ is ColumnType.INTEGER else "send it as TEXT"
            raise ValueCoercionError(
                f"value {value} does not fit {type_.value} column {column!r}: "
                f"osqueryd would not store it unchanged; {hint}")
        return str(int(value))
    if isinstance(value, float):
        if type_ in _RANGES:
            if not value.is_integer():
                raise ValueCoercionError(
                    f"value {value!r} is not a whole number but column {column!r} is "
                    f"{type_.value}; declare it DOUBLE")
            return coerce_value(int(value), type_, column)
        if math.isfinite(value):
            return repr(value)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value)


def _converter(type_: ColumnType, column: str) -> Callable[[Any], str | bytes]:
    bounds = _RANGES.get(type_)
    if bounds is None:
        def convert(value: Any) -> str | bytes:
            return coerce_value(value, type_, column)
        return convert
    low, high = bounds

    # Integer columns: ints in range are the common case; take them without a second call.
    def convert_int(value: Any, _int: type[int] = int, _str: type[str] = str) -> str | bytes:
        if value.__class__ is _int and low <= value <= high:
            return _str(value)
        return coerce_value(value, type_, column)
    return convert_int


class TablePlugin(Plugin):
    """A table osqueryd can query, and write to when write handlers are given.

    ``generate(context)`` returns any iterable (a list, a generator) of mappings from column
    name to value; values are coerced as ``coerce_value`` documents, ``None`` is NULL. A key
    that is not a column is an error (``rowid`` excepted, which osqueryd uses as the SQLite
    rowid). Pass ``strict_keys=False`` to drop such keys silently as osqueryd does.

    Writable tables take ``insert(row, rowid) -> rowid``, ``update(rowid, row, new_rowid)``
    and ``delete(rowid)``; ``row`` maps column names to the typed values of the statement.
    Raise ``ConstraintViolation`` for SQLITE_CONSTRAINT, ``ReadOnlyTable`` for "may not be
    modified"; any other exception fails the statement with its message. Without a handler
    the action answers ``readonly``, as osquery's own tables do.
    """

    registry = "table"

    def __init__(
        self,
        name: str,
        columns: Sequence[Column],
        generate: GenerateFunc,
        *,
        insert: InsertFunc | None = None,
        update: UpdateFunc | None = None,
        delete: DeleteFunc | None = None,
        aliases: Sequence[str] = (),
        description: str = "",
        platforms: Sequence[str] = (),
        cacheable: bool = False,
        event_based: bool = False,
        user_based: bool = False,
        strict_keys: bool = True,
    ) -> None:
        if not isinstance(name, str) or not _TABLE_NAME.match(name):
            raise PluginDefinitionError(f"table name {name!r} is not a SQL identifier")
        if not callable(generate):
            raise PluginDefinitionError(f"table {name!r}: generate must be callable")
        columns = list(columns)
        if not columns:
            # osqueryd refuses a table without columns (docs/protocol.md §2.3).
            raise PluginDefinitionError(f"table {name!r} has no columns; osqueryd would refuse "
                                        "its registration with 'Invalid route info'")
        seen: dict[str, str] = {}
        for column in columns:
            if not isinstance(column, Column):
                raise PluginDefinitionError(
                    f"table {name!r}: columns must be osqsdk.Column objects, got {column!r}")
            for label in (column.name, *column.aliases):
                if label.lower() in seen:  # SQLite column names are case-insensitive
                    raise PluginDefinitionError(
                        f"table {name!r}: column name {label!r} is used twice")
                seen[label.lower()] = column.name
        for alias in aliases:
            if not isinstance(alias, str) or not _TABLE_NAME.match(alias):
                raise PluginDefinitionError(
                    f"table {name!r}: alias {alias!r} is not a SQL identifier")
        self.name = name
        self.columns: tuple[Column, ...] = tuple(columns)
        self.generate = generate
        self.insert, self.update, self.delete = insert, update, delete
        self.aliases = tuple(aliases)
        self.description = description
        self.platforms = tuple(platforms)
        self.cacheable, self.event_based, self.user_based = cacheable, event_based, user_based
        self.strict_keys = strict_keys
        self._types = {c.name: c.type for c in self.columns}
        self._convert = {c.name: _converter(c.type, c.name) for c in self.columns}
        self._convert["rowid"] = _converter(ColumnType.BIGINT, "rowid")
        self._allowed = frozenset(self._convert)
        # Non-text columns (and rowid) for the column-wise path: (name, range, converter).
        self._numeric = [(c.name, *_RANGES.get(c.type, _RANGES[ColumnType.BIGINT]),
                          self._convert[c.name])
                         for c in self.columns if c.type not in (ColumnType.TEXT, ColumnType.BLOB)]
        self._numeric.append(("rowid", *_RANGES[ColumnType.BIGINT], self._convert["rowid"]))
        self._columnwise_skip = 0
        # Columns where any 64-bit int can be sent as its decimal text (all but INTEGER).
        self._wide = frozenset(k for k, c in self._convert.items()
                               if self._types.get(k) is not ColumnType.INTEGER)
        # Column order of json_value_array: columns, then column aliases (docs/protocol.md §3.6).
        self._write_order = [c.name for c in self.columns] + [
            a for c in self.columns for a in c.aliases]
        self._alias_target = {a: c.name for c in self.columns for a in c.aliases}

    # -- declaration -------------------------------------------------------------------
    @property
    def attributes(self) -> int:
        return ((_ATTR_CACHEABLE if self.cacheable else 0)
                | (_ATTR_EVENT_BASED if self.event_based else 0)
                | (_ATTR_USER_BASED if self.user_based else 0))

    @property
    def writable(self) -> bool:
        return any((self.insert, self.update, self.delete))

    def routes(self) -> list[dict[str, str]]:
        # Columns, then table aliases, column aliases and one attributes entry, in the order
        # osquery's C++ SDK sends them; every route carries "id" (osquery's attach code reads it).
        routes = [{"id": "column", "name": c.name, "type": c.type.value, "op": str(int(c.options))}
                  for c in self.columns]
        routes += [{"id": "alias", "alias": a} for a in self.aliases]
        routes += [{"id": "columnAlias", "name": a, "target": c.name}
                   for c in self.columns for a in c.aliases]
        routes.append({"id": "attributes", "attributes": str(self.attributes)})
        return routes

    def spec(self) -> dict[str, Any]:
        """This table in the shape of osquery's published schema JSON (what ``--spec`` prints)."""
        return {
            "name": self.name,
            "description": self.description,
            "url": "",
            "platforms": list(self.platforms),
            "evented": self.event_based,
            "cacheable": self.cacheable,
            "notes": "",
            "examples": [],
            "columns": [
                {
                    "name": c.name,
                    "description": c.description,
                    "type": c.type.spec_name,
                    "notes": "",
                    "hidden": c.hidden,
                    "required": c.required,
                    "index": c.index,
                    "additional": c.additional,
                    "optimized": c.optimized,
                    "aliases": list(c.aliases),
                }
                for c in self.columns
            ],
            "aliases": list(self.aliases),
        }

    # -- requests ----------------------------------------------------------------------
    def call(self, request: Mapping[str, str]) -> Response:
        action = request.get("action")
        if action == "generate":
            return self._generate(request)
        if action == "columns":
            return Response.ok(self.routes())
        if action in ("insert", "update", "delete"):
            return self._write(action, request)
        if action is None:
            return Response.failed(f"table {self.name!r}: request has no action")
        return Response.failed(f"table {self.name!r}: unknown action {action!r}")

    def _generate(self, request: Mapping[str, str]) -> Response:
        try:
            context = QueryContext.from_json(request.get("context"))
        except ValueError as exc:
            return Response.failed(f"table {self.name!r}: bad query context: {exc}")
        return Response.ok(self.coerce_rows(self.generate(context), context.columns_used))

    def coerce_rows(self, rows: Iterable[Mapping[str, Any]],
                    columns_used: frozenset[str] | None = None) -> list[dict[str, str | bytes]]:
        """Apply the documented coercion to every row; raises ValueCoercionError.

        With ``columns_used`` (osqueryd's colsUsed), values of other columns are left out:
        SQLite never reads them, so they would only cost encoding and bytes on the wire.
        """
        if rows is None:
            raise ValueCoercionError(
                f"table {self.name!r}: generate returned None; return an iterable of rows")
        if not isinstance(rows, (list, tuple)):
            try:
                rows = list(rows)
            except TypeError:
                raise ValueCoercionError(
                    f"table {self.name!r}: generate returned {type(rows).__name__}, not an "
                    "iterable of rows") from None
        keep = None
        if columns_used is not None and not columns_used.issuperset(self._types):
            keep = {name: name in columns_used for name in self._convert}
            keep["rowid"] = True
        # The fast paths take rows whose keys are all columns, with or without strict_keys
        # (osquery-python tables run without it): a row with another key makes them fall
        # back to the per-row path, which names it (strict) or drops it as osqueryd does.
        if keep is None and self._columnwise_ok():
            out = self._coerce_columnwise(rows)
            if out is not None:
                return out
        # One comprehension, str values of declared columns taken as they are. Anything
        # unusual (an undeclared key: KeyError; a bad value; not a mapping) raises, and
        # the slow path below finds the row and says what is wrong.
        convert, allowed, wide, text, integer = (self._convert, self._allowed, self._wide,
                                                 str, int)
        low, high = _RANGES[ColumnType.BIGINT]
        try:
            if keep is None:
                return [{k: (v if v.__class__ is text and k in allowed else
                             text(v) if v.__class__ is integer and k in wide
                             and low <= v <= high else convert[k](v))
                         for k, v in row.items() if v is not None} for row in rows]
            return [{k: (v if v.__class__ is text else convert[k](v))
                     for k, v in row.items() if v is not None and keep[k]} for row in rows]
        except Exception:
            pass
        return [self._coerce_row(row, index, keep) for index, row in enumerate(rows)]

    def _columnwise_ok(self) -> bool:
        # After a miss (rows with NULLs or non-text values in text columns) the column-wise
        # path is skipped for a while, so such tables do not pay for it on every call.
        if self._columnwise_skip:
            self._columnwise_skip -= 1
            return False
        return True

    def _coerce_columnwise(self, rows: Sequence[Any]) -> list[dict[str, Any]] | None:
        """The fastest path, for rows whose text columns hold str: copy the rows (in C),
        convert the non-text columns one column at a time, then check in C that every value
        is now a str and every key a column. None sends the caller down the general path."""
        try:
            out = list(map(dict.copy, rows))  # TypeError for anything but a dict
        except TypeError:
            return None
        text, integer = str, int
        try:
            for key, low, high, convert in self._numeric:
                for row in out:
                    value = row.get(key)
                    if value.__class__ is integer and low <= value <= high:
                        row[key] = text(value)
                    elif value is not None:
                        row[key] = convert(value)
                    elif key in row:
                        del row[key]
            "".join(chain.from_iterable(map(dict.values, out)))  # TypeError: not all text
        except (TypeError, ValueCoercionError):
            self._columnwise_skip = _COLUMNWISE_BACKOFF
            return None
        if not self._allowed.issuperset(chain.from_iterable(out)):
            return None  # an undeclared key: the general path names it
        return out

    def _coerce_row(self, row: Any, index: int,
                    keep: dict[str, bool] | None = None) -> dict[str, str | bytes]:
        if not isinstance(row, Mapping):
            raise ValueCoercionError(f"table {self.name!r}, row {index}: a row must be a "
                                     f"mapping of column name to value, not {type(row).__name__}")
        out: dict[str, str | bytes] = {}
        for key, value in row.items():
            convert = self._convert.get(key)
            if convert is None:
                if self.strict_keys:
                    self._reject_row(row, index)
                continue
            if value is None or (keep is not None and not keep[key]):
                continue
            try:
                out[key] = convert(value)
            except ValueCoercionError as exc:
                raise ValueCoercionError(f"table {self.name!r}, row {index}: {exc}") from None
        return out

    def _reject_row(self, row: Mapping[str, Any], index: int) -> None:
        extra = sorted(str(k) for k in row if k not in self._allowed)
        raise ValueCoercionError(
            f"table {self.name!r}, row {index}: {', '.join(map(repr, extra))} "
            f"{'is not a column' if len(extra) == 1 else 'are not columns'} "
            f"(columns: {', '.join(c.name for c in self.columns)})")

    # -- writes (docs/protocol.md §3.2, §3.6) ----------------------------------------------
    def _write(self, action: str, request: Mapping[str, str]) -> Response:
        handler = {"insert": self.insert, "update": self.update, "delete": self.delete}[action]
        if handler is None:
            return Response.ok([{"status": "readonly"}])
        try:
            if action == "delete":
                assert self.delete is not None
                self.delete(_rowid(request, "id"))
                return Response.ok([{"status": "success"}])
            row = self._parse_values(request.get("json_value_array"))
            if action == "update":
                assert self.update is not None
                new_id = request.get("new_id")
                self.update(_rowid(request, "id"), row,
                            _rowid(request, "new_id") if new_id else None)
                return Response.ok([{"status": "success"}])
            assert self.insert is not None
            auto = request.get("auto_rowid") == "true"
            given = _rowid(request, "id") if auto else None
            new_rowid = self.insert(row, given)
            if auto:
                return Response.ok([{"status": "success"}])
            if new_rowid is None or isinstance(new_rowid, bool) or not isinstance(new_rowid, int):
                return Response.ok([{"status": "failure", "message":
                                     f"insert into {self.name} did not return the new rowid"}])
            return Response.ok([{"status": "success", "id": str(new_rowid)}])
        except ConstraintViolation:
            return Response.ok([{"status": "constraint"}])
        except ReadOnlyTable:
            return Response.ok([{"status": "readonly"}])
        except Exception as exc:  # the statement fails; the server stays up
            message = str(exc) or type(exc).__name__
            if not isinstance(exc, (ValueError, LookupError)) or isinstance(exc, KeyError):
                log.exception("%s on table %s failed", action, self.name)
            return Response.ok([{"status": "failure", "message": message}])

    def _parse_values(self, text: str | None) -> dict[str, Any]:
        if text is None:
            raise ValueError("request has no json_value_array")
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"json_value_array is not JSON: {exc}") from None
        if not isinstance(values, list) or len(values) != len(self._write_order):
            raise ValueError(f"json_value_array must list {len(self._write_order)} values, one "
                             f"per column of {self.name}")
        row: dict[str, Any] = {}
        for name, value in zip(self._write_order, values):
            target = self._alias_target.get(name)
            if target is None:
                row[name] = value
            elif value is not None and row.get(target) is None:
                row[target] = value  # an INSERT that named the alias instead of the column
        return row


def _rowid(request: Mapping[str, str], key: str) -> int:
    text = request.get(key)
    try:
        if text is None:
            raise TypeError(key)
        return int(text, 10)
    except (TypeError, ValueError):
        raise ValueError(f"request {key!r} is not a rowid: {text!r}") from None


def table(
    name: str,
    columns: Sequence[Column],
    **options: Any,
) -> Callable[[GenerateFunc], TablePlugin]:
    """Decorator form of ``TablePlugin``: the decorated function is ``generate``.

    Returns the ``TablePlugin`` (so the module attribute *is* the plugin)::

        @osqsdk.table("acme_users", columns=[osqsdk.Column("name")])
        def acme_users(context):
            yield {"name": "alice"}
    """
    def wrap(generate: GenerateFunc) -> TablePlugin:
        return TablePlugin(name, columns, generate, **options)
    return wrap
