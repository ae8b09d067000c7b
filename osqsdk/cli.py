"""The ``osqsdk`` command line.

Each product registers its commands here by dotted path only, so ``osqsdk lint`` never
imports Thrift and ``osqsdk extension run`` never imports sqlglot: a command's module is
imported when that command runs, not when the group is built.

Exit codes: 0 success, 1 findings or a failed check, 2 usage or I/O error.
"""

from __future__ import annotations

import codecs
import importlib
import importlib.util
import io
import sys
from collections.abc import Sequence

import click

from osqsdk._version import __version__

__all__ = ["main"]

# name -> (module:attribute, one-line help shown by `osqsdk --help`)
_COMMANDS: dict[str, tuple[str, str]] = {
    "extension": ("osqsdk.extension._cli:extension", "Serve or describe extension plugins."),
    "lint": ("osqsdk.lint._cli:lint", "Lint osquery packs, configs and queries."),
    "rule": ("osqsdk.lint._cli:rule", "Print the documentation of a lint rule."),
    "rules": ("osqsdk.lint._cli:rules", "List the lint rules."),
    "pack": ("osqsdk.lint._cli:pack", "Build, unpack and change packs (.sql directories)."),
    "lsp": ("osqsdk.lint._cli:lsp", "Run the linter as a language server (stdio)."),
    "schema": ("osqsdk.schema._cli:schema", "Import and inspect osquery table schemas."),
    "loki": ("osqsdk.loki._cli:loki", "Ship osquery logs to Grafana Loki."),
    "query": ("osqsdk.runner._cli:query", "Run SQL against Python tables and fixtures."),
    "run": ("osqsdk.runner._cli:run", "Run a config's schedule over simulated ticks."),
    "test": ("osqsdk.runner._cli:test", "Run pack tests (fixtures and expected results)."),
}


def _available(name: str) -> bool:
    module = _COMMANDS[name][0].partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS or not _available(cmd_name):
            return None
        module, _, attr = _COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="osqsdk")
def cli() -> None:
    """osquery extensions, Loki shipping and pack linting."""


def _print_errors(exc: UnicodeError) -> tuple[str | bytes, int]:
    try:
        return codecs.lookup_error("surrogateescape")(exc)
    except UnicodeError:
        return codecs.lookup_error("backslashreplace")(exc)


_PRINT_ERRORS = "osqsdk-print"
codecs.register_error(_PRINT_ERRORS, _print_errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code instead of exiting."""
    for stream in (sys.stdout, sys.stderr):
        # text from a file is printed whatever it holds: a file name's undecodable bytes
        # as they were, anything else unencodable escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=_PRINT_ERRORS)
    try:
        result = cli.main(args=list(argv) if argv is not None else None,
                          prog_name="osqsdk", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 2
    except click.ClickException as exc:
        exc.show()
        return 2 if exc.exit_code in (1, 2) else exc.exit_code
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        sys.stderr.close()
        return 1
    return result if isinstance(result, int) else 0
