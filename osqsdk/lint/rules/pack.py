"""OSQ4xx: pack and config fields osquery drops or misreads without saying so."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from osqsdk.lint._model import CONFIG_KEYS, Document, LintRun, QueryRecord
from osqsdk.lint._rule import DocAnchor, DocumentRule, Report, Rule, RunRule
from osqsdk.lint._sql import suggest

__all__ = ["DuplicateQueryName", "IntervalOutOfRange", "MissingPackFile",
           "PackPathOutsideInputs", "ReservedQueryName", "ScheduledNameCollision",
           "ShardOutOfRange", "SnapshotWithRemoved", "UndefinedFleetQuery", "UnknownKey"]

#: osquery's kMaxQueryInterval (one week).
MAX_INTERVAL = 604800
RESERVED_PREFIXES = ("query.", "cache.", "config_views.")
RESERVED_SUFFIXES = ("epoch", "counter")
QUERY_KEYS = ("query", "interval", "snapshot", "removed", "denylist", "platform", "version",
              "shard", "startup_priority", "description", "value")
# Config parser plugins also read their keys from packs (file paths, YARA, ...).
PACK_KEYS = ("queries", "discovery", "platform", "version", "shard", "oncall", "description",
             "value", "file_paths", "file_paths_query", "file_accesses", "exclude_paths",
             "yara", "events")


def _scheduled(document: Document) -> Iterator[tuple[QueryRecord, tuple[Any, ...]]]:
    """Schedule and pack queries of ``document`` that are objects, with their object path."""
    for rec in document.queries:
        if rec.kind in ("schedule", "pack") and rec.object_path is not None:
            yield rec, rec.object_path


class IntervalOutOfRange(DocumentRule):
    """A query's `interval` is zero, negative, or longer than a week.

    ## Why is this bad?
    osquery skips a query whose interval is not between 1 and 604800 seconds, logging one
    line at load; it never runs.

    ## Example
    ```json
    {"query": "SELECT * FROM users", "interval": 0}
    ```
    Use instead:
    ```json
    {"query": "SELECT * FROM users", "interval": 3600}
    ```
    """

    code = "OSQ401"
    name = "interval-out-of-range"
    message = "interval {interval} is outside 1..604800 seconds; osquery skips the query"

    def check(self, document: Document) -> Iterator[Report]:
        from osqsdk._osquery.config import parse_interval

        for rec in document.queries:
            if rec.object_path is None or "interval" not in rec.fields:
                continue
            value = parse_interval(rec.fields["interval"])
            if value is None:
                continue
            low = 0 if rec.kind == "fleet_query" else 1
            if value < low or value > MAX_INTERVAL:
                yield self.report(DocAnchor(rec.object_path + ("interval",)), interval=value)
        for pack in document.packs.values():
            if pack.get("fleet") and isinstance(pack["value"].get("queries"), list):
                for i, q in enumerate(pack["value"]["queries"]):
                    if isinstance(q, dict) and "interval" in q:
                        value = parse_interval(q["interval"])
                        if value is not None and not 1 <= value <= MAX_INTERVAL:
                            yield self.report(DocAnchor(pack["path"] + ("queries", i,
                                                                        "interval")),
                                              interval=value)


class SnapshotWithRemoved(DocumentRule):
    """A snapshot query also asks for `removed` results.

    ## Why is this bad?
    Snapshot queries log the full result every time; there are no added or removed rows,
    so `removed` has no effect. The combination suggests a differential query was meant.

    ## Example
    ```json
    {"query": "SELECT * FROM users", "snapshot": true, "removed": true}
    ```
    Use instead:
    ```json
    {"query": "SELECT * FROM users", "snapshot": true}
    ```
    """

    code = "OSQ402"
    name = "snapshot-with-removed"
    severity = "warning"
    message = "snapshot query with removed: true; snapshots have no removed rows"

    def check(self, document: Document) -> Iterator[Report]:
        for rec, path in _scheduled(document):
            if rec.snapshot and rec.removed:
                yield self.report(DocAnchor(path + ("removed",), key=True))


class ShardOutOfRange(DocumentRule):
    """A `shard` value is not between 1 and 100.

    ## Why is this bad?
    A shard is the percentage of hosts that run the query. osquery compares it with a
    per-host number from 0 to 100: outside 1..100 the query runs nowhere or everywhere,
    never on the intended share.

    ## Example
    ```json
    {"query": "SELECT * FROM users", "shard": 150}
    ```
    Use instead:
    ```json
    {"query": "SELECT * FROM users", "shard": 50}
    ```
    """

    code = "OSQ403"
    name = "shard-out-of-range"
    message = "shard {shard} is outside 1..100"

    def check(self, document: Document) -> Iterator[Report]:
        from osqsdk._osquery.config import parse_interval

        owners = [(path, r.fields) for r, path in _scheduled(document)]
        owners += [(p["path"], p["value"]) for p in document.packs.values()
                   if isinstance(p.get("value"), dict) and not p.get("fleet")]
        for path, fields in owners:
            if isinstance(fields, dict) and "shard" in fields:
                value = parse_interval(fields["shard"])
                if value is not None and not 1 <= value <= 100:
                    yield self.report(DocAnchor(path + ("shard",)), shard=value)


class DuplicateQueryName(DocumentRule):
    """Two queries (or policies) of one Fleet file have the same name.

    ## Why is this bad?
    Fleet identifies queries by name: applying the file keeps one of them and silently
    replaces the other.

    ## Example
    ```yaml
    - name: users
      query: SELECT * FROM users
    - name: users
      query: SELECT * FROM groups
    ```
    Use instead:
    ```yaml
    - name: users
      query: SELECT * FROM users
    - name: groups
      query: SELECT * FROM groups
    ```
    """

    code = "OSQ404"
    name = "duplicate-query-name"
    severity = "warning"
    message = "{kind} name {query!r} is used more than once in this file"

    def check(self, document: Document) -> Iterator[Report]:
        if not document.fleet:
            return
        seen: dict[tuple[str, str], int] = {}
        for rec in document.queries:
            if not rec.name or rec.object_path is None:
                continue
            key = (rec.kind, rec.name)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 2:
                yield self.report(DocAnchor(rec.object_path + ("name",)),
                                  kind=rec.kind.replace("fleet_", ""), query=rec.name)


class ReservedQueryName(DocumentRule):
    """A query name osquery reserves for its own database keys.

    ## Why is this bad?
    Since 2025 osquery refuses query names that start with `query.`, `cache.` or
    `config_views.`, or end with `epoch` or `counter` (`Invalid query name`); the query never
    runs.

    ## Example
    ```json
    {"schedule": {"boot_epoch": {"query": "SELECT * FROM uptime"}}}
    ```
    Use instead:
    ```json
    {"schedule": {"boot_time": {"query": "SELECT * FROM uptime"}}}
    ```
    """

    code = "OSQ405"
    name = "reserved-query-name"
    message = "query name {query!r} is reserved by osquery ({why})"

    def check(self, document: Document) -> Iterator[Report]:
        for rec, path in _scheduled(document):
            name = rec.name
            why = next((f"starts with {p!r}" for p in RESERVED_PREFIXES
                        if name.startswith(p)), None) or next(
                (f"ends with {s!r}" for s in RESERVED_SUFFIXES if name.endswith(s)), None)
            if why:
                yield self.report(DocAnchor(path, key=True), query=name, why=why)


class ScheduledNameCollision(RunRule):
    """Two queries of one config get the same scheduled name.

    ## Why is this bad?
    osquery names a pack query `pack<d><pack><d><query>` with `d` the `pack_delimiter`
    (default `_`), so pack `a_b` with query `c` and pack `a` with query `b_c` collide;
    osquery keeps one and drops the other without a word.

    ## Example
    Packs `net_tools` (query `ports`) and `net` (query `tools_ports`).

    Use instead:
    Distinct names, or a `pack_delimiter` that does not occur in names (e.g. `/`).
    """

    code = "OSQ406"
    name = "scheduled-name-collision"
    severity = "warning"
    message = "scheduled name {scheduled!r} is also used by {other}"

    def check(self, run: LintRun) -> Iterator[Report]:
        configs = [d for d in run.documents if d.kind == "config"]
        for config in configs:
            delim = str(config.options.get("pack_delimiter", "_"))
            seen: dict[str, str] = {}
            docs = [config] + [d for d in run.documents if d.parent is config]
            for doc in docs:
                for rec, path in _scheduled(doc):
                    pack = doc.pack_name or rec.pack
                    if rec.kind == "schedule":
                        full, label = rec.name, f"schedule query {rec.name!r}"
                    else:
                        full = f"pack{delim}{pack}{delim}{rec.name}"
                        label = f"query {rec.name!r} of pack {pack!r}"
                    if full in seen and seen[full] != label:
                        yield self.report(DocAnchor(path, key=True), document=doc,
                                          scheduled=full, other=seen[full])
                    seen.setdefault(full, label)


class UnknownKey(DocumentRule):
    """A config, pack or query object has a key osquery does not read.

    ## Why is this bad?
    osquery ignores unknown keys, so a misspelt `intreval` or `snapshoot` silently falls back
    to the default. (`description` and `value` are accepted: osquery's own packs use them.)

    ## Example
    ```json
    {"query": "SELECT * FROM users", "intreval": 60}
    ```
    Use instead:
    ```json
    {"query": "SELECT * FROM users", "interval": 60}
    ```
    """

    code = "OSQ407"
    name = "unknown-key"
    severity = "warning"
    message = "{owner} has key {key!r}, which osquery ignores"
    hint = "did you mean {suggestion!r}?"

    def check(self, document: Document) -> Iterator[Report]:
        if document.fleet or not isinstance(document.value, dict):
            return
        if document.kind == "config":
            for key in document.value:
                s = suggest(key, CONFIG_KEYS)
                if key not in CONFIG_KEYS and s:  # other top-level keys belong to plugins
                    yield self.report(DocAnchor((key,), key=True), owner="the config", key=key,
                                      suggestion=s)
        for name, pack in document.packs.items():
            value = pack.get("value")
            if pack.get("fleet") or not isinstance(value, dict):
                continue
            for key in value:
                if key not in PACK_KEYS:
                    yield self.report(DocAnchor(pack["path"] + (key,), key=True),
                                      owner=f"pack {name!r}", key=key,
                                      suggestion=suggest(key, PACK_KEYS))
        for rec, path in _scheduled(document):
            for key in rec.fields:
                if key not in QUERY_KEYS:
                    yield self.report(DocAnchor(path + (key,), key=True),
                                      owner=f"query {rec.name!r}", key=key,
                                      suggestion=suggest(key, QUERY_KEYS))


class PackPathOutsideInputs(Rule):
    """A config's pack path (or glob) points outside the files being linted.

    ## Why is this bad?
    The linter never reads outside its inputs, so that pack is not checked. It is usually a
    deployment path (`/etc/osquery/packs/...`), which is right: osqueryd's filesystem config
    plugin opens a pack path as it is written, so a relative path would be taken from
    osqueryd's working directory, not from the config's folder (docs/lint.md §1.5). Keep
    the absolute path and give the linter the pack files too.

    ## Example
    ```sh
    osqsdk lint /etc/osquery/osquery.conf
    ```
    Use instead:
    ```sh
    osqsdk lint /etc/osquery/osquery.conf /etc/osquery/packs/
    ```
    """

    code = "OSQ408"
    name = "pack-path-outside-inputs"
    severity = "warning"
    message = "pack path {target!r} is outside the linted files; it was not read"


class MissingPackFile(Rule):
    """A config's pack path or glob matches no file.

    ## Why is this bad?
    osquery logs an error for the pack and runs none of its queries.

    ## Example
    ```json
    {"packs": {"it": "packs/it-complaince.conf"}}
    ```
    Use instead:
    ```json
    {"packs": {"it": "packs/it-compliance.conf"}}
    ```
    """

    code = "OSQ409"
    name = "missing-pack-file"
    message = "pack path {target!r} matches no file"


class UndefinedFleetQuery(RunRule):
    """A Fleet pack refers to a query name that no linted file defines.

    ## Why is this bad?
    `fleetctl apply` refuses a pack whose queries do not exist, so the whole pack is lost.

    ## Example
    ```yaml
    kind: pack
    spec:
      name: base
      queries:
      - query: usres
    ```
    Use instead:
    ```yaml
      - query: users
    ```
    """

    code = "OSQ410"
    name = "undefined-fleet-query"
    message = "pack {pack!r} refers to query {query!r}, which no linted file defines"
    hint = "did you mean {suggestion!r}?"

    def check(self, run: LintRun) -> Iterator[Report]:
        defined = {r.name for d in run.documents if d.fleet for r in d.queries
                   if r.kind == "fleet_query"}
        for doc in run.documents:
            for name, pack in doc.packs.items():
                queries = pack["value"].get("queries") if pack.get("fleet") else None
                if not isinstance(queries, list):
                    continue
                for i, q in enumerate(queries):
                    ref = q.get("query") if isinstance(q, dict) else None
                    if isinstance(ref, str) and ref not in defined:
                        yield self.report(DocAnchor(pack["path"] + ("queries", i, "query")),
                                          document=doc, pack=name, query=ref,
                                          suggestion=suggest(ref, sorted(defined)))
