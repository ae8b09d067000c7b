"""Read table schemas from the formats they come in, and merge them.

Formats, told apart by shape:

* osqsdk's own (``{"format": "osqsdk.schema/1", "tables": [...]}``), what ``osqsdk schema
  import`` writes and what ``schema/`` ships;
* osquery.io's published schema JSON and an extension's ``--spec`` output: a list of table
  objects with ``name``, ``platforms``, ``columns`` (and ``aliases``/``additional``/...
  when the writer knows them); Fleet's schema has the same shape plus ``fleetRepoUrl``;
* osquery's specs read as data (``{"tables": [...], "commit": ...}``, with ``attributes``);
* the table version index (``{"versions": [...], "tables": {name: {first, last, ...}}}``):
  versions only, it adds no table by itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from osqsdk._osquery.columns import ColumnType
from osqsdk.errors import PluginDefinitionError, SchemaError
from osqsdk.schema._model import ColumnSchema, Schema, TableSchema, version_key

__all__ = ["FORMAT", "detect_format", "load_schema", "overlay", "read_json",
           "schema_from_data", "tables_from_listing"]

FORMAT = "osqsdk.schema/1"

#: Largest schema file read; osquery's own is ~1 MiB, Fleet's ~1.1 MiB.
MAX_SCHEMA_BYTES = 32 * 1024 * 1024

# Type spellings seen outside osquery's own specs (Fleet's fleetd tables).
_TYPE_ALIASES = {"int": "integer", "uint": "unsigned_bigint", "boolean": "integer",
                 "bool": "integer", "string": "text", "float": "double", "real": "double",
                 "unsigned bigint": "unsigned_bigint"}

_PLATFORM_ALIASES = {"win32": "windows", "cygwin": "windows", "macos": "darwin",
                     "osx": "darwin"}


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read one JSON file, raising :class:`SchemaError` naming the file on any problem."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SCHEMA_BYTES:
            raise SchemaError(f"{p}: {size} bytes is too large for a schema file")
        text = p.read_text(encoding="utf-8")
    except SchemaError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{p}: cannot read schema: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{p}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise SchemaError(f"{p}: JSON nested too deeply") from exc


def detect_format(data: Any) -> str:
    """Name the format of decoded schema JSON: ``osqsdk``, ``listing``, ``specs``,
    ``versions`` or ``functions``; raise :class:`SchemaError` when it is none of them."""
    if isinstance(data, dict):
        if data.get("format") == FORMAT:
            return "osqsdk"
        if isinstance(data.get("functions"), list):
            return "functions"
        if isinstance(data.get("versions"), list) and isinstance(data.get("tables"), dict):
            return "versions"
        if isinstance(data.get("tables"), list):
            return "specs"
    if isinstance(data, list) and all(isinstance(t, dict) and "name" in t for t in data):
        return "listing"
    raise SchemaError("not a table schema: expected osqsdk's schema, osquery's schema JSON "
                      "(a list of tables), extension --spec output or osquery's specs")


def _type(value: Any, where: str) -> ColumnType:
    text = str(value or "text").strip().lower()
    text = _TYPE_ALIASES.get(text, text)
    try:
        return ColumnType.parse(text)
    except PluginDefinitionError as exc:
        raise SchemaError(f"{where}: {exc}") from exc


def _platforms(values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not values or not isinstance(values, list):
        return ()
    out: list[str] = []
    for value in values:
        name = _PLATFORM_ALIASES.get(str(value).strip().lower(), str(value).strip().lower())
        if name and name not in out:
            out.append(name)
    return tuple(out)


def _names(values: Any) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,) if values else ()
    if not isinstance(values, list):
        return ()
    return tuple(v for v in values if isinstance(v, str) and v)


def _flag(obj: Mapping[str, Any], key: str) -> bool:
    return obj.get(key) is True


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (for optional facts)."""
    return value if isinstance(value, dict) else {}


_TYPE_CACHE: dict[Any, ColumnType] = {}


def _column(obj: Any, where: str) -> ColumnSchema:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        raise SchemaError(f"{where}: a column needs a name")
    if len(obj) == 2 and isinstance(obj.get("type"), str):  # the common case: name and type
        ctype = _TYPE_CACHE.get(obj["type"])
        if ctype is None:
            ctype = _TYPE_CACHE[obj["type"]] = _type(obj["type"], where)
        return ColumnSchema(obj["name"], ctype)
    where = f"{where}.{obj['name']}"
    collate = obj.get("collate")
    return ColumnSchema(
        name=obj["name"], type=_type(obj.get("type"), where),
        required=_flag(obj, "required"), index=_flag(obj, "index"), hidden=_flag(obj, "hidden"),
        additional=_flag(obj, "additional"), optimized=_flag(obj, "optimized"),
        aliases=_names(obj.get("aliases")), platforms=_platforms(obj.get("platforms")),
        collate=collate if isinstance(collate, str) and collate else None,
        since=obj.get("since") if isinstance(obj.get("since"), str) else None)


def _table(obj: Any, where: str, *, origin: str) -> TableSchema:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        raise SchemaError(f"{where}: a table needs a name")
    where = f"{where}: table {obj['name']}"
    columns = obj.get("columns", [])
    if not isinstance(columns, list):
        raise SchemaError(f"{where}: columns must be a list")
    attributes = _mapping(obj.get("attributes"))
    removed = _mapping(obj.get("removed_columns"))
    return TableSchema(
        name=obj["name"],
        columns=tuple(_column(c, where) for c in columns),
        platforms=_platforms(obj.get("platforms")),
        # osquery's website JSON tests for key presence in its generator; a value of True is
        # the only reading that means the table really has the attribute.
        evented=_flag(obj, "evented") or bool(attributes.get("event_subscriber")),
        cacheable=_flag(obj, "cacheable") or bool(attributes.get("cacheable")),
        user_data=_flag(obj, "user_data") or bool(attributes.get("user_data")),
        utility=_flag(obj, "utility") or bool(attributes.get("utility")),
        aliases=_names(obj.get("aliases")),
        since=obj.get("since") if isinstance(obj.get("since"), str) else None,
        until=obj.get("until") if isinstance(obj.get("until"), str) else None,
        origin=str(obj.get("origin") or origin),
        removed_columns={str(k): str(v) for k, v in removed.items()})


def tables_from_listing(data: list[Any], where: str, *, origin: str | None = None
                        ) -> list[TableSchema]:
    """Tables from osquery's website JSON, Fleet's schema or extension ``--spec`` output."""
    tables = []
    for i, obj in enumerate(data):
        tables.append(_table(obj, f"{where}[{i}]", origin=origin or "osquery"))
    return tables


def schema_from_data(data: Any, where: str = "<schema>", *, origin: str | None = None
                     ) -> Schema:
    """Build a :class:`Schema` from decoded JSON in any of the known formats."""
    kind = detect_format(data)
    if kind == "osqsdk":
        tables = data.get("tables", [])
        removed = data.get("removed_tables", [])
        if not isinstance(tables, list) or not isinstance(removed, list):
            raise SchemaError(f"{where}: tables and removed_tables must be lists")
        return Schema([_table(t, where, origin=origin or "osquery") for t in tables],
                      removed=[_table(t, where, origin=origin or "osquery") for t in removed],
                      osquery_version=data.get("osquery_version"), sources=(where,))
    if kind == "listing":
        return Schema(tables_from_listing(data, where, origin=origin), sources=(where,))
    if kind == "specs":
        return Schema([_table(t, where, origin=origin or "osquery") for t in data["tables"]],
                      sources=(where,))
    if kind == "versions":
        return apply_versions(Schema(sources=(where,)), data)
    raise SchemaError(f"{where}: SQL function facts are not a table schema")


def apply_versions(schema: Schema, index: Mapping[str, Any], *,
                   up_to: str | None = None) -> Schema:
    """Add first/last-release facts from osquery's table version index to ``schema``.

    Tables the index knows but ``schema`` lacks become ``removed`` entries when their last
    release is older than ``up_to`` (default: the newest release in the index).
    """
    versions = [v for v in index.get("versions", []) if isinstance(v, str)]
    newest = up_to or (max(versions, key=version_key) if versions else None)
    facts = index.get("tables", {})
    tables = []
    for table in schema:
        info = facts.get(table.name)
        if not isinstance(info, dict):
            tables.append(table)
            continue
        col_facts = _mapping(info.get("columns"))
        columns = []
        for col in table.columns:
            first = _mapping(col_facts.get(col.name)).get("first")
            since = first if first and first != info.get("first") else col.since
            columns.append(col if since == col.since else replace(col, since=since))
        removed = dict(table.removed_columns)
        have = {c.name for c in table.columns}
        for name, cinfo in col_facts.items():
            last = _mapping(cinfo).get("last")
            if name not in have and last and newest and version_key(last) < version_key(newest):
                removed[name] = last
        tables.append(table.with_(columns=tuple(columns), since=info.get("first") or table.since,
                                  removed_columns=removed))
    gone = []
    for name, info in sorted(facts.items()):
        if name in schema.tables or not isinstance(info, dict):
            continue
        last = info.get("last")
        if not last or (newest and version_key(last) >= version_key(newest)):
            continue
        history = _mapping(info.get("platforms_history"))
        platforms: tuple[str, ...] = ()
        if history:
            newest_key = max(history, key=lambda k: version_key(str(
                _mapping(history[k]).get("last"))))
            platforms = _platforms(newest_key.split(","))
        cols = _mapping(info.get("columns"))
        gone.append(TableSchema(
            name=name, platforms=platforms, since=info.get("first"), until=last,
            columns=tuple(ColumnSchema(c) for c in cols)))
    return Schema(tables, removed=[*schema.removed.values(), *gone],
                  osquery_version=schema.osquery_version or newest, sources=schema.sources)


def overlay(base: Schema, extra: Schema) -> Schema:
    """``base`` with ``extra``'s tables added; a table both have keeps ``base``'s facts and
    gains ``extra``'s additional platforms and columns (how Fleet extends core tables)."""
    tables = dict(base.tables)
    for table in extra:
        core = tables.get(table.name)
        if core is None:
            tables[table.name] = table
            continue
        platforms = tuple(dict.fromkeys((*core.platforms, *table.platforms)))
        added = tuple(c for c in table.columns if core.column(c.name) is None)
        tables[table.name] = core.with_(platforms=platforms, columns=core.columns + added)
    return Schema(tables.values(), removed=base.removed.values(),
                  osquery_version=base.osquery_version, sources=base.sources + extra.sources)


def load_schema(*paths: str | os.PathLike[str], origin: str | None = None) -> Schema:
    """Read and merge schema files (later files win on a table-name clash).

    Each file may be in any format listed in this module's docstring. A version index only
    adds release facts to the tables read before it. ``origin`` overrides where the tables
    are said to come from (e.g. ``"extension"`` for ``--schema`` files).
    Raises :class:`osqsdk.errors.SchemaError` naming the file when one cannot be used.
    """
    schema = Schema()
    for path in paths:
        data = read_json(path)
        try:
            if detect_format(data) == "versions":
                schema = apply_versions(schema, data)
                continue
            part = schema_from_data(data, str(path), origin=origin)
        except SchemaError as exc:
            if str(path) in str(exc):
                raise
            raise SchemaError(f"{path}: {exc}") from exc
        schema = schema.merged(part)
    return schema

