"""OSQ0xx: files that osqueryd or Fleet cannot read at all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from osqsdk.lint._model import Document, LintRun, QueryUnit
from osqsdk.lint._rule import (
    DocAnchor,
    DocumentRule,
    FileAnchor,
    QueryRule,
    Report,
    Rule,
    RunRule,
    SqlAnchor,
)

__all__ = ["AnalysisFailed", "AnalysisSkipped", "ConfigTooLarge", "DuplicateKey", "InvalidJson",
           "InvalidStructure", "InvalidYaml", "SyntaxError_", "TooDeeplyNested",
           "UnreadableFile"]


class SyntaxError_(QueryRule):
    """The query is not valid SQLite SQL.

    ## Why is this bad?
    osqueryd compiles a scheduled query only when it runs it. A syntax error is logged as
    `Error executing scheduled query` on every run, and the query never returns a row; the
    config itself still loads, so nothing else warns you.

    ## Example
    ```sql
    SELECT pid, name FROM processes WHERE;
    ```
    Use instead:
    ```sql
    SELECT pid, name FROM processes WHERE on_disk = 0;
    ```

    ## Known problems
    SQLite decides: the linter compiles the query with SQLite (never runs it) and reports
    its message where it points. The SQLite it uses is newer than osqueryd's, so syntax
    added to SQLite after osqueryd's release compiles here (docs/lint.md §1.6).
    """

    code = "OSQ001"
    name = "syntax-error"
    message = "SQL syntax error: {detail}"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        refused = unit.refused_as("syntax", "other")
        if refused is not None and not unit.parsed.too_deep:
            detail = refused.error or "syntax error"
            if refused.offset is None and detail == "incomplete input":
                detail = "incomplete input (the query ends too early)"
                end = len(unit.record.sql.rstrip())
                yield self.report(SqlAnchor(max(0, end - 1), end), detail=detail)
                return
            yield self.at_refusal(unit, refused, detail=detail)


class AnalysisSkipped(QueryRule):
    """SQLite compiles the query, but the linter's analyser cannot read it.

    ## Why is this bad?
    It is not: the query is valid. The checks that need the query's structure (columns per
    table, required constraints, platforms of tables, cost) were skipped for it, so this
    finding says that those were not checked.

    ## Example
    A construct SQLite accepts that sqlglot's SQLite dialect does not parse, such as
    `LIKE "!%" ESCAPE "!"` with double-quoted strings.

    Use instead:
    Nothing needs to change; `osqsdk: ignore[OSQ010]` hides it for that query.
    """

    code = "OSQ010"
    name = "analysis-skipped"
    severity = "info"
    message = ("SQLite compiles this query, but the linter cannot analyse it; its column, "
               "constraint and cost checks were skipped")

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        if unit.parsed.error and not unit.parsed.too_deep and unit.verdicts \
                and unit.refusal is None:
            yield self.report(SqlAnchor(None, None))


class InvalidJson(Rule):
    """The config or pack is not JSON, even after osquery's comment stripping.

    ## Why is this bad?
    osqueryd refuses the whole config (`Error reading config`) or skips the pack, so none of
    its queries run. osquery reads JSON strictly: no trailing commas, no inline comments,
    only whole-line `#` and `//` comments.

    ## Example
    ```json
    {"queries": {"a": {"query": "SELECT 1", "interval": 60},}}
    ```
    Use instead:
    ```json
    {"queries": {"a": {"query": "SELECT 1", "interval": 60}}}
    ```
    """

    code = "OSQ002"
    name = "invalid-json"
    message = "not valid JSON: {detail}"


class InvalidYaml(Rule):
    """A Fleet YAML file does not parse.

    ## Why is this bad?
    `fleetctl apply` and `fleetctl gitops` reject the whole file, so none of its queries,
    packs or policies reach Fleet.

    ## Example
    ```yaml
    spec:
      query: SELECT * FROM users
     name: users
    ```
    Use instead:
    ```yaml
    spec:
      query: SELECT * FROM users
      name: users
    ```
    """

    code = "OSQ003"
    name = "invalid-yaml"
    message = "not valid YAML: {detail}"


class UnreadableFile(Rule):
    """An input cannot be read as text: binary, not UTF-8, too large, or a symlink loop.

    ## Why is this bad?
    osquery and Fleet read configs, packs and queries as UTF-8 text; anything else is
    refused or, worse, half-read. A symlink loop or a dangling link usually means a broken
    checkout.

    ## Example
    A pack saved as UTF-16 by an editor, or `packs/current -> packs/current`.

    Use instead:
    Save the file as UTF-8 and point links at real files inside the tree.
    """

    code = "OSQ004"
    name = "unreadable-file"
    message = "cannot read: {cause}"


class TooDeeplyNested(QueryRule):
    """A document or query nests deeper than osquery accepts.

    ## Why is this bad?
    osquery refuses configs nested more than 32 levels deep, and SQLite refuses expressions
    nested more than 1000 deep. Deep nesting is almost always generated by mistake.

    ## Example
    ```json
    {"a": {"b": {"c": {"...": "32 more levels"}}}}
    ```
    Use instead:
    Flatten the structure; osquery's config has at most five meaningful levels.
    """

    code = "OSQ005"
    name = "too-deeply-nested"
    message = "{what} nested deeper than {limit} levels"

    def check(self, unit: QueryUnit) -> Iterator[Report]:
        parsed = unit.parsed
        if parsed.too_deep:
            from osqsdk.lint._sql import PARSE_DEPTH_LIMIT, SQLITE_MAX_DEPTH

            limit = SQLITE_MAX_DEPTH if parsed.depth > SQLITE_MAX_DEPTH else PARSE_DEPTH_LIMIT
            yield self.report(SqlAnchor(parsed.error_offset, parsed.error_offset + 1),
                              what="query parentheses", limit=limit)


class ConfigTooLarge(RunRule):
    """A config or pack file is larger than osquery reads.

    ## Why is this bad?
    osquery 5.x refuses a config source over 1 MiB after comment stripping (4 MiB after
    5.23), so every query in it is lost.

    ## Example
    One pack with thousands of generated queries.

    Use instead:
    Split it into several packs referenced from the config.

    ## Options
    `osquery-version`: releases after 5.23 allow 4 MiB.
    """

    code = "OSQ006"
    name = "config-too-large"
    message = "{size} bytes is more than the {limit} bytes osquery {version} reads"

    def check(self, run: LintRun) -> Iterator[Report]:
        from osqsdk.schema import version_key

        version = run.settings.osquery_version
        if version and version_key(version) > version_key("5.23.99"):
            limit = 4 * 1024 * 1024
        else:
            limit, version = 1024 * 1024, version or "5.23"
        for doc in run.documents:
            if doc.stripped is not None and doc.size > limit:  # after comment stripping
                yield self.report(FileAnchor(1, 1), document=doc, size=doc.size, limit=limit,
                                  version=version)


class InvalidStructure(DocumentRule):
    """A config, pack or Fleet file has a value of the wrong type or shape.

    ## Why is this bad?
    osquery drops what it cannot use with at most a log line: a query whose `query` is not a
    string, an `interval` that is not a number, a `queries` that is a list. The pack loads
    and silently does less than you think.

    ## Example
    ```json
    {"queries": {"users": {"query": "SELECT * FROM users", "interval": "hourly"}}}
    ```
    Use instead:
    ```json
    {"queries": {"users": {"query": "SELECT * FROM users", "interval": 3600}}}
    ```
    """

    code = "OSQ007"
    name = "invalid-structure"
    message = "{where}: {detail}"

    def check(self, document: Document) -> Iterator[Report]:
        from osqsdk.lint._structure import errors

        for base, value, schema in _parts(document):
            for path, detail in errors(value, schema):
                full = base + path
                shown = full[1:] if document.fleet else full  # not the YAML document index
                where = "/".join(str(p) for p in shown)
                yield self.report(DocAnchor(full), where=where or "(top level)", detail=detail)


_FLEET_KINDS = {"query": "query", "report": "query", "built-in": "query", "policy": "policy",
                "label": "label", "pack": "pack"}


def _parts(document: Document) -> Iterator[tuple[tuple[Any, ...], Any, dict[str, Any]]]:
    """(path, value, schema) for each part of a document that a shipped schema describes."""
    from osqsdk.lint._structure import schema_for

    if document.kind in ("config", "pack") and isinstance(document.value, dict):
        yield (), document.value, schema_for(document.kind)
        return
    if not document.fleet or not isinstance(document.value, list):
        return
    fleet = schema_for("fleet")
    for i, doc in enumerate(document.value):
        if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
            kind = _FLEET_KINDS.get(str(doc.get("kind", "")).lower())
            if kind is not None:
                yield (i, "spec"), doc["spec"], {**fleet, "$ref": f"#/definitions/{kind}"}
            elif str(doc.get("kind", "")).lower() == "options":
                config = doc["spec"].get("config")
                if isinstance(config, dict):
                    yield (i, "spec", "config"), config, schema_for("config")
        elif isinstance(doc, dict):
            for key, kind in (("queries", "query"), ("reports", "query"),
                              ("policies", "policy"), ("labels", "label")):
                items = doc.get(key)
                if isinstance(items, list):
                    for j, item in enumerate(items):
                        if isinstance(item, dict) and "path" not in item:
                            yield (i, key, j), item, {**fleet,
                                                      "$ref": f"#/definitions/{kind}"}
        elif isinstance(doc, list):
            for j, item in enumerate(doc):
                if isinstance(item, dict):
                    yield (i, j), item, {**fleet, "$ref": "#/definitions/query"}


class DuplicateKey(Rule):
    """An object has the same key twice.

    ## Why is this bad?
    JSON parsers keep one of the two values without a warning, and not the same one.
    osqueryd reads the first in most places (RapidJSON's lookup finds the first member of
    a name, and a pack keeps the first query of a name) but the last in a config's `packs`
    (a pack replaces one of the same name) and `options` (each sets its flag again), while
    Python, jq and most editors' previews show the last everywhere. The query a reviewer
    reads may not be the one that runs.

    ## Example
    ```json
    {"queries": {"users": {"query": "SELECT 1"}, "users": {"query": "SELECT 2"}}}
    ```
    Use instead:
    ```json
    {"queries": {"users": {"query": "SELECT 1"}, "users_2": {"query": "SELECT 2"}}}
    ```
    """

    code = "OSQ008"
    name = "duplicate-key"
    severity = "warning"
    message = "key {key!r} appears more than once; osqueryd reads only the {which}"


class AnalysisFailed(Rule):
    """The linter failed on this input: a bug in osqsdk, not in the pack.

    ## Why is this bad?
    The query or document was not (fully) checked, so other findings may be missing. Please
    report it with the input that triggers it.

    ## Example
    Any input; this should never appear.

    Use instead:
    Nothing to change in the pack; `osqsdk: ignore[OSQ009]` hides it until it is fixed.
    """

    code = "OSQ009"
    name = "analysis-failed"
    severity = "warning"
    message = "the linter could not check this: {error}"
