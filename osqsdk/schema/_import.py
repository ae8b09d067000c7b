"""``osqsdk schema import``: turn osquery's published schema data into osqsdk's own format.

The output holds facts only (names, types, flags, platforms, releases). Sources:

* table listings: osquery.io's schema JSON, Fleet's schema, extension ``--spec`` output,
  osquery's specs read as JSON, or a live ``osqueryi``;
* enrichment: a fuller source whose flags fill in what a listing lacks (aliases,
  additional/optimized, user_data, column platforms) for tables already read;
* the table version index, for the first/last release of every table and column;
* osquery's SQL function list, which becomes ``functions.json`` instead of a table schema.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from osqsdk._osquery.columns import ColumnType
from osqsdk.errors import SchemaError
from osqsdk.schema._load import FORMAT, apply_versions, detect_format, read_json, schema_from_data
from osqsdk.schema._model import ColumnSchema, Schema, TableSchema

__all__ = ["FUNCTIONS_FORMAT", "enrich", "functions_document", "import_schema",
           "parse_osqueryi_schema", "read_osqueryi", "schema_document"]

FUNCTIONS_FORMAT = "osqsdk.functions/1"

# SQLite's own SQL functions as osquery's pinned SQLite 3.42 builds them (core, date/time,
# aggregate, window and JSON1; the math functions are not compiled in, osquery adds its own;
# SQLITE_SOUNDEX is on). name -> accepted argument counts (-1: any number).
SQLITE_FUNCTIONS: dict[str, tuple[int, ...]] = {
    "abs": (1,), "changes": (0,), "char": (-1,), "coalesce": (-1,), "format": (-1,),
    "glob": (2,), "hex": (1,), "ifnull": (2,), "iif": (3,), "instr": (2,),
    "last_insert_rowid": (0,), "length": (1,), "like": (2, 3), "likelihood": (2,),
    "likely": (1,), "load_extension": (1, 2), "lower": (1,), "ltrim": (1, 2), "max": (-1,),
    "min": (-1,), "nullif": (2,), "printf": (-1,), "quote": (1,),
    "random": (0,), "randomblob": (1,), "replace": (3,), "round": (1, 2), "rtrim": (1, 2),
    "sign": (1,), "soundex": (1,), "sqlite_compileoption_get": (1,),
    "sqlite_compileoption_used": (1,), "sqlite_offset": (1,), "sqlite_source_id": (0,),
    "sqlite_version": (0,), "substr": (2, 3), "substring": (2, 3), "total_changes": (0,),
    "trim": (1, 2), "typeof": (1,), "unhex": (1, 2), "unicode": (1,), "unlikely": (1,),
    "upper": (1,), "zeroblob": (1,),
    "date": (-1,), "time": (-1,), "datetime": (-1,), "julianday": (-1,), "unixepoch": (-1,),
    "strftime": (-1,),
    "avg": (1,), "count": (0, 1), "group_concat": (1, 2), "sum": (1,), "total": (1,),
    "row_number": (0,), "rank": (0,), "dense_rank": (0,), "percent_rank": (0,),
    "cume_dist": (0,), "ntile": (1,), "lag": (1, 2, 3), "lead": (1, 2, 3),
    "first_value": (1,), "last_value": (1,), "nth_value": (2,),
    "json": (1,), "json_array": (-1,), "json_array_length": (1, 2), "json_extract": (-1,),
    "json_insert": (-1,), "json_object": (-1,), "json_patch": (2,), "json_remove": (-1,),
    "json_replace": (-1,), "json_set": (-1,), "json_type": (1, 2), "json_valid": (1,),
    "json_quote": (1,), "json_group_array": (1,), "json_group_object": (2,),
}
SQLITE_AGGREGATES = frozenset({"avg", "count", "group_concat", "sum", "total", "max", "min",
                               "json_group_array", "json_group_object"})
# Table-valued functions and the columns they return (hidden argument columns included).
SQLITE_TABLE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "json_each": ("key", "value", "type", "atom", "id", "parent", "fullkey", "path", "json",
                  "root"),
    "json_tree": ("key", "value", "type", "atom", "id", "parent", "fullkey", "path", "json",
                  "root"),
}
# Collations: SQLite's three plus the four osquery registers.
COLLATIONS = ("binary", "nocase", "rtrim", "version", "version_arch", "version_dpkg",
              "version_rhel")


def enrich(base: Schema, rich: Schema) -> Schema:
    """Fill in facts ``base`` lacks from ``rich`` for tables and columns both have.

    Taken from ``rich``: table aliases and user_data/utility/evented/cacheable attributes,
    column aliases, additional/optimized/collate, column platforms, and the hidden flag
    (osquery.io's JSON marks columns of other platforms as hidden although they are not).
    Tables and columns only ``rich`` has are not added.
    """
    tables = []
    for table in base:
        other = rich.tables.get(table.name)
        if other is None:
            tables.append(table)
            continue
        columns = []
        for col in table.columns:
            oc = other.column(col.name)
            if oc is None or oc.name != col.name:
                columns.append(col)
                continue
            columns.append(replace(
                col, required=col.required or oc.required, index=col.index or oc.index,
                hidden=oc.hidden, additional=col.additional or oc.additional,
                optimized=col.optimized or oc.optimized, aliases=col.aliases or oc.aliases,
                platforms=oc.platforms or col.platforms, collate=col.collate or oc.collate))
        tables.append(table.with_(
            columns=tuple(columns), aliases=table.aliases or other.aliases,
            user_data=table.user_data or other.user_data, utility=table.utility or other.utility,
            evented=table.evented or other.evented, cacheable=table.cacheable or other.cacheable))
    return Schema(tables, removed=base.removed.values(), osquery_version=base.osquery_version,
                  sources=base.sources + rich.sources)


# --- live osqueryi -----------------------------------------------------------------------

_CREATE = re.compile(r"CREATE\s+(?:VIRTUAL\s+)?TABLE\s+[`\"]?(\w+)[`\"]?\s*(?:USING\s+\w+\s*)?\(",
                     re.IGNORECASE)
_COLUMN = re.compile(r"^\s*[`\"]?(\w+)[`\"]?\s+([A-Za-z ]+?)(\s+HIDDEN)?\s*$", re.IGNORECASE)
_PKEY = re.compile(r"^\s*PRIMARY\s+KEY\s*\((.*)\)\s*$", re.IGNORECASE)


def _split_top(body: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    return parts


def parse_osqueryi_schema(text: str, platform: str) -> list[TableSchema]:
    """Tables from the ``CREATE TABLE`` statements osqueryi's ``.schema`` prints.

    osqueryi shows names, types, HIDDEN and a PRIMARY KEY made of the index columns; it does
    not show which columns are required, so enrich the result from osquery's specs when the
    required-constraint rules matter.
    """
    tables = []
    for match in _CREATE.finditer(text):
        start = match.end()
        depth, end = 1, start
        while end < len(text) and depth:
            if text[end] == "(":
                depth += 1
            elif text[end] == ")":
                depth -= 1
            end += 1
        body = text[start:end - 1]
        columns: list[ColumnSchema] = []
        keys: set[str] = set()
        for part in _split_top(body):
            pk = _PKEY.match(part)
            if pk:
                keys.update(k.strip().strip("`\"") for k in pk.group(1).split(","))
                continue
            col = _COLUMN.match(part)
            if not col:
                continue
            try:
                ctype = ColumnType.parse(col.group(2).strip())
            except ValueError:
                ctype = ColumnType.TEXT
            columns.append(ColumnSchema(col.group(1), ctype, hidden=bool(col.group(3))))
        columns = [replace(c, index=c.name in keys) for c in columns]
        tables.append(TableSchema(match.group(1), tuple(columns), platforms=(platform,)))
    return tables


def _host_platform() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith(("win", "cygwin")):
        return "windows"
    if sys.platform.startswith("freebsd"):
        return "freebsd"
    return sys.platform


def read_osqueryi(binary: str = "osqueryi", *, timeout: float = 120.0) -> Schema:
    """Ask a local ``osqueryi`` for its tables (``.schema``) and version.

    Raises :class:`SchemaError` when the binary is missing or fails.
    """
    path = shutil.which(binary) or (binary if os.path.isfile(binary) else None)
    if path is None:
        raise SchemaError(f"{binary}: not found on PATH")
    flags = ["--disable_extensions", "--disable_events", "--disable_database"]
    try:
        version_run = subprocess.run(
            [path, *flags, "--json", "SELECT version FROM osquery_info"], capture_output=True,
            text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        schema_run = subprocess.run([path, *flags], input=".schema\n", capture_output=True,
                                    text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchemaError(f"{path}: cannot run: {exc}") from exc
    if schema_run.returncode != 0 or "CREATE" not in schema_run.stdout.upper():
        raise SchemaError(f"{path}: .schema failed: {schema_run.stderr.strip()[:300]}")
    version = None
    try:
        rows = json.loads(version_run.stdout or "[]")
        version = rows[0]["version"] if rows else None
    except (ValueError, LookupError, TypeError):
        version = None
    tables = parse_osqueryi_schema(schema_run.stdout, _host_platform())
    return Schema(tables, osquery_version=version, sources=(f"osqueryi:{path}",))


# --- documents ---------------------------------------------------------------------------

def schema_document(schema: Schema, *, generated_by: str | None = None) -> dict[str, Any]:
    """osqsdk's own schema format for ``schema`` (what ``schema/*.json`` holds)."""
    doc: dict[str, Any] = {"format": FORMAT}
    if schema.osquery_version:
        doc["osquery_version"] = schema.osquery_version
    if generated_by:
        doc["generated_by"] = generated_by
    doc["tables"] = [t.to_json() for t in sorted(schema, key=lambda t: t.name)]
    if schema.removed:
        doc["removed_tables"] = [t.to_json() for t in sorted(schema.removed.values(),
                                                             key=lambda t: t.name)]
    return doc


def functions_document(data: Mapping[str, Any], *, generated_by: str | None = None
                       ) -> dict[str, Any]:
    """``functions.json``: osquery's own SQL functions plus SQLite's built-in ones."""
    osquery = []
    for fn in data.get("functions", []):
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        nargs = fn.get("nargs")
        if isinstance(nargs, int):
            counts = [nargs]
        elif isinstance(nargs, list):
            counts = sorted({n for n in nargs if isinstance(n, int)})
        else:
            counts = [-1]
        osquery.append({"name": fn["name"], "nargs": counts,
                        "aggregate": bool(fn.get("aggregate"))})
    osquery.sort(key=lambda f: f["name"])
    sqlite = [{"name": name, "nargs": list(counts), "aggregate": name in SQLITE_AGGREGATES}
              for name, counts in sorted(SQLITE_FUNCTIONS.items())]
    doc: dict[str, Any] = {"format": FUNCTIONS_FORMAT}
    if generated_by:
        doc["generated_by"] = generated_by
    doc.update({"osquery": osquery, "sqlite": sqlite,
                "table_functions": {k: list(v) for k, v in SQLITE_TABLE_FUNCTIONS.items()},
                "collations": list(COLLATIONS)})
    return doc


def import_schema(sources: Iterable[str], *, enrich_from: Iterable[str] = (),
                  versions: str | None = None, osqueryi: str | None = None,
                  osquery_version: str | None = None, origin: str | None = None,
                  without: Iterable[str] = ()) -> Schema:
    """Read ``sources`` (and optionally a live osqueryi), enrich, add release facts."""
    schema = Schema()
    for src in sources:
        data = read_json(src)
        kind = detect_format(data)
        if kind in ("versions", "functions"):
            raise SchemaError(f"{src}: a {kind} file is not a table source here "
                              f"(use --versions for the version index)")
        schema = schema.merged(schema_from_data(data, str(src), origin=origin))
    if osqueryi:
        schema = schema.merged(read_osqueryi(osqueryi))
    if not len(schema):
        raise SchemaError("no tables read: give at least one source or --osqueryi")
    for src in without:
        other = schema_from_data(read_json(src), str(src))
        schema = Schema([t for t in schema if not _subsumed(t, other.tables.get(t.name))],
                        removed=schema.removed.values(), osquery_version=schema.osquery_version,
                        sources=schema.sources)
    for src in enrich_from:
        schema = enrich(schema, schema_from_data(read_json(src), str(src)))
    if versions:
        data = read_json(versions)
        if detect_format(data) != "versions":
            raise SchemaError(f"{versions}: not a table version index")
        schema = apply_versions(schema, data, up_to=osquery_version)
    if osquery_version:
        schema = Schema(schema, removed=schema.removed.values(), osquery_version=osquery_version,
                        sources=schema.sources)
    return schema


def _subsumed(table: TableSchema, other: TableSchema | None) -> bool:
    """Whether ``other`` already has every platform and column of ``table``."""
    if other is None:
        return False
    return set(table.platforms) <= set(other.platforms) and all(
        other.column(c.name) is not None for c in table.columns)

