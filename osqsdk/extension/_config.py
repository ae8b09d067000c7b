"""Config plugins, and DirectoryConfig: a config server that never serves a broken config.

osqueryd asks the active config plugin for ``genConfig`` at start and every
``--config_refresh`` seconds, and for ``genPack`` for each pack the config names by a string
instead of an object (docs/protocol.md §5).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osqsdk._osquery.config import (
    MAX_CONFIG_BYTES,
    ConfigProblem,
    parse_osquery_json,
    validate_config,
    validate_pack,
)
from osqsdk.extension._plugin import Plugin, Response

__all__ = ["ConfigPlugin", "ConfigProblem", "DirectoryConfig"]

log = logging.getLogger("osqsdk.config")

GenConfigFunc = Callable[[], Mapping[str, "str | Mapping[str, Any]"]]
GenPackFunc = Callable[[str, str], "str | Mapping[str, Any] | None"]


def _as_text(value: str | Mapping[str, Any]) -> str:
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
