"""``osqsdk query``, ``osqsdk run`` and ``osqsdk test``: osquery SQL without osqueryd."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from osqsdk.runner import Engine

__all__ = ["query", "run", "test"]


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"osqsdk: {message}", err=True)
    raise click.exceptions.Exit(code)


def _engine(fixtures: str | None, extensions: tuple[str, ...], platform: str, strict: bool,
            schemas: tuple[str, ...] = (), limits: dict[str, Any] | None = None) -> Engine:
    from osqsdk.errors import PluginDefinitionError, SchemaError
    from osqsdk.runner import Engine, FixtureError, Fixtures
    from osqsdk.schema import default_schema, load_schema

    try:
        schema = default_schema()
        if schemas:
            schema = schema.merged(load_schema(*schemas))
        engine = Engine(schema=schema, platform=platform, strict_fixtures=strict,
                        **(limits or {}))
        if fixtures:
            engine.fixtures = Fixtures.load(fixtures, engine.schema)
        for path in extensions:
            engine.add_file(path)
    except (FixtureError, SchemaError, PluginDefinitionError) as exc:
        _fail(str(exc))
    except Exception as exc:  # an extension file's own code failed while loading
        _fail(f"loading extensions failed: {type(exc).__name__}: {exc}")
    return engine


def _table(columns: list[str], rows: list[dict[str, str]]) -> str:
    widths = [max([len(c)] + [len(r.get(c, "")) for r in rows]) for c in columns]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |", rule]
    out += ["| " + " | ".join(r.get(c, "").ljust(w) for c, w in zip(columns, widths)) + " |"
            for r in rows]
    if rows:
        out.append(rule)
    return "\n".join(out)


@click.command()
@click.argument("sql")
@click.option("--extension", "extensions", multiple=True, type=click.Path(dir_okay=False),
              help="A Python file of osqsdk or osquery-python plugins (repeatable).")
@click.option("--fixtures", type=click.Path(file_okay=False),
              help="Directory of fixture files for core tables.")
@click.option("--tick", type=int, default=1, show_default=True, help="Fixture tick to use.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--platform", default="linux", show_default=True)
@click.option("--strict-fixtures", is_flag=True, help="A core table without a fixture is an error.")
@click.option("--schema", "schemas", multiple=True, type=click.Path(dir_okay=False),
              help="Extra table schema (e.g. an extension's --spec output).")
@click.option("--timeout", "timeout", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Stop a query that runs longer (seconds).")
@click.option("--max-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Stop a query that returns more rows.")
def query(sql: str, extensions: tuple[str, ...], fixtures: str | None, tick: int, fmt: str,
          platform: str, strict_fixtures: bool, schemas: tuple[str, ...], timeout: float,
          max_rows: int) -> int:
    """Run SQL against osquery's tables (from fixtures) and extension tables.

    Values are printed as osqueryd returns them (strings, NULL as empty). Exit code 1 when
    the query fails (SQLite's message is printed), 2 on bad options or files.
    """
    from osqsdk.errors import QueryError

    engine = _engine(fixtures, extensions, platform, strict_fixtures, schemas,
                     {"timeout": timeout, "max_rows": max_rows})
    engine.tick = tick
    try:
        result = engine.query(sql)
    except QueryError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        click.echo(f"Query: {sql}", err=True)
        return 1
    rows = result.strings()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=result.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    elif result.columns:
        click.echo(_table(result.columns, rows))
    return 0


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--fixtures", type=click.Path(file_okay=False), help="Fixture directory.")
@click.option("--ticks", type=int, default=1, show_default=True, help="Scheduler ticks to run.")
@click.option("--tick-seconds", type=int, default=None,
              help="Simulated seconds per tick (default: gcd of the intervals).")
@click.option("--extension", "extensions", multiple=True, type=click.Path(dir_okay=False),
              help="Load a Python file of plugins into this process (repeatable).")
@click.option("--launch", "launches", multiple=True, type=click.Path(dir_okay=False),
              help="Start an extension as its own process, as osqueryd does (repeatable).")
@click.option("--extensions-socket", default=None,
              help="Socket launched extensions register on (default: a temporary one).")
@click.option("--logger-plugin", "logger_plugins", default="",
              help="Comma-separated logger plugins to deliver the lines to.")
@click.option("--format", "fmt", type=click.Choice(["event", "batch"]), default="event",
              show_default=True, help="osqueryd's --logger_event_type true (event) or false.")
@click.option("--numerics", is_flag=True, help="osqueryd's --logger_numerics.")
@click.option("--host-identifier", default="localhost", show_default=True)
@click.option("--platform", default="linux", show_default=True)
@click.option("--start-time", type=int, default=None,
              help="Simulated unix time to start at (default: now).")
@click.option("--quiet", is_flag=True, help="Do not print the lines.")
@click.option("--pace", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="Play one tick every SECONDS real seconds, then keep the launched "
                   "extensions serving until interrupted (Ctrl-C or SIGTERM), so that the "
                   "pipeline can be watched and /metrics scraped.")
@click.option("--timeout", "timeout", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Stop a query that runs longer (seconds).")
@click.option("--max-rows", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Stop a query that returns more rows.")
def run(config: str, fixtures: str | None, ticks: int, tick_seconds: int | None,
        extensions: tuple[str, ...], launches: tuple[str, ...], extensions_socket: str | None,
        logger_plugins: str, fmt: str, numerics: bool, host_identifier: str, platform: str,
        start_time: int | None, quiet: bool, pace: float | None, timeout: float,
        max_rows: int) -> int:
    """Run CONFIG's schedule and packs over simulated ticks, printing osqueryd's result
    lines (one JSON line per ``string``/``snapshot`` request) and forwarding them to the
    chosen logger plugins. Exit code 1 if a query fails or a logger fails a line."""
    from osqsdk._osquery.config import ConfigProblem
    from osqsdk.errors import PluginDefinitionError
    from osqsdk.runner._scheduler import Scheduler, SchedulerStopped, load_config

    engine = _engine(fixtures, extensions, platform, False,
                     limits={"timeout": timeout, "max_rows": max_rows})
    try:
        config_data, packs = load_config(config)
    except ConfigProblem as exc:
        _fail(str(exc))
    manager = None
    procs: list[Any] = []
    try:
        if launches:
            from osqsdk.extension._launch import launch_extension

            manager = engine.serve(extensions_socket, health_interval=1.0)
            for path in launches:
                try:
                    procs.append(launch_extension(path, manager.socket_path, autoload=False,
                                                  interval=1))
                except PluginDefinitionError as exc:
                    _fail(f"{path}: {exc}")
                name = _extension_name(path)
                try:
                    manager.wait_for(name, timeout=30)
                except TimeoutError:
                    _fail(f"{path}: the extension {name!r} did not register within 30 s")
        loggers = []
        for name in filter(None, (n.strip() for n in logger_plugins.split(","))):
            logger = engine.logger(name)
            if logger is None:
                _fail(f"no logger plugin named {name!r} (load or launch its extension)")
            loggers.append(logger)
        if start_time is None:
            start_time = int(time.time())
        scheduler = Scheduler(engine, config_data, packs, loggers=loggers,
                              host_identifier=host_identifier, tick_seconds=tick_seconds,
                              start_time=start_time, event_format=fmt == "event",
                              numerics=numerics)
        code = 0
        pacer = _Pace(pace) if pace is not None else None
        try:
            for n in range(ticks):
                if pacer is not None and not pacer.wait_for_tick(n):
                    break
                for line in scheduler.step():
                    if not quiet:
                        click.echo(line.line)
                sys.stdout.flush()
            if pacer is not None:
                click.echo(f"osqsdk: {scheduler.tick} ticks run; serving until interrupted",
                           err=True)
                pacer.wait_for_tick(None)
        except SchedulerStopped as exc:
            click.echo(f"osqsdk: {exc.message} (osqueryd would exit {exc.code})", err=True)
            code = 1
        for error in scheduler.errors:
            click.echo(f"osqsdk: {error}", err=True)
            code = 1
        return code
    finally:
        if manager is not None:
            manager.stop()
        for proc in procs:
            try:
                proc.wait(10)
            except Exception:
                proc.kill()


class _Pace:
    """Pacing for ``run --pace``: ticks at fixed real offsets; SIGINT and SIGTERM end the
    wait (and the run) instead of killing the process mid-tick."""

    def __init__(self, tick_seconds: float) -> None:
        import signal

        self.tick_seconds = tick_seconds
        self.begin = time.monotonic()
        self.stopped = False
        # A plain flag: Event.set() in a signal handler can deadlock on the Event's own
        # lock when the signal lands while the main thread holds it in wait().
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop)

    def _stop(self, *_: object) -> None:
        self.stopped = True

    def wait_for_tick(self, n: int | None) -> bool:
        """Wait until tick ``n`` is due (None: until stopped); False once stopped."""
        due = float("inf") if n is None else self.begin + n * self.tick_seconds
        while not self.stopped:
            remaining = due - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(remaining, 0.2))  # a signal ends the sleep at once
        return False


def _extension_name(path: str) -> str:
    # The name an extension registers with is chosen by its own code (osqsdk.run(NAME, ...)
    # or osquery-python's start_extension(name=NAME)): read it from the file.
    from osqsdk.extension._loader import declared_identity

    name, _ = declared_identity(path)
    return name or Path(path).stem.removesuffix(".ext")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--verbose", "-v", is_flag=True, help="Print every line the packs logged.")
def test(paths: tuple[str, ...], verbose: bool) -> int:
    """Run pack tests (*.test.yaml files, or directories of them).

    Exit code 0 when every test passes, 1 when one fails, 2 when one cannot run.
    """
    from osqsdk.runner._packtest import PackTestError, find_pack_tests, run_pack_test

    try:
        specs = find_pack_tests(list(paths))
    except PackTestError as exc:
        _fail(str(exc))
    if not specs:
        _fail("no pack tests found (files named *.test.yaml, *.test.yml or *.test.json)")
    failed = 0
    for spec in specs:
        try:
            result = run_pack_test(spec)
        except PackTestError as exc:
            _fail(str(exc))
        status = "ok" if result.ok else "FAILED"
        click.echo(f"{spec}: {status} ({len(result.lines)} lines)")
        for failure in result.failures:
            click.echo(f"  {failure}")
        if verbose:
            for line in result.lines:
                click.echo(f"    {json.dumps(line, ensure_ascii=False)}")
        failed += not result.ok
    click.echo(f"{len(specs) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(query())
