"""osquery table schemas as facts: which tables and columns exist, with which flags, where.

The public API (stable; the extension runtime and the local SQL runner use it too)::

    from osqsdk.schema import default_schema, load_schema

    schema = default_schema()                  # osquery 5.23 facts shipped with osqsdk
    schema.table("processes").column("pid")    # ColumnSchema(name='pid', type=BIGINT, index=True…)
    ext = load_schema("acme.spec.json")        # an extension's --spec output, osquery.io JSON…
    both = schema.merged(ext)

* :func:`default_schema` -> :class:`Schema` (cached): the shipped osquery 5.23 facts.
* :func:`load_schema` ``(*paths)`` -> :class:`Schema`: reads osqsdk's own format,
  osquery.io's schema JSON, Fleet's schema, osquery's specs-as-JSON, extension ``--spec``
  output and the table version index, and merges them in order.
* :class:`Schema` ``.tables``: ``Mapping[str, TableSchema]``; ``.table(name)`` also follows
  table aliases; ``.removed`` has tables that older releases had.
* :class:`TableSchema`: ``name``, ``columns`` (ordered :class:`ColumnSchema`), ``platforms``,
  ``evented``, ``cacheable``, ``user_data``, ``utility``, ``aliases``, ``since``/``until``,
  ``origin``; ``.column(name)`` follows column aliases.
* :class:`ColumnSchema`: ``name``, ``type`` (:class:`osqsdk.ColumnType`), ``required``,
  ``index``, ``hidden``, ``additional``, ``optimized``, ``aliases``, ``platforms``,
  ``collate``, ``since``.

This package imports neither Thrift, sqlglot nor click.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from osqsdk.errors import SchemaError
from osqsdk.schema._load import load_schema, schema_from_data
from osqsdk.schema._model import ColumnSchema, Schema, TableSchema, version_key

__all__ = [
    "ColumnSchema",
    "Schema",
    "SchemaError",
    "TableSchema",
    "data_file",
    "default_schema",
    "load_schema",
    "schema_from_data",
    "version_key",
]

#: The file under the schema data directory holding the default tables.
DEFAULT_SCHEMA_FILE = "osquery-5.23.json"


def data_file(name: str) -> Path:
    """Path of a file shipped in the schema data directory.

    An installed wheel carries it as ``osqsdk/_data/schema/NAME``; a source checkout has it
    in the repository's top-level ``schema/`` directory.
    """
    package_dir = Path(__file__).resolve().parent.parent
    installed = package_dir / "_data" / "schema" / name
    if installed.is_file():
        return installed
    checkout = package_dir.parent / "schema" / name
    if checkout.is_file():
        return checkout
    raise SchemaError(f"osqsdk's data file {name!r} is missing (looked in {installed.parent} "
                      f"and {checkout.parent})")


@functools.cache
def read_data(name: str) -> Any:
    """Decoded JSON of a shipped data file (cached; treat it as read-only)."""
    with open(data_file(name), encoding="utf-8") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=1)
def default_schema() -> Schema:
    """The osquery 5.23 table facts shipped with osqsdk (built once, then cached)."""
    return schema_from_data(read_data(DEFAULT_SCHEMA_FILE), DEFAULT_SCHEMA_FILE)
