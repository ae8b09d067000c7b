"""OSQ2xx: tables, columns and platform values against the platforms a query runs on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from osqsdk.lint._model import Document, QueryUnit
from osqsdk.lint._platform import FLEET_PLATFORMS, KNOWN_TOKENS, matching, tokens
from osqsdk.lint._rule import DocAnchor, DocumentRule, QueryRule, Report

__all__ = ["ColumnNotOnPlatform", "PlatformConflict", "TableNotOnPlatform", "UnknownPlatform"]


def _missing(have: tuple[str, ...], wanted: frozenset[str] | None) -> list[str]:
    if wanted is None or not have:
        return []
    return sorted(p for p in wanted if p not in have and p != "freebsd")


class TableNotOnPlatform(QueryRule):
    """The query targets a platform where one of its tables does not exist.

    ## Why is this bad?
    On hosts of that platform every run fails with `no such table`. A query's platforms
    are those of its pack and its own `platform` (or `--platform`); a table's platforms come
    from osquery's specs.

    ## Example
    ```json
    {"platform": "linux", "queries": {"apps": {"query": "SELECT * FROM apps"}}}
    ```
    Use instead:
    ```json
    {"platform": "darwin", "queries": {"apps": {"query": "SELECT * FROM apps"}}}
    ```

    ## Options
    `platform` lints every query as if it targeted those platforms.
    """

    code = "OSQ201"
    name = "table-not-on-platform"
    message = "table {table} does not exist on {platforms} (it exists on {available})"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        seen = set()
        for a in unit.analyses:
            for src, table in a.tables():
                missing = _missing(table.platforms, unit.platforms)
                if missing and table.name not in seen:
                    seen.add(table.name)
                    yield self.at(src.node.this, table=src.display,
                                  platforms=", ".join(missing),
                                  available=", ".join(table.platforms))


class ColumnNotOnPlatform(QueryRule):
    """The query targets a platform where a column of its table is always empty.

    ## Why is this bad?
    Some columns are filled on some platforms only (osquery's `extended_schema`). Elsewhere
    the column exists but is empty, so filters on it silently match nothing.

    ## Example
    ```sql
    -- platform: windows
    SELECT pid, cgroup_path FROM processes;
    ```
    Use instead:
    ```sql
    -- platform: linux
    SELECT pid, cgroup_path FROM processes;
    ```

    ## Options
    `platform` lints every query as if it targeted those platforms.
    """

    code = "OSQ202"
    name = "column-not-on-platform"
    severity = "warning"
    message = "column {table}.{column} is only filled on {available}, not on {platforms}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        seen = set()
        for a in unit.analyses:
            for ref in a.columns:
                col = ref.column
                if col is None or not col.platforms or ref.source is None:
                    continue
                missing = _missing(col.platforms, unit.platforms)
                key = (ref.source.display, col.name)
                if missing and key not in seen:
                    seen.add(key)
                    yield self.at(ref.node, table=ref.source.display, column=col.name,
                                  platforms=", ".join(missing),
                                  available=", ".join(col.platforms))


def _platform_values(document: Document) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    for name, pack in document.packs.items():
        if isinstance(pack.get("platform"), str):
            yield pack["path"] + ("platform",), pack["platform"], f"pack {name}"
    for rec in document.queries:
        if rec.platform is not None and rec.object_path is not None:
            yield rec.object_path + ("platform",), rec.platform, f"query {rec.name}"


class UnknownPlatform(DocumentRule):
    """A `platform` value contains a word osquery (or Fleet) does not know.

    ## Why is this bad?
    osquery matches platforms by substring and case: `macos`, `Linux` or `win` match no
    host, so the query silently never runs. Fleet accepts only `darwin`, `linux`,
    `windows` and `chrome`.

    ## Example
    ```json
    {"platform": "macos"}
    ```
    Use instead:
    ```json
    {"platform": "darwin"}
    ```
    """

    code = "OSQ203"
    name = "unknown-platform"
    message = "platform {value!r} of {owner}: {problem}"

    def check(self, document: Document) -> Iterator[Report]:
        fleet = document.fleet
        for path, value, owner in _platform_values(document):
            words = tokens(value)
            allowed = FLEET_PLATFORMS if fleet else KNOWN_TOKENS
            unknown = [w for w in words if (w.lower() if fleet else w) not in allowed]
            if not fleet and unknown:
                selected = matching(value)
                if selected is not None and not selected:
                    problem = "matches no host, so osquery never runs it"
                else:
                    problem = f"osquery does not know {', '.join(map(repr, unknown))}"
                yield self.report(DocAnchor(path), value=value, owner=owner, problem=problem)
            elif fleet and unknown:
                yield self.report(DocAnchor(path), value=value, owner=owner,
                                  problem=f"Fleet accepts only darwin, linux, windows, chrome "
                                          f"(not {', '.join(map(repr, unknown))})")


class PlatformConflict(DocumentRule):
    """A query's platform and its pack's platform have no platform in common.

    ## Why is this bad?
    osquery checks the pack's platform first, then the query's; when they share nothing the
    query never runs anywhere.

    ## Example
    ```json
    {"platform": "linux", "queries": {"a": {"query": "SELECT 1", "platform": "darwin"}}}
    ```
    Use instead:
    ```json
    {"platform": "linux", "queries": {"a": {"query": "SELECT 1"}}}
    ```
    """

    code = "OSQ204"
    name = "platform-conflict"
    message = ("query platform {query_platform!r} shares no platform with pack {pack} "
               "({pack_platform!r})")

    def check(self, document: Document) -> Iterator[Report]:
        for rec in document.queries:
            if rec.platform is None or rec.pack_platform is None or rec.object_path is None:
                continue
            a, b = matching(rec.platform), matching(rec.pack_platform)
            if a is not None and b is not None and a and b and not (a & b):
                yield self.report(DocAnchor(rec.object_path + ("platform",)),
                                  query_platform=rec.platform, pack=rec.pack,
                                  pack_platform=rec.pack_platform)
