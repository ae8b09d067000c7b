"""Lint settings: command-line options layered over ``[tool.osqsdk.lint]`` in pyproject.toml.

Keys (kebab-case in TOML; the CLI flag of the same name wins)::

    [tool.osqsdk.lint]
    select = ["DEFAULT"]             # codes, code prefixes ("OSQ1"), rule names, DEFAULT, ALL
    extend-select = []
    ignore = ["OSQ111"]
    platform = "linux"               # lint as if every query targeted these platforms
    osquery-version = "5.12.1"       # oldest osquery the packs must run on
    schema = ["schemas/acme.json"]   # extension tables (osqsdk or --spec JSON)
    fleetd = false                   # always allow Fleet's fleetd tables
    hosts = 5000                     # add the fleet view (log volume, request rate)
    fail-on = "warning"              # lowest severity that makes the exit code 1
    exclude = ["vendor/**"]
    rule-docs-url = "https://docs.example.org/osqsdk/rules.html#{anchor}"  # SARIF helpUri
    baseline = "lint-baseline.json"  # hide the findings it records (--write-baseline)
    [tool.osqsdk.lint.per-file-ignores]
    "packs/legacy/*.conf" = ["OSQ104"]
    [tool.osqsdk.lint.budget]
    run-ms = 4000                    # estimated CPU ms per execution
    query-ms-per-day = 3600000       # per query, per day
    pack-ms-per-day = 21600000       # per pack (or config schedule), per day
"""

from __future__ import annotations

import fnmatch
import functools
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from osqsdk.errors import OsqsdkError
from osqsdk.lint._finding import SEVERITIES

__all__ = ["Settings", "SettingsError", "find_pyproject", "load_settings"]


class SettingsError(OsqsdkError, ValueError):
    """The linter's configuration cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Everything that changes what the linter reports."""

    select: tuple[str, ...] = ("DEFAULT",)
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    platform: frozenset[str] | None = None
    osquery_version: str | None = None
    schema_files: tuple[str, ...] = ()
    fleetd: bool = False
    hosts: int | None = None
    fail_on: str = "warning"
    exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    run_ms: float = 4000.0
    query_ms_per_day: float = 3_600_000.0
    pack_ms_per_day: float = 21_600_000.0
    base_dir: str = "."
    rule_docs_url: str | None = None
    baseline: str | None = None

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def ignored_for(self, path: str) -> tuple[str, ...]:
        """Codes ignored for ``path`` by ``per-file-ignores``."""
        if not self.per_file_ignores:
            return ()
        return _ignored_for(self, path)

    def excluded(self, path: str) -> bool:
        if not self.exclude:
            return False
        rel = _relative(path, self.base_dir)
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(path, p) for p in self.exclude)


@functools.lru_cache(maxsize=4096)
def _ignored_for(settings: Settings, path: str) -> tuple[str, ...]:
    out: list[str] = []
    rel = _relative(path, settings.base_dir)
    for pattern, codes in settings.per_file_ignores:
        if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(path, pattern) or \
                fnmatch.fnmatch(os.path.basename(path), pattern):
            out.extend(codes)
    return tuple(out)


def _relative(path: str, base: str) -> str:
    try:
        return os.path.relpath(path, base).replace(os.sep, "/")
    except ValueError:
        return path


def find_pyproject(start: str | os.PathLike[str]) -> Path | None:
    """The project's ``pyproject.toml`` when it has ``[tool.osqsdk.lint]``, else None.

    The search goes up from ``start`` and stops at the project root, as ruff's does: the
    first directory with a ``pyproject.toml`` (used only if it configures osqsdk) or with a
    version-control directory. A file above the project cannot change what is linted.
    """
    here = Path(start).resolve()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
            return candidate if "osqsdk" in text else None
        if any((directory / vcs).exists() for vcs in (".git", ".hg", ".svn")):
            return None
    return None


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as exc:
            raise SettingsError(f"{path}: reading it needs Python 3.11+ or tomli") from exc
    try:
        with open(path, "rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def _strings(value: Any, key: str, where: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SettingsError(f"{where}: [tool.osqsdk.lint] {key} must be a string or a list of them")


def parse_platforms(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    return frozenset(str(v).strip().lower() for v in items if str(v).strip())


def _validate_template(template: str) -> str | None:
    """Why ``template`` cannot be a ``rule-docs-url`` (None when it can)."""
    if not template.startswith(("https://", "http://", "file:")):
        return "rule-docs-url must be an absolute http(s) or file URL"
    try:
        template.format(code="OSQ104", name="unknown-column", anchor="osq104")
    except (KeyError, IndexError, ValueError) as exc:
        return (f"rule-docs-url may use only {{code}}, {{name}} and {{anchor}} "
                f"(problem: {exc!s})")
    return None


def load_settings(pyproject: Path | None) -> Settings:
    """Settings from ``pyproject`` (defaults when None or when it has no linter section)."""
    if pyproject is None:
        return Settings()
    data: Any = _toml(pyproject)
    for key in ("tool", "osqsdk", "lint"):
        data = data.get(key, {}) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise SettingsError(f"{pyproject}: [tool.osqsdk.lint] must be a table")
    known = {"select", "extend-select", "ignore", "platform", "osquery-version", "schema",
             "fleetd", "hosts", "fail-on", "exclude", "per-file-ignores", "budget",
             "rule-docs-url", "baseline"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"{pyproject}: unknown [tool.osqsdk.lint] keys: {', '.join(unknown)}")
    base = str(pyproject.parent)
    kw: dict[str, Any] = {"base_dir": base}
    for key, attr in (("select", "select"), ("extend-select", "extend_select"),
                      ("ignore", "ignore"), ("exclude", "exclude")):
        if key in data:
            kw[attr] = _strings(data[key], key, pyproject)
    if "schema" in data:
        kw["schema_files"] = tuple(str(Path(base, p)) for p in _strings(data["schema"], "schema",
                                                                        pyproject))
    if "platform" in data:
        kw["platform"] = parse_platforms(data["platform"])
    if "osquery-version" in data:
        kw["osquery_version"] = str(data["osquery-version"])
    if "fleetd" in data:
        kw["fleetd"] = bool(data["fleetd"])
    if "hosts" in data:
        if not isinstance(data["hosts"], int) or data["hosts"] < 1:
            raise SettingsError(f"{pyproject}: hosts must be a positive integer")
        kw["hosts"] = data["hosts"]
    if "baseline" in data:
        if not isinstance(data["baseline"], str) or not data["baseline"]:
            raise SettingsError(f"{pyproject}: baseline must be a file name")
        kw["baseline"] = str(Path(base, data["baseline"]))
    if "rule-docs-url" in data:
        url = data["rule-docs-url"]
        problem = _validate_template(url) if isinstance(url, str) else "must be a string"
        if problem:
            raise SettingsError(f"{pyproject}: {problem}")
        kw["rule_docs_url"] = url
    if "fail-on" in data:
        if data["fail-on"] not in SEVERITIES:
            raise SettingsError(f"{pyproject}: fail-on must be error, warning or info")
        kw["fail_on"] = data["fail-on"]
    pfi = data.get("per-file-ignores", {})
    if not isinstance(pfi, dict):
        raise SettingsError(f"{pyproject}: per-file-ignores must be a table")
    kw["per_file_ignores"] = tuple((k, _strings(v, f"per-file-ignores.{k}", pyproject))
                                   for k, v in pfi.items())
    budget = data.get("budget", {})
    if not isinstance(budget, dict):
        raise SettingsError(f"{pyproject}: budget must be a table")
    for key, attr in (("run-ms", "run_ms"), ("query-ms-per-day", "query_ms_per_day"),
                      ("pack-ms-per-day", "pack_ms_per_day")):
        if key in budget:
            if not isinstance(budget[key], (int, float)) or budget[key] <= 0:
                raise SettingsError(f"{pyproject}: budget.{key} must be a positive number")
            kw[attr] = float(budget[key])
    return Settings(**kw)

