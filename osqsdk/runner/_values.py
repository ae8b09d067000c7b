"""Values the way osqueryd converts them between its string rows and SQLite.

Two directions (docs/protocol.md §3.4, §3.5, §4.3):

- ``to_sqlite``: a table's string value → the SQLite value osqueryd's DynamicTableRow
  hands to SQLite for the column type (osquery/sql/dynamic_table_row.cpp);
- ``result_text``: a SQLite result value → the string osqueryd logs (osquery's
  Row/JSON serialization), and ``constraint_text``: a constraint value → the text
  ``sqlite3_value_text`` gives, which becomes ``expr`` in the context JSON.
"""

from __future__ import annotations

import math
import re
from typing import Any

from osqsdk._osquery.columns import ColumnType

__all__ = ["c_strtod", "c_strtol", "constraint_text", "real_text", "result_text", "to_sqlite"]

# std::stol/std::stoll with base 0 (osquery's tryTo<long>(value, 0)): leading whitespace,
# a sign, then 0x… hex, 0… octal or decimal; the longest valid prefix counts and trailing
# text is ignored ("12abc" → 12, "08" → 0, "0x" → 0).
_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
# strtod: the whole string must be consumed (osquery checks *end == '\0').
_STRTOD = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:"
    r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    r"|(?i:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)"
    r")")
_INT64 = (-(2**63), 2**63 - 1)


def c_strtol(text: str) -> int | None:
    """std::stoll(text, nullptr, 0), or None where it throws (no digits, out of range)."""
    match = _STRTOL.match(text)
    if match is None:
        return None
    sign, digits = match.groups()
    if digits[:2] in ("0x", "0X"):
        value = int(digits[2:], 16)
    elif digits.startswith("0"):
        value = int(digits, 8) if len(digits) > 1 else 0
    else:
        value = int(digits)
    value = -value if sign == "-" else value
    if not _INT64[0] <= value <= _INT64[1]:
        return None
    return value


def c_strtod(text: str) -> float | None:
    """strtod(text) when it consumes the whole string, else None."""
    match = _STRTOD.fullmatch(text)
    if match is None:
        return None
    body = text.strip(" \t\n\v\f\r")
    lowered = body.lower().lstrip("+-")
    if lowered.startswith("0x"):
        return float.fromhex(body)
    if lowered.startswith("inf"):
        return -math.inf if body.startswith("-") else math.inf
    if lowered.startswith("nan"):
        return math.nan
    return float(body)


def real_text(value: float) -> str:
    """Text of a REAL as osquery's SQLite (3.42) renders it: ``%!.15g``.

    Newer SQLite prints the shortest round-trip text instead, so this does not ask SQLite.
    """
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    mantissa, marker, exponent = format(value, ".15g").partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + marker + exponent


def _wrap32(value: int) -> int:
    # sqlite3_result_int takes an int: the 64-bit long is truncated to 32 bits.
    return ((value + 2**31) % 2**32) - 2**31


def to_sqlite(value: Any, type_: ColumnType) -> Any:
    """The SQLite value osqueryd produces for a row value of a column of ``type_``.

    ``None`` (key absent) is NULL. TEXT and BLOB stay text (osqueryd calls
    sqlite3_result_text for both). INTEGER is parsed like std::stol base 0 and then cut to
    32 bits; BIGINT and UNSIGNED BIGINT like std::stoll base 0 (values past 2^63-1 are
    NULL); DOUBLE like strtod, whole string only. Unparsable numbers are NULL.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        if type_ in (ColumnType.TEXT, ColumnType.BLOB):
            return value if type_ is ColumnType.BLOB else value.decode("utf-8", "replace")
        value = value.decode("utf-8", "replace")
    if type_ is ColumnType.TEXT or type_ is ColumnType.BLOB:
        return value
    if type_ is ColumnType.DOUBLE:
        return c_strtod(value)
    number = c_strtol(value)
    if number is None:
        return None
    return _wrap32(number) if type_ is ColumnType.INTEGER else number


def constraint_text(value: Any) -> str | None:
    """``sqlite3_value_text`` of a constraint value; None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return real_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def result_text(value: Any) -> str:
    """A result value as osqueryd writes it into a result line with numerics off.

    Integers in decimal; doubles with 15 significant digits and ``.0`` appended when the
    text has no ``.`` (so ``1e+20`` becomes ``1e+20.0``, osquery's quirk); NULL as "".
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{value:.15g}"
        if "." not in text and text not in ("inf", "-inf", "nan"):
            text += ".0"
        return text
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
