"""Config plugins, and DirectoryConfig: a config server that never serves a broken config.

osqueryd asks the active config plugin for ``genConfig`` at start and every
``--config_refresh`` seconds, and for ``genPack`` for each pack the config names by a string
instead of an object (protocol.md §5).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from osqsdk._plugin import Plugin, Response

__all__ = ["MAX_CONFIG_BYTES", "ConfigPlugin", "ConfigProblem", "DirectoryConfig",
           "osquery_bool", "parse_osquery_json", "strip_config_comments", "validate_config", "validate_pack"]

log = logging.getLogger("osqsdk.config")

# osqueryd's limit on a config or pack after comment stripping: 1 MiB in released 5.x,
# 4 MiB on master after 5.23 (osquery a5b14f6, #9042).
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# osqueryd's kMaxConfigDepth.
MAX_DEPTH = 32

GenConfigFunc = Callable[[], Mapping[str, "str | Mapping[str, Any]"]]
GenPackFunc = Callable[[str, str], "str | Mapping[str, Any] | None"]


class ConfigProblem(ValueError):
    """A config or pack that osqueryd would reject or misread; the message says where."""


# -- osquery's config text rules ----------------------------------------------------------
def strip_config_comments(text: str) -> str:
    """osquery's stripConfigComments: join backslash-newlines, drop whole-line ``#`` and
    ``//`` comments (config.cpp). Inline comments and trailing commas stay errors."""
    text = text.replace("\\\n", "")
    return "\n".join(line for line in text.split("\n")
                     if not line.strip().startswith(("#", "//")))


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


def parse_osquery_json(text: str, what: str, max_bytes: int = MAX_CONFIG_BYTES) -> dict[str, Any]:
    """Read config or pack text as osqueryd does; raise ConfigProblem with the reason."""
    stripped = strip_config_comments(text)
    size = len(stripped.encode("utf-8", "surrogateescape"))
    if size > max_bytes:
        raise ConfigProblem(f"{what} is {size} bytes after comment stripping; osqueryd accepts "
                            f"at most {max_bytes} bytes")
    # Reject absurd nesting before json.loads recurses into it.
    if re.search(r"[\[{]{%d,}" % (MAX_DEPTH + 1), stripped):
        raise ConfigProblem(f"{what} nests deeper than osqueryd's {MAX_DEPTH} levels")
    try:
        data = json.loads(stripped)
    except RecursionError:
        raise ConfigProblem(f"{what} nests deeper than osqueryd's {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        line = exc.lineno
        raise ConfigProblem(f"{what} is not JSON after osquery's comment stripping: {exc.msg} "
                            f"(line {line} column {exc.colno} of the stripped text)") from None
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


def _is_interval(value: Any) -> bool:
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
    if "interval" in query and not _is_interval(query["interval"]):
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
    if "shard" in pack and not _is_interval(pack["shard"]):
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
                    problems.append(f"decorators.interval.{seconds}: must be an array of SQL strings")
    return problems


# -- plugins -------------------------------------------------------------------------------
def _as_text(value: "str | Mapping[str, Any]") -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


class ConfigPlugin(Plugin):
    """A config source osqueryd can use (``--config_plugin=<name>``).

    ``gen_config()`` returns ``{source name: config}``, each config as JSON text or a
    mapping. ``gen_pack(name, value)`` answers packs the config names by a string
    (``"packs": {"web": "web-pack"}`` makes osqueryd ask for ``("web", "web-pack")``);
    returning None means there is no such pack. A config over osqueryd's size limit is
    refused with a message instead of being sent.
    """

    registry = "config"

    def __init__(self, name: str, gen_config: GenConfigFunc, *,
                 gen_pack: GenPackFunc | None = None, max_bytes: int = MAX_CONFIG_BYTES) -> None:
        self.name = name
        self.gen_config = gen_config
        self.gen_pack = gen_pack
        self.max_bytes = max_bytes

    def call(self, request: Mapping[str, str]) -> Response:
        action = request.get("action")
        if action == "genConfig":
            sources = {name: _as_text(value) for name, value in self.gen_config().items()}
            for name, text in sources.items():
                size = len(text.encode("utf-8", "surrogateescape"))
                if size > self.max_bytes:
                    return Response.failed(f"config {self.name!r}: source {name!r} is {size} "
                                           f"bytes; osqueryd accepts at most {self.max_bytes}")
            return Response.ok([sources])
        if action == "genPack":
            name, value = request.get("name", ""), request.get("value", "")
            if self.gen_pack is None:
                return Response.failed(f"config {self.name!r} serves no packs by name")
            pack = self.gen_pack(name, value)
            if pack is None:
                return Response.failed(f"config {self.name!r}: no pack {name!r} ({value!r})")
            return Response.ok([{name: _as_text(pack)}])
        return Response.failed(f"config {self.name!r}: unknown action {action!r}")


@dataclass
class _Cached:
    stamp: tuple[int, int, int]
    text: str


class DirectoryConfig(ConfigPlugin):
    """Serve ``<root>/osquery.conf`` and the packs it names from files under ``root``.

    Every request re-reads the files (cheaply: by modification time), so edits reach
    osqueryd at its next ``--config_refresh`` without a restart. Before serving, the text
    goes through osquery's comment stripping, JSON parsing, osqueryd's size and depth limits
    and a structural check of the schedule and packs. When an edit is broken, or the
    directory is gone, the last good config (or pack) keeps being served and the reason is
    logged. A pack reference (``"packs": {"ir": "packs/ir.conf"}``) or glob
    (``"packs": {"*": "packs/*.conf"}``, one pack per file, named after the file) must
    resolve, symlinks followed, to a file inside ``root``.
    """

    def __init__(self, root: str | Path, *, name: str = "directory",
                 config_file: str = "osquery.conf", max_bytes: int = MAX_CONFIG_BYTES) -> None:
        super().__init__(name, self._generate, gen_pack=self._pack, max_bytes=max_bytes)
        self.root = Path(root).absolute()
        self.config_file = config_file
        self._cache: dict[Path, _Cached] = {}
        self._good_config: str | None = None
        self._good_packs: dict[str, str] = {}
        self._lock = threading.Lock()
        self.last_error: str | None = None

    # -- files ---------------------------------------------------------------------------
    def _inside(self, relative: str, what: str) -> Path:
        root = self.root.resolve()
        candidate = Path(relative)
        path = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if path != root and root not in path.parents:
            raise ConfigProblem(f"{what} {relative!r} resolves to {path}, outside {root}")
        return path

    def _read(self, path: Path, what: str) -> str:
        try:
            st = path.stat()
            if st.st_size > 4 * self.max_bytes:  # too big even if most of it were comments
                raise ConfigProblem(f"{what} is {st.st_size} bytes; osqueryd accepts at most "
                                    f"{self.max_bytes} bytes")
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._cache.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached.text
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigProblem(f"{what} {path} does not exist") from None
        except OSError as exc:
            raise ConfigProblem(f"{what} {path} cannot be read: {exc.strerror}") from None
        text = data.decode("utf-8", "surrogateescape")
        self._cache[path] = _Cached(stamp, text)
        return text

    def _load_pack(self, reference: str, what: str) -> str:
        path = self._inside(reference, what)
        pack = parse_osquery_json(self._read(path, what), f"{what} {reference}", self.max_bytes)
        problems = validate_pack(pack, what)
        if problems:
            raise ConfigProblem("; ".join(problems))
        return json.dumps(pack, separators=(",", ":"))

    # -- genConfig / genPack -------------------------------------------------------------
    def _generate(self) -> dict[str, str]:
        with self._lock:
            try:
                text = self._build_config()
            except ConfigProblem as exc:
                self.last_error = str(exc)
                if self._good_config is None:
                    log.error("config %s: %s; there is no earlier good config to serve",
                              self.name, exc)
                    raise
                log.error("config %s: %s; serving the last good config", self.name, exc)
                return {self.config_file: self._good_config}
            self._good_config = text
            self.last_error = None
            return {self.config_file: text}

    def _build_config(self) -> str:
        path = self._inside(self.config_file, "config file")
        config = parse_osquery_json(self._read(path, "config file"), self.config_file,
                                    self.max_bytes)
        problems = validate_config(config)
        if problems:
            raise ConfigProblem(f"{self.config_file}: " + "; ".join(problems))
        packs = config.get("packs")
        if isinstance(packs, dict):
            expanded: dict[str, Any] = {}
            for name, value in packs.items():
                if isinstance(value, str) and glob.has_magic(value):
                    for match in self._glob(value):
                        expanded[match.stem] = os.path.relpath(match, self.root.resolve())
                else:
                    if isinstance(value, str):
                        self._inside(value, f"pack {name!r}")  # refuse escapes up front
                    expanded[name] = value
            config["packs"] = expanded
            for name, value in expanded.items():
                if isinstance(value, str):
                    self._remember_pack(name, value)
        return json.dumps(config, separators=(",", ":"))

    def _glob(self, pattern: str) -> list[Path]:
        root = self.root.resolve()
        base = pattern if os.path.isabs(pattern) else str(root / pattern)
        matches = []
        for found in sorted(glob.glob(base)):
            try:
                matches.append(self._inside(found, "pack glob match"))
            except ConfigProblem as exc:
                log.error("config %s: %s; skipped", self.name, exc)
        return matches

    def _remember_pack(self, name: str, reference: str) -> None:
        # Validate referenced packs while building the config, so that a broken pack edit
        # is reported now and genPack can fall back to the last good version.
        try:
            self._good_packs[name] = self._load_pack(reference, f"pack {name!r}")
        except ConfigProblem as exc:
            log.error("config %s: %s; keeping the last good version of pack %r",
                      self.name, exc, name)

    def _pack(self, name: str, value: str) -> str | None:
        with self._lock:
            try:
                text = self._load_pack(value or name, f"pack {name!r}")
            except ConfigProblem as exc:
                self.last_error = str(exc)
                good = self._good_packs.get(name)
                if good is None:
                    log.error("config %s: %s; no earlier good version to serve", self.name, exc)
                    raise
                log.error("config %s: %s; serving the last good version", self.name, exc)
                return good
            self._good_packs[name] = text
            return text

    def call(self, request: Mapping[str, str]) -> Response:
        try:
            return super().call(request)
        except ConfigProblem as exc:
            return Response.failed(f"config {self.name!r}: {exc}")
