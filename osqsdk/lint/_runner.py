"""One lint run: load inputs, parse each query once, run every selected rule, place findings.

The flow (pyflakes' ``check``, for many files): :class:`~osqsdk.lint._inputs.Loader` turns
paths into documents; each query is parsed once (cached by text) and analysed against the
run's schema; query rules, document rules and run rules yield reports; reports become
:class:`Finding` values at file positions; suppressions and selections filter them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from osqsdk.lint._finding import Finding, severity_rank
from osqsdk.lint._model import Document, LintRun, QueryRecord, QueryUnit
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
from osqsdk.lint._settings import Settings

if TYPE_CHECKING:
    from osqsdk.lint._judge import Judge

__all__ = ["NOQA", "LintResult", "lint_paths", "lint_text", "selected_rules"]

#: A suppression comment. Examples (each on its own line):
#:   ``// osqsdk: ignore[OSQ302]``        JSON: the next line's entry (and all inside it)
#:   ``# osqsdk: ignore[unknown-column]`` YAML: the next line's entry
#:   ``-- osqsdk: ignore[OSQ104,OSQ110]`` SQL: the query it is written in
#:   ``// osqsdk: ignore-file[OSQ110]``   anywhere: the whole file
#:   ``// osqsdk: ignore``                every rule
NOQA = re.compile(r"osqsdk:\s*(ignore-file|ignore)\b(?:\[([^\]]*)\])?")


@dataclass
class LintResult:
    """Findings of a run plus the documents and units behind them.

    It behaves as the sequence of its findings (``for f in lint_paths(...)``, ``len``,
    indexing), sorted by path, line and column.
    """

    findings: list[Finding]
    run: LintRun | None = None
    files: int = 0

    def __iter__(self) -> Iterator[Finding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, index: int) -> Finding:
        return self.findings[index]

    def exit_code(self, fail_on: str = "warning") -> int:
        """1 when a finding is at least as severe as ``fail_on``, else 0."""
        limit = severity_rank(fail_on)
        return int(any(severity_rank(f.severity) <= limit for f in self.findings))


#: Info rules shown without being selected: they say that a check could not be made.
_DEFAULT_INFO = frozenset({"OSQ010"})


def _matches(rule: type[Rule], selector: str) -> bool:
    """Whether ``selector`` (``ALL``, ``DEFAULT``, a code prefix or a rule name) picks
    ``rule``. ``DEFAULT`` is every error and warning rule: findings that change what a query
    returns, what it costs or whether it deploys; style and info rules are opt-in."""
    s = selector.strip()
    if s.upper() == "DEFAULT":
        return rule.severity != "info" or rule.code in _DEFAULT_INFO
    return s.upper() == "ALL" or rule.code.startswith(s.upper()) or rule.name == s.lower()


def in_default(rule: type[Rule]) -> bool:
    """Whether ``rule`` is in the ``DEFAULT`` selection."""
    return _matches(rule, "DEFAULT")


def selected_rules(settings: Settings) -> list[type[Rule]]:
    """The rules ``select``/``extend-select``/``ignore`` leave enabled."""
    from osqsdk.lint.rules import ALL_RULES

    # --hosts asks for the fleet view (OSQ309), an info rule
    wanted = (*settings.select, *settings.extend_select, *(("OSQ309",) if settings.hosts else ()))
    chosen = [r for r in ALL_RULES if any(_matches(r, s) for s in wanted)]
    return [r for r in chosen if not any(_matches(r, s) for s in settings.ignore)]


def unknown_selectors(settings: Settings) -> list[str]:
    """The selectors of ``settings`` that pick no rule at all."""
    from osqsdk.lint.rules import ALL_RULES

    return [s for s in (*settings.select, *settings.extend_select, *settings.ignore)
            if not any(_matches(r, s) for r in ALL_RULES)]


@functools.lru_cache(maxsize=1)
def _functions() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[str, ...]]]:
    from osqsdk.schema import read_data

    data = read_data("functions.json")
    known: dict[str, tuple[int, ...]] = {}
    for group in ("sqlite", "osquery"):
        for fn in data[group]:
            counts = set(known.get(fn["name"], ())) | set(fn["nargs"])
            known[fn["name"]] = tuple(sorted(counts))
    tvfs = {k: tuple(v) for k, v in data["table_functions"].items()}
    return known, tvfs


@functools.lru_cache(maxsize=1)
def _fleetd() -> Any:
    from osqsdk.schema import read_data, schema_from_data

    return schema_from_data(read_data("fleetd.json"), "fleetd.json", origin="fleet")


def _base_schema(settings: Settings) -> Any:
    from osqsdk.schema import default_schema, load_schema

    schema = default_schema()
    if settings.schema_files:
        schema = schema.merged(load_schema(*settings.schema_files, origin="extension"))
    return schema


# One SQLite database per schema object, kept while the schema lives (the bundled schema
# lives for the process, so lint_text calls after the first reuse its database).
_JUDGES: weakref.WeakKeyDictionary[Any, Judge] = weakref.WeakKeyDictionary()


class _Engine:
    def __init__(self, settings: Settings, schema: Any = None) -> None:
        self.settings = settings
        self.rules = selected_rules(settings)
        self.schema = schema if schema is not None else _base_schema(settings)
        self.functions, self.tvfs = _functions()
        self._analyses: dict[tuple[str, int], list[Any]] = {}

    def judge(self, schema: Any) -> Judge:
        """SQLite with ``schema``'s tables and osquery's functions (one per schema)."""
        judge = _JUDGES.get(schema)
        if judge is None:
            from osqsdk.lint._judge import Judge
            from osqsdk.schema import read_data

            data = read_data("functions.json")
            judge = Judge(schema, self.functions, collations=data["collations"])
            _JUDGES[schema] = judge
        return judge

    def schema_for(self, document: Document) -> Any:
        if document.fleet or self.settings.fleetd:
            return self._with_fleetd
        return self._run_schema

    def prepare(self, documents: list[Document]) -> None:
        from osqsdk.schema import ColumnSchema, TableSchema
        from osqsdk.schema._load import overlay

        views = []
        for doc in documents:
            for name, rec in doc.views.items():
                outputs = None
                analyses = self.analyze(rec.sql, self.schema)
                if analyses:
                    outputs = analyses[0].outputs
                views.append(TableSchema(name, tuple(ColumnSchema(n) for n in (outputs or ())),
                                         origin="view"))
        self._run_schema = self.schema.with_tables(views) if views else self.schema
        self._with_fleetd = overlay(self._run_schema, _fleetd())

    def analyze(self, sql: str, schema: Any) -> list[Any]:
        from sqlglot import exp

        from osqsdk.lint._sql import QUERY_TYPES, analyze, parse

        key = (sql, id(schema))
        cached = self._analyses.get(key)
        if cached is not None:
            return cached
        parsed = parse(sql)
        out = []
        for stmt in parsed.statements:
            if isinstance(stmt, (*QUERY_TYPES, exp.Subquery)):
                try:
                    out.append(analyze(stmt, schema, sql, self.tvfs))
                except RecursionError:
                    continue
        self._analyses[key] = out
        return out

    def unit(self, doc: Document, rec: QueryRecord) -> QueryUnit:
        from osqsdk.lint._cost import estimate
        from osqsdk.lint._platform import intersect, matching
        from osqsdk.lint._sql import parse

        schema = self.schema_for(doc)
        parsed = parse(rec.sql)
        verdicts = self.judge(schema).compile(rec.sql)
        refused = verdicts[-1].kind if verdicts and verdicts[-1].error else None
        # a query SQLite cannot even read gets no further analysis (one finding per problem)
        analyses = (self.analyze(rec.sql, schema)
                    if not parsed.error and refused not in ("syntax", "other") else [])
        # the platforms the query targets, narrowed to --platform when it is given (a query
        # for darwin only is not linted as a linux query because --platform linux is given)
        platforms = intersect(matching(rec.platform, fleet=doc.fleet),
                              matching(rec.pack_platform, fleet=doc.fleet))
        if self.settings.platform is not None:
            platforms = intersect(platforms, self.settings.platform)
        cost = estimate(analyses[0]) if analyses else None
        fleetd = _fleetd() if not (doc.fleet or self.settings.fleetd) else None
        return QueryUnit(rec, doc, parsed, analyses, schema, self.settings, platforms, cost,
                         self.functions, fleetd, verdicts)


def _fleet_pack_records(documents: list[Document]) -> None:
    defined: dict[str, tuple[Document, QueryRecord]] = {}
    for doc in documents:
        if doc.fleet:
            for rec in doc.queries:
                if rec.kind == "fleet_query" and rec.name:
                    defined.setdefault(rec.name, (doc, rec))
    from osqsdk._osquery.config import parse_interval

    for doc in documents:
        for pname, pack in doc.packs.items():
            queries = pack["value"].get("queries") if pack.get("fleet") else None
            if not isinstance(queries, list):
                continue
            for entry in queries:
                if not isinstance(entry, dict) or entry.get("query") not in defined:
                    continue
                qdoc, qrec = defined[entry["query"]]
                qdoc.queries.append(QueryRecord(
                    str(entry.get("name") or qrec.name), "pack", qrec.sql, qrec.path,
                    pack=pname, interval=parse_interval(entry.get("interval", 3600)),
                    platform=entry.get("platform") if isinstance(entry.get("platform"), str)
                    else None, snapshot=entry.get("snapshot") is True,
                    removed=entry.get("removed") if isinstance(entry.get("removed"), bool)
                    else None))


def run_documents(documents: list[Document], loader_reports: list[Report], settings: Settings,
                  engine: _Engine, progress: Callable[[int, int], None] | None = None
                  ) -> LintResult:
    _fleet_pack_records(documents)
    engine.prepare(documents)
    reports: list[Report] = list(loader_reports)
    units: list[QueryUnit] = []
    query_rules = [r() for r in engine.rules if issubclass(r, QueryRule)]
    doc_rules = [r() for r in engine.rules if issubclass(r, DocumentRule)]
    run_rules = [r() for r in engine.rules if issubclass(r, RunRule)]
    total = len(documents)
    for i, doc in enumerate(documents):
        for rec in doc.queries:
            try:
                unit = engine.unit(doc, rec)
            except Exception as exc:
                reports.append(_failed(exc, DocAnchor(rec.path), doc))
                continue
            units.append(unit)
            for query_rule in query_rules:
                try:
                    for rep in query_rule.check(unit):
                        reports.append(Report(rep.rule, rep.args, rep.anchor, unit, doc))
                except Exception as exc:
                    reports.append(_failed(exc, DocAnchor(rec.path), doc, query_rule))
        for doc_rule in doc_rules:
            try:
                for rep in doc_rule.check(doc):
                    reports.append(Report(rep.rule, rep.args, rep.anchor, None,
                                          rep.document or doc))
            except Exception as exc:
                reports.append(_failed(exc, FileAnchor(1, 1), doc, doc_rule))
        if progress is not None:
            progress(i + 1, total)
    run = LintRun(documents, units, settings, engine.schema)
    for run_rule in run_rules:
        try:
            reports.extend(run_rule.check(run))
        except Exception as exc:
            if documents:
                reports.append(_failed(exc, FileAnchor(1, 1), documents[0], run_rule))
    findings = _place(reports, settings, engine)
    return LintResult(findings, run, total)


def _after_escape(doc: Document, offset: int) -> int:
    """The file offset just after the character that starts at ``offset``: a JSON or YAML
    escape (``\\"``, ``\\u0022``) is one character of the query and several of the file."""
    text = doc.source.text
    if doc.kind != "sql" and text[offset:offset + 1] == "\\":
        return offset + (6 if text[offset + 1:offset + 2] == "u" else 2)
    return offset + 1


def _failed(exc: BaseException, anchor: SqlAnchor | DocAnchor | FileAnchor, doc: Document,
            rule: Rule | None = None) -> Report:
    from osqsdk.lint.rules.inputs import AnalysisFailed

    where = f"{rule.code} " if rule is not None else ""
    return AnalysisFailed.report(anchor, document=doc,
                                 error=f"{where}{type(exc).__name__}: {exc}"[:300])


# --- placing findings --------------------------------------------------------------------

def _place(reports: list[Report], settings: Settings, engine: _Engine) -> list[Finding]:
    from osqsdk.lint._inputs import sql_offset_map

    maps: dict[int, Callable[[int], int]] = {}
    suppress_cache: dict[int, Any] = {}
    enabled = set(engine.rules)
    out: dict[tuple[Any, ...], Finding] = {}
    for rep in reports:
        if rep.rule not in enabled:
            continue
        doc: Document | None = rep.document
        unit: QueryUnit | None = rep.unit
        anchor = rep.anchor
        query = pack = None
        path = doc.path if doc is not None else "<input>"
        line = col = end_line = end_col = 1
        if isinstance(anchor, FileAnchor):
            path = anchor.path or path
            line, col = anchor.line, anchor.column
            end_line = anchor.end_line or line
            end_col = anchor.end_column or col + 1
        elif isinstance(anchor, SqlAnchor) and unit is not None and doc is not None:
            key = id(unit.record)
            if key not in maps:
                maps[key] = sql_offset_map(doc, unit.record)
            fmap = maps[key]
            start = anchor.start if anchor.start is not None else 0
            end = anchor.end if anchor.end is not None else len(unit.record.sql)
            s = fmap(start)
            if start < end < len(unit.record.sql):
                e = fmap(end)  # where the next character starts: after a whole escape
            else:
                e = _after_escape(doc, fmap(max(start, end - 1)))
            line, col = doc.source.position(s)
            end_line, end_col = doc.source.position(e)
            query, pack = unit.record.name, unit.record.pack or doc.pack_name
        elif isinstance(anchor, DocAnchor) and doc is not None:
            span = doc.span(anchor.path, anchor.key)
            if span is not None:
                line, col = doc.source.position(span[0])
                end_line, end_col = doc.source.position(span[1])
            rec = _record_at(doc, anchor.path)
            if rec is not None:
                query, pack = rec.name, rec.pack or doc.pack_name
            else:
                pack = _pack_at(doc, anchor.path) or doc.pack_name
        if unit is not None and query is None:
            query, pack = unit.record.name, unit.record.pack or doc.pack_name if doc else None
        rule = rep.rule
        finding = Finding(rule.code, rule.name, rule.severity, rule.message, rep.args, path,
                          line, col, end_line, end_col, query or None, pack, rule.hint)
        if doc is not None:
            sup = suppress_cache.get(id(doc))
            if sup is None:
                sup = suppress_cache[id(doc)] = _suppressions(doc)
            if _suppressed(sup, finding):
                continue
        if unit is not None and _sql_suppressed(unit.record.sql, rule):
            continue
        if rule.code in settings.ignored_for(path) or rule.name in settings.ignored_for(path):
            continue
        dedup = (finding.code, finding.path, finding.line, finding.column, finding.message)
        out.setdefault(dedup, finding)
    return sorted(out.values(), key=Finding.sort_key)


def _record_at(doc: Document, path: tuple[Any, ...]) -> QueryRecord | None:
    best = None
    for rec in doc.queries:
        op = rec.object_path or rec.path
        if op and tuple(path[:len(op)]) == tuple(op) and (
                best is None or len(op) > len(best.object_path or best.path)):
            best = rec
    return best


def _pack_at(doc: Document, path: tuple[Any, ...]) -> str | None:
    for name, info in doc.packs.items():
        p = info.get("path", ())
        if p and tuple(path[:len(p)]) == tuple(p):
            return name
    return None


def _codes(text: str | None) -> frozenset[str] | None:
    if text is None or not text.strip():
        return None
    from osqsdk.lint.rules import rule_by_code

    out = set()
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        rule = rule_by_code(part)
        out.add(rule.code if rule else part.upper())
    return frozenset(out)


@dataclass
class _Suppressions:
    file_all: bool = False
    file_codes: set[str] = field(default_factory=set)
    regions: list[tuple[int, int, frozenset[str] | None]] = field(default_factory=list)


def _comment_lines(doc: Document) -> Iterable[tuple[int, str]]:
    if doc.stripped is not None:
        for offset, text in doc.stripped.comment_lines:
            yield doc.source.position(offset)[0], text
        return
    marker = "--" if doc.kind == "sql" else "#"
    for i, line in enumerate(doc.source.text.split("\n"), 1):
        s = line.strip()
        if s.startswith(marker) and "osqsdk" in s:
            yield i, s


def _suppressions(doc: Document) -> _Suppressions:
    sup = _Suppressions()
    comments = list(_comment_lines(doc))
    comment_lines = {ln for ln, _ in comments}
    for line, text in comments:
        m = NOQA.search(text)
        if not m:
            continue
        codes = _codes(m.group(2))
        if m.group(1) == "ignore-file":
            if codes is None:
                sup.file_all = True
            else:
                sup.file_codes |= codes
            continue
        if doc.kind == "sql":
            continue  # handled per query
        nxt = line + 1
        while nxt <= doc.source.line_count and (
                nxt in comment_lines or not doc.source.line_text(nxt).strip()):
            nxt += 1
        sup.regions.append((nxt, _entry_end(doc, nxt), codes))
    return sup


def _entry_end(doc: Document, line: int) -> int:
    """Last line of the JSON/YAML entry whose key starts on ``line``."""
    end = line
    position_sets = doc.yaml_positions if doc.fleet else [doc.positions] if doc.positions else []
    for pos in position_sets:
        starts = [(path, ks) for path, (ks, _) in pos.keys.items()]
        starts += [(path, vs) for path, (vs, _) in pos.values.items() if path]
        here = [path for path, start in starts
                if doc.source.position(doc.file_offset(start))[0] == line]
        if not here:
            continue
        # The outermost entry that starts on that line is the one the comment is about.
        path = min(here, key=len)
        value = pos.values.get(path)
        if value is not None:
            last = doc.source.position(doc.file_offset(max(value[0], value[1] - 1)))[0]
            end = max(end, last)
    return end


def _suppressed(sup: _Suppressions, f: Finding) -> bool:
    if sup.file_all or f.code in sup.file_codes:
        return True
    for start, end, codes in sup.regions:
        if start <= f.line <= end and (codes is None or f.code in codes):
            return True
    return False


def _sql_suppressed(sql: str, rule: type[Rule]) -> bool:
    if "osqsdk" not in sql:
        return False
    for m in NOQA.finditer(sql):
        codes = _codes(m.group(2))
        if codes is None or rule.code in codes:
            return True
    return False


# --- public entry points -----------------------------------------------------------------

def lint_paths(paths: Sequence[str | os.PathLike[str]] = (".",), *,
               settings: Settings | None = None, schema: Any = None,
               progress: Callable[[int, int], None] | None = None,
               skip_other_files: bool = False) -> LintResult:
    """Lint files and directories (recursively); return a :class:`LintResult`.

    Files named directly are linted even when they do not look like osquery or Fleet
    documents, unless ``skip_other_files`` (as in directories, where they are skipped).

    Raises :class:`osqsdk.lint.LintInputError` for a path that does not exist and
    :class:`osqsdk.errors.SchemaError` for an unusable ``--schema`` file.
    """
    from osqsdk.lint._inputs import Loader

    settings = settings or Settings()
    with _no_gc():
        engine = _Engine(settings, schema)
        loader = Loader([os.fspath(p) for p in paths], excluded=settings.excluded,
                        skip_other_files=skip_other_files)
        documents = loader.load_all()
        return run_documents(documents, loader.reports, settings, engine, progress)


@contextlib.contextmanager
def _no_gc() -> Any:
    """Pause the cycle collector while linting: parse trees are many small objects whose
    cycles are freed in one go afterwards, and collecting during the run costs ~20%."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def lint_text(text: str, *, filename: str = "<text>", kind: str | None = None,
              settings: Settings | None = None, schema: Any = None) -> list[Finding]:
    """Lint one document given as text: ``kind`` is ``json``, ``yaml`` or ``sql`` (guessed
    from ``filename``'s suffix, else from the text). Returns the findings."""
    from osqsdk.lint._inputs import Loader

    settings = settings or Settings()
    engine = _Engine(settings, schema)
    loader = Loader([])
    loader.load_text(filename, text, kind)
    return run_documents(loader.documents, loader.reports, settings, engine).findings
