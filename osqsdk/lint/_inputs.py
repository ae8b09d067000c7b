"""Find input files, read them safely, and turn them into documents with queries.

Security rules, enforced here: files are read only if they are linting inputs or sit inside
an input directory (after resolving symlinks); a pack path or glob in a config that points
elsewhere is reported, never opened or listed; sizes are capped before reading; YAML goes
through the safe loader; nothing is executed.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from osqsdk._osquery.config import osquery_bool, parse_interval, repeated_key_wins, strip_config
from osqsdk.lint._model import CONFIG_KEYS, DEFAULT_INTERVAL, Document, QueryRecord
from osqsdk.lint._rule import DocAnchor, FileAnchor, Report
from osqsdk.lint._text import (
    JsonError,
    Positions,
    SourceText,
    align,
    json_string_offsets,
    parse_json,
    parse_yaml,
    read_source,
)
from osqsdk.lint.rules import inputs as R
from osqsdk.lint.rules.pack import MissingPackFile, PackPathOutsideInputs

__all__ = ["HARD_SIZE_LIMIT", "LintInputError", "Loader"]

#: Files larger than this are not read at all (osquery's own limit is 1-4 MiB).
HARD_SIZE_LIMIT = 8 * 1024 * 1024
SUFFIXES = {".conf": "json", ".json": "json", ".yml": "yaml", ".yaml": "yaml", ".sql": "sql"}
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
              ".mypy_cache", ".pytest_cache", ".ruff_cache"}
FLEET_LIST_KEYS = ("queries", "reports", "policies", "labels")
_HEADER = re.compile(r"^\s*--\s*([a-z_-]+)\s*:\s*(.*?)\s*$", re.IGNORECASE)


class LintInputError(Exception):
    """A path given on the command line cannot be linted (exit code 2)."""


def _sql_list(value: Any) -> Iterator[tuple[int, str]]:
    """(index, SQL) for each string of a JSON list; nothing when ``value`` is not a list."""
    if isinstance(value, list):
        for i, sql in enumerate(value):
            if isinstance(sql, str):
                yield i, sql


def _within(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class Loader:
    """Reads inputs into documents; problems become reports in ``self.reports``."""

    def __init__(self, paths: list[str], *, excluded: Callable[[str], bool] = lambda p: False,
                 skip_other_files: bool = False) -> None:
        self.paths = paths
        self.skip_other_files = skip_other_files
        self.excluded = excluded
        self.reports: list[Report] = []
        self.documents: list[Document] = []
        self.roots: list[str] = []
        self._loaded: dict[str, Document] = {}

    # Discovery -----------------------------------------------------------------------
    def discover(self) -> list[tuple[str, str, bool]]:
        """(display path, real path, explicit) for every file to lint."""
        files: list[tuple[str, str, bool]] = []
        for raw in self.paths:
            if not os.path.lexists(raw):
                raise LintInputError(f"{raw}: no such file or directory")
            try:
                real = os.path.realpath(raw, strict=True)
            except (OSError, RuntimeError) as exc:
                self._unreadable(raw, _os_cause(exc))
                continue
            if os.path.isdir(real):
                self.roots.append(real)
                files.extend(self._walk(raw, real))
            else:
                self.roots.append(os.path.dirname(real))
                files.append((raw, real, not self.skip_other_files))
        return files

    def _walk(self, display_root: str, real_root: str) -> Iterator[tuple[str, str, bool]]:
        def unreadable_dir(exc: OSError) -> None:
            where = os.path.join(display_root, os.path.relpath(exc.filename or real_root,
                                                               real_root))
            self._unreadable(os.path.normpath(where), _os_cause(exc))

        for dirpath, dirnames, filenames in os.walk(real_root, followlinks=False,
                                                    onerror=unreadable_dir):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS
                                 and not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, real_root)
            for name in sorted(filenames):
                if Path(name).suffix.lower() not in SUFFIXES:
                    continue
                display = os.path.normpath(os.path.join(display_root, rel_dir, name))
                full = os.path.join(dirpath, name)
                if self.excluded(display):
                    continue
                if os.path.islink(full):
                    try:
                        target = os.path.realpath(full, strict=True)
                    except (OSError, RuntimeError) as exc:
                        self._unreadable(display, _os_cause(exc))
                        continue
                    if not _within(target, [real_root]):
                        self._unreadable(display, "symlink to a file outside the linted tree "
                                                  "(not read)")
                        continue
                    full = target
                yield display, full, False

    def _unreadable(self, display: str, cause: str, line: int = 1, col: int = 1) -> None:
        self.reports.append(R.UnreadableFile.report(FileAnchor(line, col, path=display),
                                                    cause=cause))

    # Loading -------------------------------------------------------------------------
    def load_all(self) -> list[Document]:
        for display, real, explicit in self.discover():
            self.load(display, real, explicit)
        self._resolve_pack_refs()
        return self.documents

    def _read(self, display: str, real: str) -> SourceText | None:
        try:
            st = os.stat(real)
        except (OSError, RuntimeError, UnicodeEncodeError, ValueError) as exc:
            self._unreadable(display, _os_cause(exc) if isinstance(exc, OSError)
                             else "the path cannot be a file name")
            return None
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            self._unreadable(display, "not a regular file (not read)")
            return None
        size = st.st_size
        if size > HARD_SIZE_LIMIT:
            self._unreadable(display, f"{size} bytes is more than the {HARD_SIZE_LIMIT} bytes "
                                      "the linter reads")
            return None
        try:
            # O_NONBLOCK: should the file be swapped for a FIFO after the check, open()
            # returns at once instead of waiting for a writer
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                    self._unreadable(display, "not a regular file (not read)")
                    return None
                data = fh.read(HARD_SIZE_LIMIT + 1)
        except (OSError, RuntimeError) as exc:
            self._unreadable(display, _os_cause(exc))
            return None
        text, cause, (line, col) = read_source(data)
        if text is None:
            self._unreadable(display, cause or "unreadable", line, col)
            return None
        return SourceText(text)

    def load_text(self, display: str, text: str, kind: str | None = None) -> Document | None:
        """Load a document given as text (for :func:`osqsdk.lint.lint_text`)."""
        doc = self._parse(display, display, SourceText(text), True, kind=kind)
        if doc is not None:
            self.documents.append(doc)
        return doc

    def _parse(self, display: str, real: str, source: SourceText, explicit: bool, *,
               kind: str | None = None, pack_name: str | None = None,
               parent: Document | None = None) -> Document | None:
        kind = kind or SUFFIXES.get(Path(real).suffix.lower()) or _sniff(source.text)
        if kind == "json":
            return self._load_json(display, source, explicit, pack_name, parent)
        if kind == "yaml":
            return self._load_yaml(display, source, explicit, real)
        return self._load_sql(display, source)

    def load(self, display: str, real: str, explicit: bool, *, pack_name: str | None = None,
             parent: Document | None = None) -> Document | None:
        key = real
        if key in self._loaded and pack_name is None:
            return self._loaded[key]
        source = self._read(display, real)
        if source is None:
            return None
        doc = self._parse(display, real, source, explicit, pack_name=pack_name, parent=parent)
        if doc is not None:
            if pack_name is None:
                self._loaded[key] = doc
            self.documents.append(doc)
        return doc

    def _load_json(self, display: str, source: SourceText, explicit: bool,
                   pack_name: str | None, parent: Document | None) -> Document | None:
        if not source.text.strip():
            self.reports.append(R.InvalidJson.report(FileAnchor(1, 1, path=display),
                                                     detail="the file is empty"))
            return None
        stripped = strip_config(source.text)
        doc = Document(display, "config", source, stripped=stripped, size=len(stripped.text))
        try:
            value, positions = parse_json(stripped.text)
        except JsonError as exc:
            line, col = source.position(stripped.original(exc.offset))
            if exc.kind == "depth":
                self.reports.append(R.TooDeeplyNested.report(
                    FileAnchor(line, col, path=display), what="JSON", limit=32))
            else:
                self.reports.append(R.InvalidJson.report(FileAnchor(line, col, path=display),
                                                         detail=exc.message))
            return None
        doc.value, doc.positions = value, positions
        for obj_path, key, offset in positions.duplicates:
            line, col = source.position(stripped.original(offset))
            self.reports.append(R.DuplicateKey.report(
                FileAnchor(line, col, line, col + len(key) + 2, path=display), key=key,
                which=repeated_key_wins(obj_path)))
        if not isinstance(value, dict):
            if not explicit and not display.endswith(".conf"):
                return None  # some other JSON file in the tree (fixtures, data)
            self.reports.append(R.InvalidStructure.report(
                FileAnchor(1, 1, path=display), where="(top level)",
                detail="the top level must be a JSON object"))
            return None
        keys = set(value)
        is_pack = pack_name is not None or (bool(keys & {"queries", "discovery"})
                                            and not keys & CONFIG_KEYS)
        if not is_pack and not keys & CONFIG_KEYS and not explicit and not display.endswith(
                ".conf"):
            return None  # some other JSON file in the tree
        doc.kind = "pack" if is_pack else "config"
        doc.pack_name = pack_name
        doc.parent = parent
        if is_pack:
            name = pack_name or Path(display).stem
            self._pack(doc, value, (), name)
        else:
            self._config(doc, value, ())
        return doc

    def _config(self, doc: Document, value: dict[str, Any], base: tuple[Any, ...]) -> None:
        options = value.get("options")
        if isinstance(options, dict):
            doc.options.update(options)
        schedule = value.get("schedule")
        if isinstance(schedule, dict):
            for name, q in schedule.items():
                self._query(doc, q, base + ("schedule", name), name, "schedule", None, None)
        packs = value.get("packs")
        if isinstance(packs, dict):
            for name, pack in packs.items():
                if isinstance(pack, dict):
                    self._pack(doc, pack, base + ("packs", name), name)
                elif isinstance(pack, str):
                    doc.pack_refs.append((name, pack, base + ("packs", name)))
        decorators = value.get("decorators")
        if isinstance(decorators, dict):
            for kind in ("load", "always"):
                for i, sql in _sql_list(decorators.get(kind)):
                    doc.queries.append(QueryRecord(
                        f"decorators.{kind}[{i}]", "decorator", sql,
                        base + ("decorators", kind, i), decorator=kind,
                        interval=None if kind == "load" else 0))
            intervals = decorators.get("interval")
            if isinstance(intervals, dict):
                for key, items in intervals.items():
                    for i, sql in _sql_list(items):
                        doc.queries.append(QueryRecord(
                            f"decorators.interval.{key}[{i}]", "decorator", sql,
                            base + ("decorators", "interval", key, i),
                            decorator="interval", interval=parse_interval(key)))
        views = value.get("views")
        if isinstance(views, dict):
            for name, sql in views.items():
                if isinstance(sql, str):
                    rec = QueryRecord(str(name), "view", sql, base + ("views", name))
                    doc.queries.append(rec)
                    doc.views[str(name)] = rec
        fpq = value.get("file_paths_query")
        if isinstance(fpq, dict):
            for cat, items in fpq.items():
                for i, sql in _sql_list(items):
                    doc.queries.append(QueryRecord(f"file_paths_query.{cat}[{i}]",
                                                   "file_paths_query", sql,
                                                   base + ("file_paths_query", cat, i)))

    def _pack(self, doc: Document, pack: dict[str, Any], base: tuple[Any, ...], name: str
              ) -> None:
        platform = pack.get("platform") if isinstance(pack.get("platform"), str) else None
        doc.packs[name] = {"path": base, "platform": platform, "value": pack}
        queries = pack.get("queries")
        if isinstance(queries, dict):
            for qname, q in queries.items():
                self._query(doc, q, base + ("queries", qname), qname, "pack", name, platform)
        for i, sql in _sql_list(pack.get("discovery")):
            doc.queries.append(QueryRecord(f"discovery[{i}]", "discovery", sql,
                                           base + ("discovery", i), pack=name,
                                           interval=DEFAULT_INTERVAL, pack_platform=platform))

    def _query(self, doc: Document, q: Any, path: tuple[Any, ...], name: str, kind: str,
               pack: str | None, pack_platform: str | None) -> None:
        if not isinstance(q, dict) or not isinstance(q.get("query"), str):
            return  # the structure rule reports it
        interval = parse_interval(q.get("interval")) if "interval" in q else DEFAULT_INTERVAL
        doc.queries.append(QueryRecord(
            str(name), kind, q["query"], path + ("query",), pack=pack, interval=interval,
            platform=q.get("platform") if isinstance(q.get("platform"), str) else None,
            pack_platform=pack_platform, snapshot=osquery_bool(q.get("snapshot"), False),
            removed=osquery_bool(q.get("removed"), True) if "removed" in q else None,
            version=q.get("version") if isinstance(q.get("version"), str) else None,
            fields=q, object_path=path))

    # YAML ----------------------------------------------------------------------------
    def _load_yaml(self, display: str, source: SourceText, explicit: bool, real: str
                   ) -> Document | None:
        doc = Document(display, "fleet", source, fleet=True, size=len(source.text))
        values: list[Any] = []
        for start, chunk in _yaml_chunks(source.text):
            if not chunk.strip() or not _has_content(chunk):
                continue
            try:
                parsed = parse_yaml(chunk)
            except JsonError as exc:
                line, col = source.position(start + exc.offset)
                if exc.kind == "depth":
                    self.reports.append(R.TooDeeplyNested.report(
                        FileAnchor(line, col, path=display), what="YAML", limit=64))
                else:
                    self.reports.append(R.InvalidYaml.report(
                        FileAnchor(line, col, path=display), detail=exc.message))
                continue
            for ydoc in parsed:
                _shift(ydoc.positions, start)
                values.append(ydoc.value)
                doc.yaml_positions.append(ydoc.positions)
        doc.value = values
        recognised = False
        for i, value in enumerate(values):
            recognised |= self._fleet(doc, value, (i,), real)
        if not recognised and not explicit:
            return None
        return doc

    def _fleet(self, doc: Document, value: Any, base: tuple[Any, ...], real: str) -> bool:
        if isinstance(value, list):
            found = False
            for i, item in enumerate(value):
                if isinstance(item, dict) and isinstance(item.get("query"), str):
                    self._fleet_item(doc, item, base + (i,), "fleet_query")
                    found = True
            return found
        if not isinstance(value, dict):
            return False
        kind = value.get("kind")
        spec = value.get("spec")
        if isinstance(kind, str) and isinstance(spec, dict):
            kind = kind.lower()
            sbase = base + ("spec",)
            if kind in ("query", "report", "built-in", "builtin"):
                self._fleet_item(doc, spec, sbase, "fleet_query")
            elif kind == "policy":
                self._fleet_item(doc, spec, sbase, "fleet_policy", DEFAULT_INTERVAL)
            elif kind == "label":
                self._fleet_item(doc, spec, sbase, "fleet_label", DEFAULT_INTERVAL)
            elif kind == "pack":
                doc.packs[str(spec.get("name") or "")] = {"path": sbase, "fleet": True,
                                                          "value": spec, "platform": None}
            elif kind == "options":
                config = spec.get("config")
                if isinstance(config, dict):
                    self._config(doc, config, sbase + ("config",))
            return True
        found = False
        for key in FLEET_LIST_KEYS:
            items = value.get(key)
            if isinstance(items, list):
                found = True
                for i, item in enumerate(items):
                    if not isinstance(item, dict):
                        continue
                    if isinstance(item.get("path"), str) and "query" not in item:
                        self._fleet_path(doc, item["path"], base + (key, i, "path"), real)
                        continue
                    kind = {"policies": "fleet_policy", "labels": "fleet_label"}.get(
                        key, "fleet_query")
                    self._fleet_item(doc, item, base + (key, i), kind,
                                     DEFAULT_INTERVAL if kind != "fleet_query" else None)
        return found

    def _fleet_path(self, doc: Document, ref: str, path: tuple[Any, ...], real: str) -> None:
        if "\0" in ref:  # no file has that name (and os.path raises ValueError on it)
            self.reports.append(MissingPackFile.report(DocAnchor(path), document=doc,
                                                       target=ref))
            return
        target = os.path.realpath(os.path.join(os.path.dirname(real), ref))
        if not _within(target, self.roots):
            self.reports.append(PackPathOutsideInputs.report(DocAnchor(path), document=doc,
                                                             target=ref))
            return
        if not os.path.isfile(target):
            self.reports.append(MissingPackFile.report(DocAnchor(path), document=doc,
                                                       target=ref))
            return
        display = os.path.normpath(os.path.join(os.path.dirname(doc.path), ref))
        if target not in self._loaded:
            self.load(display, target, True)

    def _fleet_item(self, doc: Document, spec: dict[str, Any], path: tuple[Any, ...],
                    kind: str, default_interval: int | None = None) -> None:
        sql = spec.get("query")
        if not isinstance(sql, str):
            return
        interval = parse_interval(spec.get("interval")) if "interval" in spec else \
            default_interval
        if kind == "fleet_query" and interval == 0:
            interval = None  # Fleet: 0 means "not scheduled"
        platform = spec.get("platform")
        logging = spec.get("logging")
        doc.queries.append(QueryRecord(
            str(spec.get("name") or ""), kind, sql, path + ("query",), interval=interval,
            platform=platform if isinstance(platform, str) else None,
            snapshot=logging == "snapshot", removed=False if logging ==
            "differential_ignore_removals" else None, fields=spec, object_path=path))

    # SQL files -----------------------------------------------------------------------
    def _load_sql(self, display: str, source: SourceText) -> Document | None:
        doc = Document(display, "sql", source, size=len(source.text))
        headers: dict[str, str] = {}
        for line in source.text.splitlines():
            if not line.strip():
                continue
            m = _HEADER.match(line)
            if not m:
                if not line.lstrip().startswith("--"):
                    break
                continue
            headers[m.group(1).lower()] = m.group(2)
        interval = parse_interval(headers["interval"]) if "interval" in headers else None
        rec = QueryRecord(headers.get("name") or Path(display).stem, "sql", source.text, (),
                          interval=interval, platform=headers.get("platform"),
                          version=headers.get("version"), fields=headers)
        doc.value = headers
        doc.queries.append(rec)
        return doc

    # Pack references -----------------------------------------------------------------
    def _resolve_pack_refs(self) -> None:
        for doc in list(self.documents):
            if not doc.pack_refs:
                continue
            base_dir = os.path.dirname(os.path.realpath(
                _real_of(doc, self._loaded) or doc.path))
            for name, ref, path in doc.pack_refs:
                if "\0" in ref or not _encodable(ref):  # as in _fleet_path
                    self.reports.append(MissingPackFile.report(DocAnchor(path), document=doc,
                                                               target=ref))
                    continue
                pattern = ref.replace("%%", "**").replace("%", "*")
                is_glob = name == "*" or any(ch in pattern for ch in "*?[")
                full = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
                fixed = full
                if is_glob:
                    fixed = full.split("*")[0].split("?")[0].split("[")[0]
                    fixed = os.path.dirname(fixed) if not fixed.endswith(os.sep) else fixed
                real_fixed = os.path.realpath(fixed)
                if not _within(real_fixed, self.roots):
                    self.reports.append(PackPathOutsideInputs.report(
                        DocAnchor(path), document=doc, target=ref))
                    continue
                if is_glob:
                    # pathlib's ** never follows a symlinked directory (no walk out of the
                    # tree, no cycle); at most 1,000 matches, regular files only
                    relative = os.path.relpath(full, fixed)
                    if relative == "**" or relative.endswith(os.sep + "**"):
                        relative += os.sep + "*"  # pathlib's ** alone names directories
                    matches = sorted(str(m) for m in itertools.islice(
                        Path(fixed).glob(relative), 1000))
                    targets = [(Path(m).stem if name == "*" else name, m) for m in matches
                               if os.path.isfile(m)]
                else:
                    targets = [(name, t) for t in _search_up(pattern, base_dir, self.roots)]
                if not targets:
                    self.reports.append(MissingPackFile.report(DocAnchor(path), document=doc,
                                                               target=ref))
                    continue
                for pack_name, target in targets:
                    real = os.path.realpath(target)
                    if not _within(real, self.roots):
                        self.reports.append(PackPathOutsideInputs.report(
                            DocAnchor(path), document=doc, target=target))
                        continue
                    display = os.path.normpath(os.path.join(
                        os.path.dirname(doc.path), os.path.relpath(target, base_dir)))
                    standalone = self._loaded.pop(real, None)
                    if standalone is not None and standalone in self.documents:
                        self.documents.remove(standalone)
                    self.load(display, real, True, pack_name=pack_name, parent=doc)


def _encodable(path: str) -> bool:
    try:
        os.fsencode(path)
    except UnicodeEncodeError:  # a lone surrogate: no file can have this name
        return False
    return True


def _search_up(ref: str, start: str, roots: list[str]) -> list[str]:
    """A relative pack path, tried from the config's directory and then each parent inside
    the linted tree (osquery resolves it from its working directory, which a checkout does
    not record); an absolute one as it is."""
    if os.path.isabs(ref):
        return [ref] if os.path.isfile(ref) else []
    here = start
    while True:
        candidate = os.path.join(here, ref)
        if os.path.isfile(candidate) and _within(os.path.realpath(candidate), roots):
            return [candidate]
        parent = os.path.dirname(here)
        if parent == here or not _within(parent, roots):
            return []
        here = parent


def _real_of(doc: Document, loaded: dict[str, Document]) -> str | None:
    for real, d in loaded.items():
        if d is doc:
            return real
    return None


def _os_cause(exc: BaseException) -> str:
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, RuntimeError):
        return "symlink loop"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            return "dangling symlink or missing file"
        return exc.strerror or str(exc)
    return str(exc)


def _sniff(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[", "#", "//")):
        return "json"
    if re.search(r"^\s*(apiVersion|kind|spec|queries|policies)\s*:", text, re.MULTILINE):
        return "yaml"
    return "sql"


def _yaml_chunks(text: str) -> Iterator[tuple[int, str]]:
    """Split a YAML stream at ``---`` lines so one broken document spares the others."""
    start = 0
    for m in re.finditer(r"^---[ \t]*(?:#.*)?$", text, re.MULTILINE):
        yield start, text[start:m.start()]
        start = m.end()
    yield start, text[start:]


def _has_content(chunk: str) -> bool:
    for line in chunk.splitlines():
        s = line.strip()
        if s and not s.startswith("#") and s != "...":
            return True
    return False


def _shift(pos: Positions, offset: int) -> None:
    if not offset:
        return
    pos.values = {k: (a + offset, b + offset) for k, (a, b) in pos.values.items()}
    pos.keys = {k: (a + offset, b + offset) for k, (a, b) in pos.keys.items()}
    pos.duplicates = [(p, k, o + offset) for p, k, o in pos.duplicates]


def sql_offset_map(doc: Document, rec: QueryRecord) -> Callable[[int], int]:
    """A function from an offset in ``rec.sql`` to an offset in the document's file."""
    if doc.kind == "sql":
        return lambda i: max(0, min(i, len(doc.source.text)))
    positions = doc.positions_for(rec.path)
    inner = rec.path[1:] if doc.kind == "fleet" else rec.path
    if positions is None or inner not in positions.values:
        span = doc.span(rec.path)
        base = span[0] if span else 0
        return lambda i: base
    start, end = positions.values[inner]
    if doc.kind == "fleet":
        table = align(rec.sql, doc.source.text[start:end], start)
    else:
        raw = positions.raw_strings.get(inner)
        table = json_string_offsets(raw, start) if raw else [start]

    def lookup(i: int) -> int:
        if not table:
            return 0
        return doc.file_offset(table[max(0, min(i, len(table) - 1))])
    return lookup
