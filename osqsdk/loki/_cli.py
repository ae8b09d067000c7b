"""``osqsdk loki``: ship osquery logs to Grafana Loki from the command line."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from osqsdk.loki._errors import LokiConfigError, SpoolError

__all__ = ["loki"]


def _default_spool(path: str) -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    digest = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
    return os.path.join(state, "osqsdk", "loki-tail", f"{os.path.basename(path)}-{digest}")


def _settings(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not SETTING=VALUE", param_hint="--set")
        out[key.strip().replace("-", "_")] = value
    return out


@click.group()
def loki() -> None:
    """Ship osquery logs to Grafana Loki.

    Settings come from --set, the environment (OSQSDK_LOKI_<SETTING>) and a TOML file
    (--config or OSQSDK_LOKI_CONFIG), in that order of priority. Exit codes: 0 done,
    1 not everything was delivered, 2 usage or configuration error.
    """


@loki.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--url", help="Loki's URL, e.g. http://loki:3100 (push path added if missing).")
@click.option("--spool", "spool_dir", type=click.Path(file_okay=False),
              help="Spool directory (lines, read position). Default: under "
                   "$XDG_STATE_HOME/osqsdk/loki-tail/.")
@click.option("--once", is_flag=True,
              help="Exit once everything up to the end of the file is acknowledged.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML settings file.")
@click.option("--tenant", help="Loki tenant (X-Scope-OrgID).")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics on this port.")
@click.option("--poll-interval", type=float, default=0.25, show_default=True,
              help="Seconds between checks for new lines.")
@click.option("--host", help="host label for glog status lines (default: this host's name).")
@click.option("--set", "extra", multiple=True, metavar="SETTING=VALUE",
              help="Any other setting, e.g. --set batch_wait=2s (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def tail(path: str, url: str | None, spool_dir: str | None, once: bool,
         config_file: str | None, tenant: str | None, metrics_port: int | None,
         poll_interval: float, host: str | None, extra: tuple[str, ...], verbose: bool) -> None:
    """Ship the osqueryd results, snapshots or status log PATH, as promtail would.

    The read position is kept in the spool with the lines, so a restart neither skips nor
    repeats lines; rotated files are read to their end first.
    """
    from osqsdk.loki._client import LokiClient
    from osqsdk.loki._config import load_config
    from osqsdk.loki._labels import Mapper
    from osqsdk.loki._tail import Tailer

    _configure_logging(verbose)
    overrides: dict[str, Any] = _settings(extra)
    overrides.update(url=url, tenant=tenant, metrics_port=metrics_port)
    env_spool = os.environ.get("OSQSDK_LOKI_SPOOL_DIR")
    overrides["spool_dir"] = spool_dir or (None if env_spool else _default_spool(path))
    try:
        config = load_config(config_file, **overrides)
    except LokiConfigError as exc:
        raise click.UsageError(f"configuration: {exc}") from None
    if not os.path.exists(path) and once:
        raise click.UsageError(f"{path}: no such file")
    try:
        client = LokiClient(config)
    except SpoolError as exc:
        raise click.ClickException(str(exc)) from None
    except LokiConfigError as exc:  # a setting that cannot be used here, e.g. a busy port
        raise click.UsageError(f"configuration: {exc}") from None
    tailer = Tailer(path, client, Mapper(config), poll_interval=poll_interval, host=host)

    def stop(signum: int, frame: object) -> None:
        # set from another thread: the main thread may hold the Event's lock right here
        threading.Thread(target=tailer.stop_event.set, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        done = tailer.run(once=once)
    finally:
        drained = client.close()
    left = client.spool.entries
    from osqsdk.loki._metrics import DropReason

    dropped = sum(client.metrics.value("osqsdk_loki_dropped_entries_total", reason=r.value)
                  for r in DropReason)
    click.echo(f"{path}: {tailer.lines_read} lines read, {left} not yet acknowledged"
               + (f", {dropped:.0f} dropped (see the log)" if dropped else "")
               + (f", {tailer.problems} not in osquery's format" if tailer.problems else ""),
               err=True)
    # --once promises 1 when not everything was delivered: a dropped line was not
    if once and not (done and drained and left == 0 and not dropped):
        raise click.exceptions.Exit(1)


@loki.command()
@click.option("--host", "address", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=3100, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--quiet", is_flag=True, help="Do not print the entries as they are stored.")
@click.option("--no-rate-limit", is_flag=True,
              help="Switch off Loki's tenant and per-stream rate limits.")
@click.option("--no-store", is_flag=True, help="Keep counts only (for load tests).")
def receiver(address: str, port: int, quiet: bool, no_rate_limit: bool, no_store: bool) -> int:
    """A Loki stand-in for trying the logger by hand: it takes pushes as Loki's
    distributor does (its validation rules, limits and answers) and keeps them in memory.

    Prints its base URL (the push path is /loki/api/v1/push), then each stored entry as
    `LABELS LINE`; GET /double/streams returns everything stored as JSON and /double/stats
    the counts. Ctrl-C (or SIGTERM)
    prints the counts and exits 0.
    """
    import json
    import time

    from osqsdk.loki._receiver import LokiReceiver

    limits: dict[str, Any] = {}
    if no_rate_limit:
        limits.update(ingestion_rate_mb=None, ingestion_burst_size_mb=None,
                      per_stream_rate_limit=None, per_stream_rate_limit_burst=None)
    try:
        double = LokiReceiver(host=address, port=port, store=not no_store, **limits).start()
    except OSError as exc:
        click.echo(f"osqsdk: cannot listen on {address}:{port}: {exc.strerror}", err=True)
        return 2
    click.echo(double.url)
    stopped = [False]  # a plain flag, not an Event (see osqsdk run --pace)

    def stop(*_: object) -> None:
        stopped[0] = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    shown: dict[str, int] = {}
    try:
        while not stopped[0]:
            time.sleep(0.2)
            if quiet:
                continue
            for labels, entries in double.streams().items():
                for _ts, line, _meta in entries[shown.get(labels, 0):]:
                    click.echo(f"{labels} {line}")
                shown[labels] = len(entries)
            sys.stdout.flush()
    finally:
        double.stop()
    click.echo(json.dumps(double.stats()), err=True)
    return 0


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger("osqsdk")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s osqsdk loki %(levelname)s "
                                               "%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
