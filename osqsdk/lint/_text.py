"""Reading input files the way osqueryd and Fleet do, keeping every position.

* :func:`read_source` reads bytes within a size cap and decodes UTF-8, naming the first bad
  byte's line and column when it cannot.
* osquery's config pre-processing (comment stripping with a map back to the file) is
  ``osqsdk._osquery.config.strip_config``, shared with the extension SDK and the runner.
* :func:`parse_json` checks nesting depth (osquery allows 32 levels) and duplicate keys with a
  small tokenizer, then decodes with :mod:`json`, recording where every value sits.
* :func:`parse_yaml` composes YAML with the safe loader (no tags that build objects, aliases
  never expanded twice) and records positions the same way.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any

from osqsdk._osquery.config import C_SPACE as _SPACE

__all__ = ["JsonError", "Positions", "SourceText", "align", "parse_json", "parse_yaml",
           "read_source"]

#: osquery's kMaxConfigDepth.
MAX_JSON_DEPTH = 32
#: Nesting beyond which YAML is not handed to the parser at all.
MAX_YAML_DEPTH = 64


class JsonError(ValueError):
    """Text that is not a document: ``offset`` is where (in the parsed text), ``kind`` why."""

    def __init__(self, message: str, offset: int, kind: str = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.kind = kind


@dataclass
class SourceText:
    """A file's text plus line starts, to turn character offsets into lines and columns."""

    text: str
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        starts = [0]
        find = self.text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self._starts = starts

    @property
    def line_count(self) -> int:
        return len(self._starts)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of character ``offset``."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1

    def offset(self, line: int, column: int) -> int:
        """Character offset of 1-based (``line``, ``column``), the inverse of ``position``."""
        line = max(1, min(line, len(self._starts)))
        return min(self._starts[line - 1] + max(column, 1) - 1, len(self.text))

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its newline."""
        if line < 1 or line > len(self._starts):
            return ""
        start = self._starts[line - 1]
        end = self._starts[line] - 1 if line < len(self._starts) else len(self.text)
        return self.text[start:end]


def read_source(data: bytes) -> tuple[str | None, str | None, tuple[int, int]]:
    """Decode file bytes: (text, None, _) or (None, cause, (line, column)) when unusable."""
    if b"\x00" in data[:8192]:
        pos = data.index(b"\x00")
        return None, "binary file (NUL byte)", _byte_position(data, pos)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte 0x{data[exc.start]:02x})", _byte_position(data, exc.start)
    text = text.removeprefix("\ufeff")
    return text, None, (1, 1)


def _byte_position(data: bytes, pos: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, pos) + 1
    last = data.rfind(b"\n", 0, pos)
    prefix = data[last + 1:pos]
    return line, len(prefix.decode("utf-8", "replace")) + 1


# --- JSON with positions ------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[{}\[\]:,]|[^\s{}\[\]:,"]+|\s+')


class Positions:
    """Where each value of a parsed document sits: path tuple -> (start, end) offsets.

    Paths are tuples of object keys and array indexes. ``keys`` holds key offsets,
    ``duplicates`` every (object path, key, key offset) seen twice.
    """

    def __init__(self) -> None:
        self.values: dict[tuple[Any, ...], tuple[int, int]] = {}
        self.keys: dict[tuple[Any, ...], tuple[int, int]] = {}
        self.duplicates: list[tuple[tuple[Any, ...], str, int]] = []
        self.raw_strings: dict[tuple[Any, ...], str] = {}

    def span(self, path: tuple[Any, ...], key: bool = False) -> tuple[int, int] | None:
        """Offsets of the value (or key) at ``path``, or of its nearest ancestor."""
        table = self.keys if key else self.values
        p = tuple(path)
        while True:
            if p in table:
                return table[p]
            if key and p in self.values:
                return self.values[p]
            if not p:
                return None
            p = p[:-1]


def _scan_json(text: str) -> Positions:
    """Tokenize JSON text once: positions, duplicate keys, and the depth limit.

    Where a key repeats, the positions are those of the value osqueryd reads: the first,
    or the last in a config's ``packs`` and ``options`` (``repeated_key_wins``)."""
    from osqsdk._osquery.config import repeated_key_wins

    pos = Positions()
    # Each frame: [kind, path, next key or index, seen keys, expecting_key, mode]; mode is
    # "keep" (record), "skip" (a value osqueryd does not read) or "replace" (one it reads
    # instead of an earlier one)
    stack: list[list[Any]] = []
    pending_key: str | None = None
    pending_mode = "keep"
    value_path: tuple[Any, ...] = ()
    starts: list[int] = []

    def record(table: dict[tuple[Any, ...], Any], path: tuple[Any, ...], value: Any,
               mode: str) -> None:
        if mode == "replace":
            table[path] = value
        elif mode == "keep":
            table.setdefault(path, value)

    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c in _SPACE:
            continue
        start = m.start()
        if c in "{[":
            mode = "keep"
            if stack and stack[-1][0] == "[":
                value_path = stack[-1][1] + (stack[-1][2],)
                mode = stack[-1][5]
            elif stack:
                value_path = stack[-1][1] + (pending_key,)
                mode = pending_mode
            else:
                value_path = ()
            if len(stack) >= MAX_JSON_DEPTH:
                raise JsonError(f"nesting deeper than {MAX_JSON_DEPTH} levels", start, "depth")
            stack.append(["{" if c == "{" else "[", value_path, 0, set(), c == "{", mode])
            starts.append(start)
            continue
        if c in "}]":
            if not stack:
                return pos  # json.loads reports the stray bracket
            frame = stack.pop()
            record(pos.values, frame[1], (starts.pop(), m.end()), frame[5])
            if stack and stack[-1][0] == "[":
                stack[-1][2] += 1
            continue
        if c == ",":
            if stack and stack[-1][0] == "{":
                stack[-1][4] = True
            continue
        if c == ":":
            continue
        # A scalar (string, number, literal).
        if stack and stack[-1][0] == "{" and stack[-1][4]:
            key = _decode_key(tok)
            frame = stack[-1]
            pending_mode = frame[5]
            if key in frame[3]:
                pos.duplicates.append((frame[1], key, start))
                if pending_mode != "skip":
                    pending_mode = "replace" if repeated_key_wins(frame[1]) == "last" \
                        else "skip"
            frame[3].add(key)
            pending_key = key
            record(pos.keys, frame[1] + (key,), (start, m.end()), pending_mode)
            frame[4] = False
            continue
        if stack and stack[-1][0] == "[":
            vp = stack[-1][1] + (stack[-1][2],)
            stack[-1][2] += 1
            mode = stack[-1][5]
        elif stack:
            vp = stack[-1][1] + (pending_key,)
            mode = pending_mode
        else:
            vp = ()
            mode = "keep"
        record(pos.values, vp, (start, m.end()), mode)
        if c == '"':
            record(pos.raw_strings, vp, tok, mode)
    return pos


def _decode_key(tok: str) -> str:
    try:
        value = json.loads(tok)
    except ValueError:
        return tok.strip('"')
    return value if isinstance(value, str) else tok


def parse_json(text: str) -> tuple[Any, Positions]:
    """Decode JSON text and locate its values; raise :class:`JsonError` when it is not JSON."""
    from osqsdk._osquery.config import load_json

    positions = _scan_json(text)
    try:
        value = load_json(text)  # as osqueryd reads it: the first of a repeated key counts
    except json.JSONDecodeError as exc:
        raise JsonError(exc.msg, exc.pos) from None
    except RecursionError:
        raise JsonError("nesting too deep to read", 0, "depth") from None
    return value, positions


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}


def json_string_offsets(raw: str, base: int) -> list[int]:
    """For each character of the decoded JSON string token ``raw`` (starting at ``base``),
    the offset in the parsed text it came from; one extra entry marks the end."""
    out: list[int] = []
    i = 1
    end = len(raw) - 1 if raw.endswith('"') and len(raw) > 1 else len(raw)
    while i < end:
        ch = raw[i]
        if ch == "\\" and i + 1 < end:
            nxt = raw[i + 1]
            if nxt == "u":
                out.append(base + i)
                code = raw[i + 2:i + 6]
                i += 6
                try:
                    value = int(code, 16)
                except ValueError:
                    continue
                if 0xD800 <= value < 0xDC00 and raw[i:i + 2] == "\\u":
                    i += 6  # a surrogate pair decodes to one character
                continue
            if nxt in _ESCAPES:
                out.append(base + i)
                i += 2
                continue
        out.append(base + i)
        i += 1
    out.append(base + end)
    return out


def align(value: str, source: str, base: int) -> list[int]:
    """Map each character of a decoded scalar to an offset in its ``source`` text.

    Used for YAML scalars, whose folding and indentation make exact decoding complex: each
    line of the value is looked up verbatim in order (the common case, literal blocks and
    plain scalars); otherwise its non-space characters are matched one by one.
    """
    out: list[int] = []
    j = 0
    n = len(source)
    for line in value.split("\n"):
        k = source.find(line, j) if line else -1
        if line and k != -1 and (k - j) < 512:
            out.extend(range(base + k, base + k + len(line)))
            j = k + len(line)
        else:
            for ch in line:
                if ch.isspace():
                    out.append(base + min(j, max(n - 1, 0)))
                    continue
                k = source.find(ch, j, j + 16)
                if k == -1:
                    out.append(base + min(j, max(n - 1, 0)))
                    continue
                out.append(base + k)
                j = k + 1
        out.append(base + min(j, max(n - 1, 0)))  # the newline
    out.pop()
    out.append(base + min(j, n))
    return out


# --- YAML with positions ------------------------------------------------------------------

def yaml_depth_exceeds(text: str, limit: int = MAX_YAML_DEPTH) -> int | None:
    """Offset where flow or indentation nesting passes ``limit`` (a cheap pre-check that keeps
    deep input away from the parser's recursion), or None."""
    depth = 0
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote or ch == "\n":
                quote = ""
            continue
        if ch in "\"'" and (i == 0 or text[i - 1] in " \t[{,:\n-"):
            quote = ch
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return i
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            nl = text.find("\n", i)
            if nl == -1:
                break
            # skip the comment; the loop resumes after it
            quote = "\n"
    for m in re.finditer(r"^( *)\S", text, re.MULTILINE):
        if len(m.group(1)) > limit * 4:
            return m.start()
    return None


@dataclass
class YamlDoc:
    """One YAML document: its value and where each value sits."""

    value: Any
    positions: Positions


def parse_yaml(text: str) -> list[YamlDoc]:
    """Parse every document of a YAML stream with positions; raise :class:`JsonError`.

    Aliases are resolved to the same object (never copied), so alias bombs stay small, and a
    cap on visited nodes bounds the work.
    """
    import yaml

    deep = yaml_depth_exceeds(text)
    if deep is not None:
        raise JsonError(f"nesting deeper than {MAX_YAML_DEPTH} levels", deep, "depth")
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    docs: list[YamlDoc] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            pos = Positions()
            budget = [200_000]
            value = _build(loader, node, (), pos, {}, budget)
            docs.append(YamlDoc(value, pos))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        offset = mark.index if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise JsonError(problem, offset) from None
    except yaml.YAMLError as exc:
        raise JsonError(str(exc).splitlines()[0] if str(exc) else "invalid YAML", 0) from None
    except RecursionError:
        raise JsonError("nesting too deep to read", 0, "depth") from None
    finally:
        loader.dispose()
    return docs


def _build(loader: Any, node: Any, path: tuple[Any, ...], pos: Positions,
           seen: dict[int, Any], budget: list[int]) -> Any:
    import yaml

    budget[0] -= 1
    if budget[0] < 0:
        raise JsonError("too many YAML nodes", node.start_mark.index, "size")
    pos.values[path] = (node.start_mark.index, node.end_mark.index)
    key = id(node)
    if key in seen:
        return seen[key]
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
        raise JsonError(f"tag {node.tag!r} is not allowed", node.start_mark.index)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        seen[key] = out
        loader.flatten_mapping(node)
        for knode, vnode in node.value:
            if isinstance(knode, yaml.ScalarNode):
                k = knode.value if knode.tag == _STR_TAG else loader.construct_object(
                    knode, deep=True)
            else:
                k = str(knode.start_mark)
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                k = str(k)
            if k in out:
                pos.duplicates.append((path, str(k), knode.start_mark.index))
            pos.keys[path + (k,)] = (knode.start_mark.index, knode.end_mark.index)
            out[k] = _build(loader, vnode, path + (k,), pos, seen, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        seen[key] = items
        for i, child in enumerate(node.value):
            items.append(_build(loader, child, path + (i,), pos, seen, budget))
        return items
    # plain strings need no constructor
    value = node.value if node.tag == _STR_TAG else loader.construct_object(node, deep=True)
    seen[key] = value
    return value


_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
