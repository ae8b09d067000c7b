"""``osqsdk extension``: serve or describe the plugins of a Python file."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from osqsdk.errors import PluginDefinitionError
from osqsdk.extension._flags import DEFAULT_SOCKET

if TYPE_CHECKING:
    from osqsdk.extension._loader import LoadedFile

__all__ = ["extension"]


@click.group()
def extension() -> None:
    """Serve, describe, build and install extensions."""


@extension.command(context_settings={"ignore_unknown_options": True,
                                     "allow_extra_args": True})
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--socket", "socket_path", default=DEFAULT_SOCKET, show_default=True,
              help="osqueryd's extensions socket.")
@click.option("--timeout", type=float, default=3.0, show_default=True,
              help="Seconds to wait for the socket.")
@click.option("--interval", type=float, default=3.0, show_default=True,
              help="Seconds between checks that osqueryd is alive.")
@click.option("--verbose", is_flag=True, help="Log debug messages.")
@click.option("--name", default=None,
              help="Extension name (default: EXTENSION_NAME or the file name).")
def run(file: str, socket_path: str, timeout: float, interval: float, verbose: bool,
        name: str | None) -> int:
    """Serve every plugin FILE defines (osqsdk or osquery-python plugins).

    Exit codes: 0 stopped, 1 dropped by osqueryd, 64 bad file or flags, 69 osqueryd not
    reachable, 78 registration refused.
    """
    from osqsdk.extension._flags import MIN_INTERVAL, ExtensionFlags
    from osqsdk.extension._server import ExitCode, serve

    loaded = _load(file)
    if loaded is None:
        return ExitCode.USAGE
    flags = ExtensionFlags(socket=socket_path, timeout=timeout,
                           interval=max(interval, MIN_INTERVAL), verbose=verbose)
    code = serve(name or loaded.name, loaded.plugins, flags, version=loaded.version)
    raise click.exceptions.Exit(code)


@extension.command()
@click.argument("file", type=click.Path(dir_okay=False))
def spec(file: str) -> int:
    """Print the schema JSON (osquery's published format) of the tables FILE defines."""
    loaded = _load(file)
    if loaded is None:
        raise click.exceptions.Exit(64)
    tables = [p.spec() for p in loaded.plugins if p.registry == "table" and hasattr(p, "spec")]
    click.echo(json.dumps(tables, indent=2))
    return 0


@extension.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--autoload", "autoload_file", type=click.Path(dir_okay=False),
              help="Check every entry of this --extensions_autoload file.")
@click.option("--uid", type=int, default=None, help="The user osqueryd runs as (default: you).")
def check(paths: tuple[str, ...], autoload_file: str | None, uid: int | None) -> int:
    """Say whether osqueryd would launch each extension PATH (or autoload entry).

    Applies osqueryd's rules: not in a sticky directory, owned by root or osqueryd's user,
    executable, not world-writable, named *.ext when autoloaded, and (for scripts) a #! line.
    Exit code 1 if any would be refused.
    """
    from pathlib import Path

    from osqsdk.extension._autoload import autoload_entries, launch_problems

    targets = [(Path(p), True) for p in paths]
    if autoload_file:
        try:
            text = Path(autoload_file).read_text()
        except OSError as exc:
            click.echo(f"osqsdk: {autoload_file}: {exc.strerror}", err=True)
            raise click.exceptions.Exit(2) from None
        targets += [(p, True) for p in autoload_entries(text, Path(autoload_file).parent)]
    if not targets:
        click.echo("osqsdk: name extension paths or --autoload FILE", err=True)
        raise click.exceptions.Exit(2)
    refused = 0
    for path, autoload in targets:
        problems = launch_problems(path, osqueryd_uid=uid, autoload=autoload)
        if problems:
            refused += 1
            for problem in problems:
                click.echo(problem)
        else:
            click.echo(f"{path}: ok")
    return 1 if refused else 0


@extension.command()
@click.argument("source", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="The file to write (default: NAME.ext in the current directory).")
@click.option("--name", help="The name recorded for `install` (default: the name the "
                             "extension registers with).")
@click.option("--runtime-tmpdir", help="Where the .ext unpacks itself at each start (default: "
                                       "$TMPDIR or /tmp; set it for hosts whose /tmp is noexec).")
@click.option("--list", "list_builtin", is_flag=True,
              help="List the ready-made extensions SOURCE may name.")
def build(source: str | None, output: str | None, name: str | None,
          runtime_tmpdir: str | None, list_builtin: bool) -> int:
    """Build SOURCE (a Python file, or a ready-made extension such as `loki`) into one
    executable .ext file that needs no Python on the host.

    Exit codes: 0 built, 1 the build failed, 2 bad arguments.
    """
    from osqsdk.extension._build import BuildError, resolve_source
    from osqsdk.extension._build import build as build_ext
    from osqsdk.extension._builtin import BUILTIN

    if list_builtin:
        for b in BUILTIN:
            click.echo(f"{b.key:<20} {b.summary}")
        return 0
    if not source:
        click.echo("osqsdk: name a Python file or a ready-made extension "
                   "(see --list)", err=True)
        raise click.exceptions.Exit(2)
    try:
        path, _ = resolve_source(source)
    except BuildError as exc:
        click.echo(f"osqsdk: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    target = output or f"{path.stem}.ext"
    click.echo(f"building {target} from {path} (PyInstaller, one file)...", err=True)
    try:
        built = build_ext(source, target, name=name, runtime_tmpdir=runtime_tmpdir)
    except BuildError as exc:
        click.echo(f"osqsdk: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(f"{built.path}: {built.size / 1e6:.1f} MB, registers as "
               f"{built.info['name']!r}; next: osqsdk extension install {built.path}")
    if not built.path.name.endswith(".ext"):
        click.echo("note: osqueryd autoloads only files named *.ext; install it with "
                   "--no-autoload or rename it", err=True)
    return 0


@extension.command()
@click.argument("artifact", type=click.Path(dir_okay=False))
@click.option("--dir", "directory", default=None,
              help="Where to put it (default: /usr/local/lib/osquery/extensions).")
@click.option("--autoload", "autoload_file", default=None,
              help="The --extensions_autoload file to list it in "
                   "(default: /etc/osquery/extensions.load).")
@click.option("--no-autoload", is_flag=True, help="Do not touch any autoload file.")
@click.option("--uid", type=int, default=None,
              help="Owner: the user osqueryd runs as (default: root when run as root).")
@click.option("--gid", type=int, default=None, help="Group (default: root when run as root).")
def install(artifact: str, directory: str | None, autoload_file: str | None,
            no_autoload: bool, uid: int | None, gid: int | None) -> int:
    """Put ARTIFACT (NAME.ext) where osqueryd autoloads it: owner root (or --uid), mode 0755,
    listed once in the autoload file; print the osqueryd flags to add.

    Exit codes: 0 installed (or already installed), 1 osqueryd would refuse it or it
    cannot be written (nothing changed), 2 bad arguments.
    """
    from osqsdk.extension._build import DEFAULT_AUTOLOAD, DEFAULT_DIR, InstallError
    from osqsdk.extension._build import install as install_ext

    try:
        done = install_ext(artifact, directory=directory or DEFAULT_DIR,
                           autoload=None if no_autoload else autoload_file or DEFAULT_AUTOLOAD,
                           uid=uid, gid=gid)
    except InstallError as exc:
        click.echo(f"osqsdk: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(done.report(), nl=False)
    return 0


def _load(file: str) -> LoadedFile | None:
    from osqsdk.extension._loader import load_file

    try:
        return load_file(file)
    except PluginDefinitionError as exc:
        click.echo(f"osqsdk: {exc}", err=True)
        return None
    except Exception as exc:  # the file's own code failed while loading
        import traceback

        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f"{f.filename}:{f.lineno}" for f in reversed(frames)
                      if f.filename.endswith(file.rsplit("/", 1)[-1])), file)
        click.echo(f"osqsdk: {where}: loading the extension failed: {type(exc).__name__}: {exc}",
                   err=True)
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(extension())
