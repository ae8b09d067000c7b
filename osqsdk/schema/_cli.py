"""``osqsdk schema``: import osquery table schemas into osqsdk's format and inspect them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from osqsdk.errors import SchemaError

__all__ = ["schema"]


def _dump(doc: dict[str, Any]) -> str:
    """JSON with one table (or function) per block and one column per line: short diffs."""
    lines = ["{"]
    items = list(doc.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f" {json.dumps(key)}: [")
            for j, item in enumerate(value):
                end = "," if j < len(value) - 1 else ""
                cols = item.get("columns") if isinstance(item, dict) else None
                if isinstance(cols, list):
                    head = {k: v for k, v in item.items() if k != "columns"}
                    lines.append("  " + json.dumps(head, ensure_ascii=False)[:-1]
                                 + ', "columns": [')
                    for k, col in enumerate(cols):
                        lines.append("   " + json.dumps(col, ensure_ascii=False)
                                     + ("," if k < len(cols) - 1 else ""))
                    lines.append("  ]}" + end)
                else:
                    lines.append("  " + json.dumps(item, ensure_ascii=False) + end)
            lines.append(" ]" + comma)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines)


def _write(doc: dict[str, Any], output: str | None) -> int:
    """Write ``doc`` to ``output`` (stdout for None or ``-``); the exit code."""
    text = _dump(doc) + "\n"
    if output in (None, "-"):
        click.echo(text, nl=False)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        return 2
    return 0


@click.group("schema", context_settings={"help_option_names": ["-h", "--help"]})
def schema() -> None:
    """Import osquery table schemas (facts only) and inspect them."""


@schema.command("import")
@click.argument("sources", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--enrich", "enrich_from", multiple=True, type=click.Path(dir_okay=False),
              help="Fill in aliases, additional/optimized, user_data and column platforms "
                   "from this fuller source (osquery's specs as JSON) for tables already read.")
@click.option("--versions", type=click.Path(dir_okay=False),
              help="osquery's table version index: first/last release of tables and columns.")
@click.option("--osqueryi", "osqueryi", is_flag=False, flag_value="osqueryi", default=None,
              help="Also read the tables of a live osqueryi (default: the one on PATH).")
@click.option("--osquery-version", help="The osquery release the result describes.")
@click.option("--without", "without", multiple=True, type=click.Path(dir_okay=False),
              help="Leave out tables that this schema file also has (e.g. core osquery "
                   "tables when importing Fleet's schema for its fleetd tables).")
@click.option("--origin", type=click.Choice(["osquery", "fleet", "extension"]),
              help="Mark every imported table as coming from here.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write here (default: stdout).")
def import_(sources: tuple[str, ...], enrich_from: tuple[str, ...], versions: str | None,
            osqueryi: str | None, without: tuple[str, ...], osquery_version: str | None,
            origin: str | None, output: str | None) -> int:
    """Convert schema SOURCES into osqsdk's own schema format.

    SOURCES may be osquery.io's schema JSON, Fleet's schema, osquery's specs as JSON,
    or the JSON an osqsdk extension prints with --spec; later sources win on a name clash.
    A file of osquery's SQL functions is converted into osqsdk's functions format instead.
    Only facts are kept: names, types, flags, platforms and releases, never descriptions.

    Exit codes: 0 written, 2 a source could not be read or the output not written.
    """
    from osqsdk.schema._import import functions_document, import_schema, schema_document
    from osqsdk.schema._load import detect_format, read_json

    command = "osqsdk schema import " + " ".join(_shown_args())
    try:
        if len(sources) == 1 and not (enrich_from or versions or osqueryi):
            data = read_json(sources[0])
            if detect_format(data) == "functions":
                return _write(functions_document(data, generated_by=command), output)
        result = import_schema(sources, enrich_from=enrich_from, versions=versions,
                               osqueryi=osqueryi, osquery_version=osquery_version, origin=origin,
                               without=without)
    except SchemaError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    if _write(schema_document(result, generated_by=command), output):
        return 2
    if output not in (None, "-"):
        click.echo(f"{output}: {len(result)} tables, {len(result.removed)} removed tables",
                   err=True)
    return 0


def _shown_args() -> list[str]:
    """The import's own arguments as typed (recorded as ``generated_by``)."""
    args = sys.argv[1:]
    if "import" in args:
        args = args[args.index("import") + 1:]
    return args


@schema.command("show")
@click.argument("table")
@click.option("--schema", "schema_files", multiple=True, type=click.Path(dir_okay=False),
              help="Read this schema instead of the default osquery facts (repeatable).")
def show(table: str, schema_files: tuple[str, ...]) -> int:
    """Print the facts about one TABLE as JSON (exit 1 when it is unknown)."""
    from osqsdk.schema import default_schema, load_schema

    try:
        s = load_schema(*schema_files) if schema_files else default_schema()
    except SchemaError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    found = s.table(table) or s.removed_table(table)
    if found is None:
        click.echo(f"{table}: no such table", err=True)
        return 1
    click.echo(json.dumps(found.to_json(), indent=1))
    return 0
