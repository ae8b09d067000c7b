"""``osqsdk lsp``: the linter as a language server (pygls), over stdio.

For osquery configs and packs (JSON with comments), Fleet YAML and ``.sql`` files:

* diagnostics on open, change and save, at the exact span inside the JSON/YAML string;
* hover on a table or column name inside a query: its schema facts;
* completion of table and column names inside a query;
* code actions: the safe fixes of ``osqsdk lint --fix`` (and the unsafe ones, marked).

Settings come from the nearest ``pyproject.toml`` of each file, as for ``osqsdk lint``. One
lint engine per settings stays alive between edits, so a query that did not change is not
parsed or analysed again (docs/lint.md §1.10).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from osqsdk._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from osqsdk.lint._finding import Finding
    from osqsdk.lint._model import Document, QueryRecord
    from osqsdk.lint._runner import LintResult, _Engine
    from osqsdk.lint._settings import Settings

__all__ = ["serve"]

log = logging.getLogger("osqsdk.lsp")

_SEVERITY = {"error": types.DiagnosticSeverity.Error,
             "warning": types.DiagnosticSeverity.Warning,
             "info": types.DiagnosticSeverity.Information}
_SUFFIXES = (".conf", ".json", ".yml", ".yaml", ".sql")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLES_IN = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)", re.I)
_AFTER_TABLE_KEYWORD = re.compile(r"\b(?:FROM|JOIN)\s+[A-Za-z0-9_]*$", re.I)
_MAX_CACHED_ANALYSES = 50_000
# After a change, wait this long for more: messages already sent are read in that time.
_SETTLE_S = 0.005
# A lint waits while received bytes are not yet handled, but never longer than this.
_MAX_WAIT_S = 1.0
# Full garbage collections (tens of ms over the cached analyses) run when edits pause this
# long, rather than in the middle of linting an edit; see serve().
_IDLE_COLLECT_S = 1.0


class _Stdin:
    """stdin for pygls, which reads it from a worker thread, one line or body at a time.

    It keeps what the pipe gave beyond the current message in its own buffer, and knows
    whether the last body it handed out is still being handled (pygls asks for the next
    header line only after that), so the server can ask whether messages have arrived
    that it has not handled yet: a lint waits for them instead of linting text that is
    already out of date.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._unhandled = False  # from a message's first line until pygls has handled it
        self._body_read = False

    def pending(self) -> bool:
        return self._unhandled or bool(self._buffer)

    def _fill(self) -> bool:
        chunk = os.read(self._fd, 1 << 16)
        self._buffer += chunk
        return bool(chunk)

    def readline(self) -> bytes:
        if self._body_read:  # pygls handled the last body before reading on
            self._body_read = self._unhandled = False
        while (end := self._buffer.find(b"\n")) < 0:
            if not self._fill():
                end = len(self._buffer) - 1
                break
        line = bytes(self._buffer[:end + 1])
        if line.strip():
            self._unhandled = True  # a message has begun (set before it leaves the buffer)
        del self._buffer[:end + 1]
        return line

    def read(self, size: int) -> bytes:
        self._unhandled = True  # pygls reads each message's body with one read()
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._body_read = True
        return data


def _path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


class _Linter:
    """Lints documents given as text, with one engine per settings kept between calls."""

    def __init__(self) -> None:
        self._engines: dict[Any, _Engine] = {}
        self._settings: dict[str, Settings] = {}
        self.results: dict[str, tuple[LintResult, str]] = {}

    def settings_for(self, path: str) -> Settings:
        from osqsdk.lint._settings import Settings, SettingsError, find_pyproject, load_settings

        folder = os.path.dirname(os.path.abspath(path))
        found = self._settings.get(folder)
        if found is None:
            try:
                found = load_settings(find_pyproject(folder))
            except SettingsError as exc:
                log.warning("%s; using the default settings", exc)
                found = Settings()
            self._settings[folder] = found
        return found

    def engine(self, settings: Settings) -> _Engine:
        from osqsdk.lint._runner import _Engine

        engine = self._engines.get(settings)
        if engine is None:
            engine = self._engines[settings] = _Engine(settings)
        if len(engine._analyses) > _MAX_CACHED_ANALYSES:
            engine._analyses.clear()
        return engine

    def lint(self, path: str, text: str) -> LintResult:
        from osqsdk.lint._inputs import Loader
        from osqsdk.lint._runner import run_documents

        settings = self.settings_for(path)
        loader = Loader([])
        loader.load_text(path, text)
        result = run_documents(loader.documents, loader.reports, settings,
                               self.engine(settings))
        self.results[path] = (result, text)
        return result

    def document(self, path: str) -> Document | None:
        got = self.results.get(path)
        if got is None or got[0].run is None:
            return None
        return next((d for d in got[0].run.documents if d.path == path), None)


def _range(lines: list[str], codec: Any, f: Finding, bom: bool = False) -> types.Range:
    shift = (1 if f.line == 1 else 0) if bom else 0
    end_shift = (1 if f.end_line == 1 else 0) if bom else 0
    start = types.Position(line=max(f.line - 1, 0), character=max(f.column - 1 + shift, 0))
    end = types.Position(line=max(f.end_line - 1, 0),
                         character=max(f.end_column - 1 + end_shift, 0))
    if (end.line, end.character) <= (start.line, start.character):
        end = types.Position(line=start.line, character=start.character + 1)
    return types.Range(start=codec.position_to_client_units(lines, start),
                       end=codec.position_to_client_units(lines, end))


def _diagnostic(lines: list[str], codec: Any, f: Finding, bom: bool = False
                ) -> types.Diagnostic:
    from osqsdk.lint._ruledocs import help_uri
    from osqsdk.lint.rules import rule_by_code

    rule = rule_by_code(f.code)
    href = help_uri(rule) if rule is not None else None
    message = f.message + (f"\n{f.hint}" if f.hint else "")
    return types.Diagnostic(
        range=_range(lines, codec, f, bom), message=message, severity=_SEVERITY[f.severity],
        code=f.code, source="osqsdk",
        code_description=types.CodeDescription(href=href) if href else None,
        data={"name": f.name, "query": f.query})


def _query_at(doc: Document, offset: int) -> tuple[QueryRecord, int] | None:
    """The query whose text holds file ``offset``, and the offset in its SQL."""
    from osqsdk.lint._inputs import sql_offset_map

    for rec in doc.queries:
        to_file = sql_offset_map(doc, rec)
        if not rec.sql:
            continue
        first, last = to_file(0), to_file(len(rec.sql) - 1)
        if not first <= offset <= last + 1:
            continue
        best = 0
        for i in range(len(rec.sql) + 1):
            if to_file(min(i, len(rec.sql) - 1)) + (i >= len(rec.sql)) <= offset:
                best = i
            else:
                break
        return rec, best
    return None


def _word_at(sql: str, at: int) -> tuple[str, int, int] | None:
    for m in _WORD.finditer(sql):
        if m.start() <= at <= m.end():
            return m.group(), m.start(), m.end()
    return None


# The schema osqsdk ships holds facts (names, types, flags, platforms), not osquery's prose:
# a hover links to osquery's own page for the description.
_SCHEMA_PAGE = "https://osquery.io/schema/#{table}"


def _table_hover(table: Any) -> str:
    kind = "extension table" if table.origin not in ("osquery", "view") else \
        "view" if table.origin == "view" else "osquery table"
    facts = [f"Platforms: {', '.join(table.platforms) or 'all'}"]
    if table.evented:
        facts.append("evented (rows come from events buffered since the last run)")
    if table.since:
        facts.append(f"since osquery {table.since}")
    required = [c.name for c in table.required_columns]
    if required:
        facts.append(f"needs in WHERE: {', '.join(required)}")
    lines = [f"**{table.name}** ({kind})", "", *(f"- {f}" for f in facts),
             f"- Columns: {', '.join(table.column_names)}"]
    if table.origin == "osquery":
        lines += ["", f"[osquery's description]({_SCHEMA_PAGE.format(table=table.name)})"]
    return "\n".join(lines)


def _column_hover(table: Any, column: Any) -> str:
    flags = [name for name in ("required", "index", "hidden", "additional", "optimized")
             if getattr(column, name, False)]
    lines = [f"**{table.name}.{column.name}** `{column.type.spec_name}`"
             + (f" ({', '.join(flags)})" if flags else "")]
    if column.platforms:
        lines.append(f"- Platforms: {', '.join(column.platforms)}")
    if column.since:
        lines.append(f"- since osquery {column.since}")
    if column.required:
        lines.append("- the table returns no rows unless the query constrains it")
    return "\n".join(lines)


def _tables_named(sql: str, schema: Any) -> list[Any]:
    found = []
    for name in _TABLES_IN.findall(sql):
        table = schema.table(name)
        if table is not None and table not in found:
            found.append(table)
    return found


def build_server(stdin: _Stdin | None = None) -> LanguageServer:
    server = LanguageServer("osqsdk-lint", __version__)
    linter = _Linter()

    def publish(uri: str) -> None:
        path = _path_of(uri)
        if not path.endswith(_SUFFIXES):
            return
        document = server.workspace.get_text_document(uri)
        text = document.source
        bom = text.startswith("\ufeff")  # the CLI reads files without it: so does this
        try:
            result = linter.lint(path, text[1:] if bom else text)
        except Exception:  # a linter bug must not take the editor's server down
            log.exception("linting %s failed", path)
            return
        codec = server.workspace.position_codec
        lines = list(document.lines) or [""]
        diagnostics = [_diagnostic(lines, codec, f, bom) for f in result.findings
                       if f.path == path]
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=document.version, diagnostics=diagnostics))
        published[0] += 1
        asyncio.get_event_loop().call_later(_IDLE_COLLECT_S, collect_if_idle, published[0])

    published = [0]

    def collect_if_idle(count: int) -> None:
        if published[0] == count:  # nothing linted since: the user paused
            gc.collect()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    latest: dict[str, int] = {}

    def publish_if_latest(uri: str, version: int, deadline: float) -> None:
        if latest.get(uri) != version:
            return
        if stdin is not None and stdin.pending() and time.monotonic() < deadline:
            # Messages were received and not handled yet: a newer text may be among them.
            asyncio.get_event_loop().call_later(
                _SETTLE_S, publish_if_latest, uri, version, deadline)
            return
        publish(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        # Lint after the changes already received are applied: keystrokes that arrived
        # while a lint ran are handled together, and only the newest text is linted.
        uri, version = params.text_document.uri, params.text_document.version
        latest[uri] = version
        asyncio.get_event_loop().call_later(
            _SETTLE_S, publish_if_latest, uri, version, time.monotonic() + _MAX_WAIT_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: LanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        linter.results.pop(_path_of(params.text_document.uri), None)
        server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=params.text_document.uri, diagnostics=[]))

    def locate(uri: str, position: types.Position) -> tuple[Any, Any, int] | None:
        path = _path_of(uri)
        doc = linter.document(path)
        if doc is None:
            return None
        document = server.workspace.get_text_document(uri)
        lines = list(document.lines) or [""]
        cp = server.workspace.position_codec.position_from_client_units(lines, position)
        bom = 1 if cp.line == 0 and document.source.startswith("\ufeff") else 0
        offset = doc.source.offset(cp.line + 1, cp.character + 1 - bom)
        found = _query_at(doc, offset)
        if found is None:
            return None
        rec, at = found
        engine = linter.engine(linter.settings_for(path))
        return rec, engine.schema_for(doc), at

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: LanguageServer, params: types.HoverParams) -> types.Hover | None:
        located = locate(params.text_document.uri, params.position)
        if located is None:
            return None
        rec, schema, at = located
        word = _word_at(rec.sql, at)
        if word is None:
            return None
        name = word[0]
        table = schema.table(name)
        if table is not None:
            text = _table_hover(table)
        else:
            text = ""
            for t in _tables_named(rec.sql, schema):
                column = next((c for c in t.columns if c.name.lower() == name.lower()), None)
                if column is not None:
                    text = _column_hover(t, column)
                    break
            if not text:
                return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown,
                                                        value=text))

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=[" ", "."]))
    def completion(ls: LanguageServer, params: types.CompletionParams
                   ) -> types.CompletionList | None:
        located = locate(params.text_document.uri, params.position)
        if located is None:
            return None
        rec, schema, at = located
        before = rec.sql[:at]
        items: list[types.CompletionItem] = []
        if _AFTER_TABLE_KEYWORD.search(before):
            for t in schema:
                items.append(types.CompletionItem(
                    label=t.name, kind=types.CompletionItemKind.Class,
                    detail=f"table: {', '.join(t.platforms) or 'all platforms'}"))
        else:
            for t in _tables_named(rec.sql, schema):
                for c in t.columns:
                    items.append(types.CompletionItem(
                        label=c.name, kind=types.CompletionItemKind.Field,
                        detail=f"{t.name}.{c.name} {c.type.spec_name}"))
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls: LanguageServer, params: types.CodeActionParams
                    ) -> list[types.CodeAction] | None:
        from osqsdk.lint._fix import plan_fixes

        path = _path_of(params.text_document.uri)
        got = linter.results.get(path)
        if got is None:
            return None
        result, text = got
        document = server.workspace.get_text_document(params.text_document.uri)
        bom = document.source.startswith("\ufeff")
        if document.source.removeprefix("\ufeff") != text:
            return None  # an edit is on its way: its diagnostics come with new actions
        lines = list(document.lines) or [""]
        codec = server.workspace.position_codec
        settings = linter.settings_for(path)
        actions = []
        for unsafe in (False, True):
            plan = plan_fixes(result, settings, unsafe=unsafe)
            doc = linter.document(path)
            if doc is None:
                continue
            for fix in plan.fixes.get(path, []):
                if fix.safe == unsafe:
                    continue  # the safe ones are in the first plan
                start = doc.source.position(fix.start)
                end = doc.source.position(fix.end)
                if bom:  # the editor's line 1 starts with the BOM the linter left out
                    start = (start[0], start[1] + (start[0] == 1))
                    end = (end[0], end[1] + (end[0] == 1))
                rng = types.Range(
                    start=codec.position_to_client_units(
                        lines, types.Position(line=start[0] - 1, character=start[1] - 1)),
                    end=codec.position_to_client_units(
                        lines, types.Position(line=end[0] - 1, character=end[1] - 1)))
                if rng.end.line < params.range.start.line or \
                        rng.start.line > params.range.end.line:
                    continue
                actions.append(types.CodeAction(
                    title=f"{fix.code}: {fix.title}" + ("" if fix.safe else " (unsafe)"),
                    kind=types.CodeActionKind.QuickFix, is_preferred=fix.safe,
                    edit=types.WorkspaceEdit(changes={params.text_document.uri: [
                        types.TextEdit(range=rng, new_text=fix.replacement)]})))
        return actions

    return server


def serve() -> None:
    """Run the language server on stdin/stdout until the client says exit."""
    logging.basicConfig(level=logging.WARNING, format="osqsdk lsp: %(levelname)s %(message)s")
    stdin = _Stdin(sys.stdin.fileno())
    # The oldest generation is collected when edits pause (build_server), and otherwise
    # ten times less often than by default: a full pass over the cached analyses costs
    # more than linting an edit.
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, 100)
    build_server(stdin).start_io(stdin=stdin)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    serve()
    raise SystemExit(0)


