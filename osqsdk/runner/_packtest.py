"""Pack tests: fixtures per tick plus the result lines a pack must log.

A test file (``*.test.yaml``, ``*.test.yml`` or ``*.test.json``)::

    pack: ../incident-response.conf     # or  config: ../osquery.conf
    fixtures: fixtures/incident-response
    ticks: 4
    host_identifier: web-1              # optional, also: platform, tick_seconds,
    format: event                       # event | batch, numerics, decorators (for a pack)
    queries: [pack_incident-response_ssh_logins]   # optional: only check these
    expect:
      - tick: 3
        name: pack_incident-response_ssh_logins
        action: added
        columns: {username: alice, host: 10.0.0.9}

Every line the checked queries log must match the next expectation, in order: ``tick``,
``name`` and every other key given (``action``, ``columns``, ``counter``, ``decorations``,
``diffResults``, ``snapshot``...) must be equal; keys not given are not compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osqsdk._osquery.config import ConfigProblem, parse_osquery_json
from osqsdk.errors import OsqsdkError
from osqsdk.runner._engine import Engine
from osqsdk.runner._fixtures import FixtureError, Fixtures
from osqsdk.runner._scheduler import Scheduler, SchedulerStopped, load_config

__all__ = ["PackTestError", "PackTestResult", "find_pack_tests", "run_pack_test"]

_SUFFIXES = (".test.yaml", ".test.yml", ".test.json")
_KNOWN = {"pack", "config", "fixtures", "ticks", "tick_seconds", "host_identifier", "platform",
          "format", "numerics", "decorators", "queries", "expect", "start_time",
          "strict_fixtures", "extensions"}


class PackTestError(OsqsdkError, ValueError):
    """A pack test file that cannot be run; the message names the file and the cause."""


@dataclass
class PackTestResult:
    path: Path
    failures: list[str] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def find_pack_tests(paths: list[str | Path]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(_SUFFIXES)))
        elif path.exists():
            found.append(path)
        else:
            raise PackTestError(f"{path}: no such file or directory")
    return found


def _load_spec(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PackTestError(f"{path}: cannot be read: {exc}") from None
    if path.name.endswith(".json"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PackTestError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    else:
        import yaml

        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            raise PackTestError(
                f"{path}{where}: not YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(spec, dict):
        raise PackTestError(f"{path}: a pack test is a mapping")
    unknown = set(spec) - _KNOWN
    if unknown:
        raise PackTestError(f"{path}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    if ("pack" in spec) == ("config" in spec):
        raise PackTestError(f"{path}: give exactly one of 'pack' or 'config'")
    if not isinstance(spec.get("expect", []), list):
        raise PackTestError(f"{path}: 'expect' must be a list of expected lines")
    return spec


def run_pack_test(path: str | Path, *, schema: Any = None) -> PackTestResult:
    """Run one pack test file; raises PackTestError if it cannot run at all."""
    path = Path(path)
    spec = _load_spec(path)
    base = path.parent
    engine = Engine(schema=schema, platform=str(spec.get("platform", "linux")),
                    strict_fixtures=bool(spec.get("strict_fixtures", False)))
    try:
        if "fixtures" in spec:
            engine.fixtures = Fixtures.load(base / str(spec["fixtures"]), engine.schema)
        for extension in spec.get("extensions", []) or []:
            engine.add_file(base / str(extension))
        if "config" in spec:
            config, packs = load_config(base / str(spec["config"]))
        else:
            pack_path = base / str(spec["pack"])
            try:
                pack = parse_osquery_json(pack_path.read_text(encoding="utf-8"), str(pack_path))
            except OSError as exc:
                raise PackTestError(
                    f"{path}: pack {pack_path} cannot be read: {exc.strerror}") from None
            name = pack_path.name.split(".")[0]
            config = {"packs": {name: pack}, "decorators": spec.get("decorators") or {}}
            packs = {name: pack}
    except (FixtureError, ConfigProblem) as exc:
        raise PackTestError(f"{path}: {exc}") from None
    scheduler = Scheduler(
        engine, config, packs, host_identifier=str(spec.get("host_identifier", "localhost")),
        tick_seconds=spec.get("tick_seconds"), start_time=spec.get("start_time"),
        event_format=spec.get("format", "event") == "event",
        numerics=bool(spec.get("numerics", False)))
    result = PackTestResult(path)
    try:
        scheduler.run(int(spec.get("ticks", 1)))
    except SchedulerStopped as exc:
        result.failures.append(f"the scheduler stopped: {exc.message}")
    for error in scheduler.errors:
        result.failures.append(error)
    checked = set(spec.get("queries") or [])
    lines = [{"tick": line.tick, **json.loads(line.line)} for line in scheduler.lines
             if not checked or line.name in checked]
    result.lines = lines
    expected = spec.get("expect") or []
    for index, (want, got) in enumerate(zip(expected, lines)):
        if not isinstance(want, dict):
            result.failures.append(f"expectation {index + 1} is not a mapping")
            continue
        wrong = {k: (v, got.get(k, "<missing>")) for k, v in want.items()
                 if _normal(got.get(k)) != _normal(v)}
        if wrong:
            detail = "; ".join(f"{k}: want {json.dumps(w)}, got {json.dumps(g)}"
                               for k, (w, g) in wrong.items())
            result.failures.append(f"line {index + 1} (tick {got['tick']}, {got.get('name')}): "
                                   f"{detail}")
    for got in lines[len(expected):]:
        result.failures.append(f"unexpected line at tick {got['tick']}: "
                               f"{json.dumps({k: v for k, v in got.items() if k != 'tick'})}")
    for want in expected[len(lines):]:
        result.failures.append(f"missing line: {json.dumps(want)}")
    engine.close()
    return result


def _normal(value: Any) -> Any:
    # YAML reads 10.0.0.9 as text but 7 as a number; osqueryd logs text. Compare as text.
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value
