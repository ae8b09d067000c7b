"""``osqsdk pack build|unpack|apply``: packs to and from directories of ``.sql`` files, and
bulk changes, each output linted.

A query file is a header of ``-- key: value`` comment lines, then the SQL (the layout
osquery-defense-kit uses and chainguard's osqtool reads; docs/lint.md §1.11)::

    -- interval: 3600
    -- platform: linux
    -- tags: persistence
    SELECT ...

Header keys that are osquery pack query fields (``interval``, ``platform``, ``version``,
``shard``, ``snapshot``, ``removed``, ``denylist``, ``description``, ``value``) become those
fields; ``name`` overrides the file name as the query's name; ``tags`` (space or comma
separated) select queries for ``--exclude-tags``; other keys and other comment lines are
documentation and are not carried into the pack. A pack's own fields (``platform``,
``version``, ``shard``, ``discovery``, and any other) live in ``_pack.json`` beside the
query files.

A query whose text would not come back the same from that layout (a leading comment or
blank, trailing blanks, a carriage return) is written after a ``-- sql:`` line, after which
the file is the query exactly (less the one line break that ends the file).

Untrusted input stays inside its bounds: ``unpack`` renders and reads back every file in
memory before writing any, writes only new files directly inside its output directory
(names that are not plain file names get a safe file name and a ``-- name:`` header), never
follows a symlink there, and refuses a directory that already holds query files unless
told to replace them.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osqsdk._osquery.config import (
    C_SPACE,
    MAX_CONFIG_BYTES,
    ConfigProblem,
    parse_interval,
    parse_osquery_json,
    repeated_key_wins,
    strip_config,
)
from osqsdk.lint._files import write_file

__all__ = ["PackFile", "PackToolError", "QueryFile", "apply_changes", "build_pack",
           "edit_pack_text", "pack_value", "read_pack", "unpack_pack", "write_pack"]

PACK_FIELDS_FILE = "_pack.json"
_HEADER = re.compile(r"^\s*--\s*([A-Za-z][A-Za-z0-9_ -]*?)\s*:\s*(.*?)\s*$")
_QUERY_FIELDS = ("interval", "platform", "version", "shard", "snapshot", "removed",
                 "denylist", "description", "value")
_BOOLS = ("snapshot", "removed", "denylist")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_MAX_FILES = 10_000


class PackToolError(Exception):
    """Input that cannot become a pack (or a directory): the message names file and cause."""


@dataclass
class QueryFile:
    name: str
    sql: str
    fields: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    source: str = ""


def _header_value(key: str, raw: str, where: str) -> Any:
    if key == "interval":
        value = parse_interval(raw)
        if value is None or value <= 0:
            raise PackToolError(f"{where}: not a number of seconds: {raw!r}")
        return value
    if key == "shard":
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise PackToolError(f"{where}: must be a whole number from 1 to 100")
        return int(raw)
    if key in _BOOLS:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise PackToolError(f"{where}: must be true or false, not {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    return _name_value(raw)


def read_query_file(path: Path, display: str) -> QueryFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackToolError(f"{display}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise PackToolError(f"{display}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise PackToolError(f"{display}: not UTF-8 text") from None
    return parse_query_text(text, path.stem, display)


def parse_query_text(text: str, stem: str, display: str) -> QueryFile:
    """A query file's text: its header, then its SQL. After a ``-- sql:`` header line the
    rest of the file is the SQL exactly, but for the one line break that ends the file;
    without it the SQL starts at the first line that is not a comment, trimmed."""
    headers: dict[str, str] = {}
    sql: str | None = None
    position = 0
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end + 1
        line = text[position:end]
        if line.strip() and not line.lstrip().startswith("--"):
            sql = text[position:].strip()
            break
        m = _HEADER.match(line.rstrip("\r\n"))
        if m:
            key = m.group(1).strip().lower().replace(" ", "_")
            if key == "sql" and not m.group(2):
                body = text[end:]
                sql = body[:-1] if body.endswith("\n") else body
                break
            headers[key] = m.group(2)
        position = end
    if not sql or not sql.strip():
        raise PackToolError(f"{display}: no SQL after its header")
    fields = {}
    for key in _QUERY_FIELDS:
        if key in headers:
            fields[key] = _header_value(key, headers[key], f"{display}: -- {key}")
    name = _name_value(headers["name"]) if headers.get("name") else stem
    tags = tuple(t for t in re.split(r"[\s,]+", headers.get("tags", "")) if t)
    return QueryFile(name, sql, fields, tags, display)


def build_pack(directory: str | os.PathLike[str]
               ) -> tuple[dict[str, Any], list[QueryFile], list[str]]:
    """The pack a directory of ``.sql`` files (and its ``_pack.json``) makes, and notes on
    what was left out."""
    root = Path(directory)
    if not root.is_dir():
        raise PackToolError(f"{root}: not a directory")
    found = sorted(p for p in root.rglob("*.sql") if p.is_file() or p.is_symlink())
    paths = [p for p in found if not p.is_symlink()]
    skipped = [str(p) for p in found if p.is_symlink()]
    if len(paths) > _MAX_FILES:
        raise PackToolError(f"{root}: more than {_MAX_FILES} .sql files")
    if not paths:
        raise PackToolError(f"{root}: no .sql files")
    files: list[QueryFile] = []
    seen: dict[str, str] = {}
    for path in paths:
        query = read_query_file(path, str(path))
        if query.name in seen:
            raise PackToolError(f"{path}: query name {query.name!r} is also used by "
                                f"{seen[query.name]}")
        seen[query.name] = str(path)
        files.append(query)
    pack: dict[str, Any] = {}
    extra = root / PACK_FIELDS_FILE
    if extra.is_file():
        try:
            fields = parse_osquery_json(extra.read_text(encoding="utf-8"), str(extra))
        except ConfigProblem as exc:
            raise PackToolError(str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PackToolError(f"{extra}: cannot be read ({exc})") from None
        if "queries" in fields:
            raise PackToolError(f"{extra}: not pack fields: queries (the queries are the "
                                ".sql files)")
        pack.update(fields)
    return pack, files, [f"{p}: a symbolic link; left out" for p in skipped]


@dataclass(frozen=True)
class PackFile:
    """A pack file read: its own fields, its queries, its text and its comment lines."""

    path: str
    fields: dict[str, Any]
    queries: list[QueryFile]
    text: str
    comment_lines: list[int]  # line numbers


def read_pack(path: str | os.PathLike[str]) -> PackFile:
    """Read a pack file as osqueryd does."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise PackToolError(f"{file}: larger than {MAX_CONFIG_BYTES} bytes")
        text = file.read_bytes().decode("utf-8")  # line endings as they are
        data = parse_osquery_json(text, str(file))
    except OSError as exc:
        raise PackToolError(f"{file}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise PackToolError(f"{file}: not UTF-8 text") from None
    except ConfigProblem as exc:
        raise PackToolError(str(exc)) from None
    stripped = strip_config(text)
    _duplicates_refused(file, text, stripped)
    queries = data.get("queries")
    if not isinstance(queries, dict):
        raise PackToolError(f"{file}: a pack needs a \"queries\" object")
    pack = {k: v for k, v in data.items() if k != "queries"}
    files = []
    for name, body in queries.items():
        where = f"{file}: queries.{name if _SAFE_NAME.match(name) else json.dumps(name)}"
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise PackToolError(f"{where}: needs a \"query\" string")
        fields = {k: v for k, v in body.items() if k != "query"}
        files.append(QueryFile(name, body["query"], fields, (), where))
    comments = _line_numbers(text, [at for at, _ in stripped.comment_lines])
    return PackFile(str(path), pack, files, text, comments)


def _duplicates_refused(file: Path, text: str, stripped: Any) -> None:
    """A key given twice is an error here: osqueryd reads the first (docs/protocol.md
    §5.2), and whatever this tool wrote would drop the other without a word."""
    from osqsdk.lint._text import parse_json

    _, positions = parse_json(stripped.text)  # the text was read once already: no error
    if positions.duplicates:
        where, key, offset = positions.duplicates[0]
        at = stripped.original(offset)
        (line,) = _line_numbers(text, [at])
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise PackToolError(f"{file}:{line}:{column}: key {json.dumps(key)} given twice "
                            f"(osqueryd reads the {repeated_key_wins(where)}); rename or "
                            f"remove one first")


def apply_changes(files: Iterable[QueryFile], *, min_interval: int | None = None,
                  max_interval: int | None = None, platform: str | None = None,
                  exclude: Iterable[str] = (), exclude_tags: Iterable[str] = (),
                  pack_platform: Any = None) -> tuple[list[QueryFile], list[str]]:
    """Bulk changes: intervals clamped to [min, max] (a query without one gets osquery's
    default, 3600 s, clamped), queries that never run on ``platform`` dropped, queries
    excluded by name or tag. ``pack_platform`` is the pack's own ``platform``. Returns the
    queries kept and what was done, one line each."""
    from osqsdk.lint._platform import KNOWN_TOKENS, intersect, matching, tokens

    if min_interval and max_interval and min_interval > max_interval:
        raise PackToolError(f"--min-interval {min_interval} is above --max-interval "
                            f"{max_interval}")
    if platform is not None:
        unknown = [t for t in tokens(platform) if t.lower() not in KNOWN_TOKENS]
        if unknown or not tokens(platform):
            raise PackToolError(f"--platform: not an osquery platform: {platform!r} "
                                f"(osquery knows {', '.join(sorted(KNOWN_TOKENS))})")
    files = list(files)
    excluded, tags = set(exclude), set(exclude_tags)
    kept, said = [], []
    wanted = matching(platform) if platform else None
    if wanted is not None and isinstance(pack_platform, str):
        wanted = intersect(wanted, matching(pack_platform))
    for query in files:
        if query.name in excluded:
            said.append(f"{query.name}: excluded by name")
            continue
        hit = tags.intersection(query.tags)
        if hit:
            said.append(f"{query.name}: excluded by tag {', '.join(sorted(hit))}")
            continue
        own = query.fields.get("platform")
        runs_on = intersect(matching(own if isinstance(own, str) else None), wanted)
        if wanted is not None and runs_on is not None and not runs_on:  # never
            said.append(f"{query.name}: dropped, never runs on {platform}")
            continue
        fields = dict(query.fields)
        if min_interval is not None or max_interval is not None:
            current = parse_interval(fields.get("interval", 3600)) or 3600
            new = max(current, min_interval or 0)
            new = min(new, max_interval) if max_interval else new
            if new != current or "interval" not in fields:
                fields["interval"] = new
                if new != current:
                    said.append(f"{query.name}: interval {current} -> {new}")
        kept.append(QueryFile(query.name, query.sql, fields, query.tags, query.source))
    names = {q.name for q in files}
    said += [f"{name}: no query has this name; --exclude did nothing"
             for name in sorted(excluded - names)]
    return kept, said


def edit_pack_text(text: str, queries_kept: Iterable[QueryFile]
                   ) -> tuple[str, list[int]] | None:
    """The pack ``text`` with only what ``apply_changes`` changed edited in place: queries
    left out removed, each with the comment lines directly above it; intervals changed or
    added. Comments, key order, layout and line endings elsewhere stay as they were.
    Returns the new text and the line numbers of the comment lines removed, or None when
    the edited text would not read back as exactly the changed pack (then the caller
    writes the pack anew)."""
    from osqsdk.lint._text import JsonError, parse_json

    stripped = strip_config(text)
    try:
        data, positions = parse_json(stripped.text)
    except JsonError:
        return None
    queries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(queries, dict) or positions.duplicates:
        return None
    kept = {q.name: q for q in queries_kept}
    expected = pack_value({k: v for k, v in data.items() if k != "queries"}, kept.values())
    s = stripped.text
    comment_starts = {at for at, _ in stripped.comment_lines}
    comments_sorted = sorted(comment_starts)

    def start(path: tuple[Any, ...], key: bool = False) -> int:
        return stripped.original((positions.keys if key else positions.values)[path][0])

    def end(path: tuple[Any, ...]) -> int:  # just past the value, in the original text
        return stripped.original(positions.values[path][1] - 1) + 1

    def comma_after(path: tuple[Any, ...]) -> int | None:  # in the original text
        after = positions.values[path][1]
        while after < len(s) and s[after] in " \t\r\n":
            after += 1
        return stripped.original(after) if after < len(s) and s[after] == "," else None

    names = list(queries)
    removals: list[tuple[int, int]] = []
    for name in names:
        if name in kept:
            continue
        path = ("queries", name)
        first = _comments_above(text, start(path, key=True), comment_starts)
        line_start = text.rfind("\n", 0, first) + 1
        whole_lines = not text[line_start:first].strip(" \t")
        comma = comma_after(path)
        stop = comma + 1 if comma is not None else end(path)
        rest = _line_end(text, stop)
        if whole_lines and not text[stop:rest].strip(" \t\r"):
            removals.append((line_start, min(rest + 1, len(text))))  # whole lines
        else:
            while stop < len(text) and text[stop] in " \t":
                stop += 1
            removals.append((first, stop))
    last_kept = max((i for i, n in enumerate(names) if n in kept), default=None)
    if last_kept is not None and last_kept < len(names) - 1:
        comma = comma_after(("queries", names[last_kept]))  # nothing follows it any more
        if comma is None:
            return None
        removals.append((comma, comma + 1))
    edits = [(a, b, "") for a, b in removals]
    for name, query in kept.items():
        old = queries[name]
        if not isinstance(old, dict) or query.fields.get("interval") == old.get("interval"):
            continue
        value = json.dumps(query.fields["interval"])
        if "interval" in old:
            where = ("queries", name, "interval")
            a, b = start(where), end(where)
            if bisect.bisect_left(comments_sorted, a) < bisect.bisect_left(comments_sorted, b):
                return None  # a comment inside the old value: not ours to drop
            edits.append((a, b, value))
            continue
        last = max(old, key=lambda k: positions.values[("queries", name, k)][0])
        key_at = start(("queries", name, last), key=True)
        line_start = text.rfind("\n", 0, key_at) + 1
        indent = text[line_start:key_at]
        newline = "\r\n" if text[line_start - 2:line_start] == "\r\n" else "\n"
        glue = f",{newline}{indent}" if line_start > 0 and not indent.strip(" \t") else ", "
        at = end(("queries", name, last))
        edits.append((at, at, f'{glue}"interval": {value}'))
    edits.sort()
    pieces, done = [], 0
    for a, b, replacement in edits:
        if a < done:
            return None  # overlapping edits: a layout this does not handle
        pieces += [text[done:a], replacement]
        done = b
    out = "".join(pieces) + text[done:]
    try:
        if parse_osquery_json(out, "edited pack") != expected:
            return None
    except ConfigProblem:
        return None
    spans = sorted(removals)
    gone = [at for at in comments_sorted
            if (i := bisect.bisect_right(spans, (at, len(text) + 1)) - 1) >= 0
            and spans[i][0] <= at < spans[i][1]]
    return out, _line_numbers(text, gone)


def _line_end(text: str, at: int) -> int:
    found = text.find("\n", at)
    return len(text) if found < 0 else found


def _line_numbers(text: str, offsets: list[int]) -> list[int]:
    """1-based line numbers of sorted ``offsets``, in one pass over the line breaks."""
    breaks = [m.start() for m in re.finditer("\n", text)]
    return [bisect.bisect_left(breaks, at) + 1 for at in offsets]


def _comments_above(text: str, at: int, comment_starts: set[int]) -> int:
    """Where the comment lines directly above the line of ``at`` begin (their first
    character, their indentation kept), or ``at`` when there are none or ``at`` does not
    begin its line. A comment line is one osquery strips (``comment_starts``: the offset
    of each one's first character), not a line that merely looks like one."""
    line_start = text.rfind("\n", 0, at) + 1
    if text[line_start:at].strip(" \t"):
        return at
    begin = at
    while line_start > 0:
        prev_start = text.rfind("\n", 0, line_start - 1) + 1
        line = text[prev_start:line_start - 1]
        content = prev_start + len(line) - len(line.lstrip(C_SPACE))
        if content not in comment_starts:
            break
        begin = content
        line_start = prev_start
    return begin


def pack_value(pack: dict[str, Any], files: Iterable[QueryFile]) -> dict[str, Any]:
    """The pack as osqueryd reads it: its own fields and its queries."""
    return {**pack, "queries": {q.name: {"query": q.sql, **q.fields} for q in files}}


def write_pack(pack: dict[str, Any], files: Iterable[QueryFile],
               output: str | os.PathLike[str], text: str | None = None) -> None:
    """Write the pack to ``output``: ``text`` when given (an edited file), else rendered."""
    if text is None:
        text = json.dumps(pack_value(pack, files), indent=2, ensure_ascii=False) + "\n"
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise PackToolError(f"{output}: the pack would be {len(text.encode())} bytes; "
                            f"osqueryd reads at most {MAX_CONFIG_BYTES}")
    target = Path(os.path.realpath(output))  # a symlink stays one: its target is written
    if target.exists() and not target.is_file():
        raise PackToolError(f"{output}: exists and is not a regular file")
    try:
        write_file(target, text.encode("utf-8"))
    except OSError as exc:
        raise PackToolError(f"{target}: cannot be written ({exc.strerror})") from None


def _file_name(name: str, taken: set[str]) -> str:
    base = name if _SAFE_NAME.match(name) and name not in (".", "..") else \
        re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:100] or "query"
    candidate, n = base, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate.lower())
    return candidate + ".sql"


def _name_value(raw: str) -> str:
    """A text header: as written, or a JSON string (for spaces at either end)."""
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(value, str):
            return value
    return raw


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and (text != text.strip() or text.startswith('"')):
        return json.dumps(text)  # read back by _name_value
    return text


def _render(query: QueryFile, file_name: str) -> str:
    """The text of ``query``'s file: a header line per field, then the SQL."""
    header = []
    if file_name != f"{query.name}.sql":
        header.append(f"-- name: {_header_text(query.name)}")
    for key, value in query.fields.items():
        text = _header_text(value)
        if key not in _QUERY_FIELDS:
            raise PackToolError(f"{query.source}: {key!r} is not a field of a pack's query; "
                                "it cannot go into a .sql file")
        if "\n" in text or "\r" in text:
            raise PackToolError(f"{query.source}: {key} has a line break")
        header.append(f"-- {key}: {text}")
    sql = query.sql
    plain = "\r" not in sql and sql == sql.strip() and \
        not sql.lstrip().startswith("--") and sql
    if not plain:
        header.append("-- sql:")  # the rest of the file, exactly
    return "\n".join(header) + ("\n" if header else "") + sql + "\n"


def unpack_pack(pack: dict[str, Any], files: list[QueryFile],
                directory: str | os.PathLike[str], *, replace: bool = False
                ) -> tuple[list[Path], int]:
    """Write one ``.sql`` file per query (and ``_pack.json``) into ``directory``; returns
    the files written and how many old ``.sql`` files ``replace`` removed. Every file is
    rendered and read back in memory first: a query that cannot round-trip stops the whole
    unpack before anything is written."""
    root = Path(directory)
    if root.is_symlink():
        raise PackToolError(f"{root}: is a symbolic link; give a real directory")
    rendered: list[tuple[str, str]] = []
    taken: set[str] = set()
    for query in files:
        if not query.name or "\n" in query.name or "\r" in query.name or \
                "\x00" in query.name:
            raise PackToolError(f"{query.source}: a query name must be one line of text")
        file_name = _file_name(query.name, taken)
        text = _render(query, file_name)
        back = parse_query_text(text, file_name[:-4], query.source)
        if back.name != query.name or back.sql != query.sql or \
                {k: _header_text(v) for k, v in back.fields.items()} != \
                {k: _header_text(v) for k, v in query.fields.items()}:
            raise PackToolError(f"{query.source}: would not read back the same from a "
                                ".sql file (check its interval, shard and flags)")
        rendered.append((file_name, text))
    root.mkdir(parents=True, exist_ok=True)
    existing = sorted(root.glob("*.sql"))
    links = [p for p in existing if p.is_symlink() or not p.is_file()]
    if links:
        raise PackToolError(f"{links[0]}: not a regular file; not written through or over")
    if existing and not replace:
        raise PackToolError(f"{root}: already holds {len(existing)} .sql files; "
                            "use --replace to write over them")
    for old in existing:
        old.unlink()
    written: list[Path] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for file_name, text in rendered:
        path = root / file_name
        try:
            fd = os.open(path, flags, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        except OSError as exc:
            raise PackToolError(f"{path}: cannot be written ({exc.strerror})") from None
        written.append(path)
    if pack:  # the pack's own fields (platform, version, shard, discovery, ...)
        extra = root / PACK_FIELDS_FILE
        if extra.is_symlink():
            raise PackToolError(f"{extra}: is a symbolic link; not written through")
        extra.write_text(json.dumps(pack, indent=2, ensure_ascii=False) + "\n")
        written.append(extra)
    return written, len(existing)
