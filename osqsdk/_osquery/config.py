"""osquery's config text rules: comment stripping, size and depth limits, booleans,
intervals, and the structural checks osqueryd applies to a schedule and its packs.

One implementation for every product: the extension SDK's ``DirectoryConfig``, the runner
and the linter read config text through these functions (docs/protocol.md §5.2).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["C_SPACE", "LAST_WINS", "MAX_CONFIG_BYTES", "MAX_DEPTH", "ConfigProblem",
           "StrippedText", "is_interval", "load_json", "osquery_bool", "parse_interval",
           "parse_osquery_json", "repeated_key_wins", "strip_config", "strip_config_comments",
           "validate_config", "validate_pack"]

# osqueryd's limit on a config or pack after comment stripping: 1 MiB in released 5.x,
# 4 MiB on master after 5.23 (osquery a5b14f6, #9042).
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# osqueryd's kMaxConfigDepth.
MAX_DEPTH = 32

class ConfigProblem(ValueError):
    """A config or pack that osqueryd would reject or misread; the message says where."""



# osquery trims lines with boost::trim in the C locale: ASCII whitespace only, so a line
# that starts with a no-break space then "#" is content, not a comment (config.cpp).
C_SPACE = " \t\n\r\v\f"


@dataclass
class StrippedText:
    """Text after osquery's pre-processing, mapping its offsets back to the original file."""

    text: str
    _starts: list[int]
    _origins: list[int]
    _joins: list[int]  # where each removed backslash-newline was, in the joined text
    comment_lines: list[tuple[int, str]]

    def original(self, offset: int) -> int:
        """Original-file character offset of stripped-text ``offset``."""
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return 0
        return _orig_offset(self._origins[i] + offset - self._starts[i], self._joins)


def strip_config(text: str) -> StrippedText:
    """Apply osquery's ``stripConfigComments`` to ``text`` and keep the way back.

    osquery removes every backslash-newline pair, splits lines, trims each, drops lines whose
    trimmed text starts with ``#`` or ``//``, and joins the rest with newlines.
    """
    joins: list[int] = []
    if "\\\n" in text:
        pieces = text.split("\\\n")
        pos = 0
        for piece in pieces[:-1]:
            pos += len(piece)
            joins.append(pos)
        joined = "".join(pieces)
    else:
        joined = text
    out: list[str] = []
    starts: list[int] = []
    origins: list[int] = []
    comments: list[tuple[int, str]] = []
    length = 0
    a = 0
    for raw in joined.split("\n"):
        lead = len(raw) - len(raw.lstrip(C_SPACE))
        line = raw.strip(C_SPACE)
        if line.startswith(("#", "//")):
            comments.append((_orig_offset(a + lead, joins), line))
        else:
            starts.append(length)
            origins.append(a + lead)
            out.append(line)
            length += len(line) + 1
        a += len(raw) + 1
    return StrippedText("\n".join(out), starts, origins, joins, comments)


def _orig_offset(pos: int, joins: list[int]) -> int:
    """``pos`` in the joined text as an offset in the original: each removed backslash-newline
    at or before it shifts it by two characters."""
    return pos + 2 * bisect.bisect_right(joins, pos)


def strip_config_comments(text: str) -> str:
    """The text osqueryd parses as JSON: ``strip_config(text).text``."""
    return strip_config(text).text


def _depth(value: Any, limit: int) -> int:
    # Iterative, so that a hostile document cannot exhaust Python's stack.
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


#: Objects of a config whose repeated keys osqueryd reads last-wins (docs/protocol.md §5.2):
#: each pack replaces one of the same name, each option sets its flag again.
LAST_WINS = frozenset({("packs",), ("options",)})


def repeated_key_wins(object_path: tuple[Any, ...]) -> str:
    """Which of a repeated key osqueryd reads in the object at ``object_path``."""
    return "last" if tuple(object_path) in LAST_WINS else "first"


class _Members(dict):  # type: ignore[type-arg]
    """An object read first-wins, keeping the last value of each repeated key aside."""

    __slots__ = ("last",)
    last: dict[str, Any] | None


def _first_of_each_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # osqueryd looks keys up with RapidJSON's FindMember (the first member of a name) and
    # keeps the first query of a name in a pack (std::map::emplace): docs/protocol.md §5.2
    out = _Members()
    out.last = None
    for key, value in pairs:
        if key not in out:
            out[key] = value
        else:
            if out.last is None:
                out.last = {}
            out.last[key] = value
    return out


def _number(text: str) -> float | int:
    # RapidJSON refuses a number too big for a double ("Number too big to be stored in
    # double"); Python would read it, or fail with a traceback past 4,300 digits.
    if math.isinf(float(text)):
        raise json.JSONDecodeError("number too big to be stored in a double", text, 0)
    return float(text) if any(c in text for c in ".eE") else int(text)


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)


def _unpaired_surrogate(text: str) -> int | None:
    """Where a ``\\uD800``-``\\uDFFF`` escape stands without its other half, or None."""
    high_end = -1  # where the last high-surrogate escape ended, if it was the last escape
    high_at = -1
    for match in _ESCAPE.finditer(text):
        code = int(match.group(1), 16) if match.group(1) else -1
        if high_end >= 0 and not (match.start() == high_end and 0xDC00 <= code <= 0xDFFF):
            return high_at
        if high_end >= 0:
            high_end = -1
            continue
        if 0xD800 <= code <= 0xDBFF:
            high_end, high_at = match.end(), match.start()
        elif 0xDC00 <= code <= 0xDFFF:
            return match.start()
    return high_at if high_end >= 0 else None


def load_json(text: str) -> Any:
    """``json.loads`` as osqueryd reads JSON (docs/protocol.md §5.2): the first of a
    repeated key counts (the last in a config's ``packs`` and ``options``), NaN and
    Infinity are not JSON, a number beyond a double's range is an error, and so is half a
    surrogate pair. A JSONDecodeError's ``pos`` is where the first problem is."""
    half = _unpaired_surrogate(text) if re.search(r"\\u[dD][89a-fA-F]", text) else None
    # RapidJSON: kParseErrorStringUnicodeSurrogateInvalid, where the escape stands
    surrogate = json.JSONDecodeError("half of a surrogate pair in a string", text, half or 0)
    try:
        data = json.loads(text, object_pairs_hook=_first_of_each_key, parse_int=_number,
                          parse_float=_number, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        error = exc
        if exc.doc is not text:  # raised by a hook, which is not told where it is
            error = json.JSONDecodeError(exc.msg, text, _token_at(text, exc.doc))
        raise (surrogate if half is not None and half < error.pos else error) from None
    if half is not None:
        raise surrogate
    if isinstance(data, dict):
        for (key,) in LAST_WINS:
            section = data.get(key)
            if isinstance(section, _Members) and section.last:
                section.update(section.last)
    return data


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _token_at(text: str, token: str) -> int:
    """Where ``token`` first stands outside a string in JSON ``text``."""
    spans = [(m.start(), m.end()) for m in _STRING.finditer(text)]
    starts = [a for a, _ in spans]
    at = text.find(token)
    while at >= 0:
        i = bisect.bisect_right(starts, at) - 1
        inside = i >= 0 and at < spans[i][1]
        if not inside and (at == 0 or not (text[at - 1].isalnum() or text[at - 1] in "._+-")):
            return at
        at = text.find(token, at + 1)
    return 0


def parse_osquery_json(text: str, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """Read config or pack text as osqueryd does; raise ConfigProblem with the reason."""
    kept = strip_config(text)
    stripped = kept.text
    size = len(stripped.encode("utf-8", "surrogateescape"))
    if size > max_bytes:
        raise ConfigProblem(f"{what} is {size} bytes after comment stripping; osqueryd accepts "
                            f"at most {max_bytes} bytes")
    # Reject absurd nesting before json.loads recurses into it.
    if re.search(rf"[\[{{]{{{MAX_DEPTH + 1},}}", stripped):
        raise ConfigProblem(f"{what} nests deeper than osqueryd's {MAX_DEPTH} levels")
    try:
        data = load_json(stripped)
    except RecursionError:
        raise ConfigProblem(f"{what} nests deeper than osqueryd's {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        at = kept.original(exc.pos)  # a position in the file as written, comments and all
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise ConfigProblem(f"{what}:{line}:{column}: not JSON after osquery's comment "
                            f"stripping: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigProblem(f"{what} must be a JSON object, not {type(data).__name__}")
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise ConfigProblem(f"{what} nests deeper than osqueryd's {MAX_DEPTH} levels")
    return data


def osquery_bool(value: Any, default: bool) -> bool:
    """A config value read as osquery reads booleans (JSON::valueToBool): a JSON bool,
    "true"/"t" in any case, or a non-zero number; anything else is ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t")
    return default


def is_interval(value: Any) -> bool:
    """Whether a schedule or pack check accepts ``value`` as a number of seconds."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().isdigit()


def _check_query(query: Any, where: str, problems: list[str]) -> None:
    if not isinstance(query, dict):
        problems.append(f"{where}: a query must be an object")
        return
    sql = query.get("query")
    if not isinstance(sql, str) or not sql.strip():
        problems.append(f"{where}.query: missing or not a string")
    if "interval" in query and not is_interval(query["interval"]):
        problems.append(f"{where}.interval: must be a number of seconds")
    for key in ("platform", "version", "description", "value"):
        if key in query and not isinstance(query[key], str):
            problems.append(f"{where}.{key}: must be a string")


def validate_pack(pack: Any, where: str = "pack") -> list[str]:
    """Structural problems osqueryd would reject or silently skip, as ``path: why``."""
    problems: list[str] = []
    if not isinstance(pack, dict):
        return [f"{where}: a pack must be an object"]
    queries = pack.get("queries", {})
    if not isinstance(queries, dict):
        problems.append(f"{where}.queries: must be an object of named queries")
    else:
        for name, query in queries.items():
            _check_query(query, f"{where}.queries.{name}", problems)
    discovery = pack.get("discovery", [])
    if not isinstance(discovery, list) or not all(isinstance(d, str) for d in discovery):
        problems.append(f"{where}.discovery: must be an array of SQL strings")
    for key in ("platform", "version", "oncall"):
        if key in pack and not isinstance(pack[key], str):
            problems.append(f"{where}.{key}: must be a string")
    if "shard" in pack and not is_interval(pack["shard"]):
        problems.append(f"{where}.shard: must be a number")
    return problems


def validate_config(config: Any) -> list[str]:
    """Structural problems of a whole config (schedule, packs, decorators, options)."""
    problems: list[str] = []
    if not isinstance(config, dict):
        return ["config: must be an object"]
    schedule = config.get("schedule", {})
    if not isinstance(schedule, dict):
        problems.append("schedule: must be an object of named queries")
    else:
        for name, query in schedule.items():
            _check_query(query, f"schedule.{name}", problems)
    packs = config.get("packs", {})
    if not isinstance(packs, dict):
        problems.append("packs: must be an object")
    else:
        for name, pack in packs.items():
            if not isinstance(pack, str):
                problems.extend(validate_pack(pack, f"packs.{name}"))
    options = config.get("options", {})
    if not isinstance(options, dict):
        problems.append("options: must be an object")
    decorators = config.get("decorators", {})
    if not isinstance(decorators, dict):
        problems.append("decorators: must be an object")
    else:
        for key in ("load", "always"):
            value = decorators.get(key, [])
            if not isinstance(value, list) or not all(isinstance(q, str) for q in value):
                problems.append(f"decorators.{key}: must be an array of SQL strings")
        intervals = decorators.get("interval", {})
        if not isinstance(intervals, dict):
            problems.append("decorators.interval: must be an object")
        else:
            for seconds, queries in intervals.items():
                if not str(seconds).isdigit():
                    problems.append(f"decorators.interval.{seconds}: key must be seconds")
                if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
                    problems.append(f"decorators.interval.{seconds}: must be an array of SQL "
                                    "strings")
    return problems


def parse_interval(value: Any) -> int | None:
    """osquery's reading of an interval: an integer or a string of digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None
