"""``osqsdk lint``, ``osqsdk rule CODE`` and ``osqsdk rules``.

Exit codes: 0 no finding at or above ``--fail-on``, 1 findings, 2 usage, configuration or
I/O error (a missing path, an unreadable ``--schema`` or pyproject.toml).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import click

from osqsdk.lint._finding import SEVERITIES
from osqsdk.lint._report import FORMATS, render

__all__ = ["lint", "lsp", "pack", "rule", "rules"]

_CTX = {"help_option_names": ["-h", "--help"]}


def _progress_printer(stream: TextIO) -> Callable[[int, int], None]:
    width = 30

    def show(done: int, total: int) -> None:
        if total < 20:
            return
        filled = int(width * done / total)
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
        if done == total:
            stream.write("\r" + " " * (width + 30) + "\r")
        stream.flush()
    return show


@click.command("lint", context_settings=_CTX)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              default=None, help="Output format (default: text).")
@click.option("--select", help="Comma-separated codes, code prefixes or names to enable "
                               "(default: DEFAULT, the error and warning rules; ALL for "
                               "every rule).")
@click.option("--extend-select", help="Add these to the selection.")
@click.option("--ignore", help="Comma-separated codes, prefixes or names to disable.")
@click.option("--platform", help="Lint every query as if it targeted these platforms "
                                 "(e.g. 'linux' or 'darwin,windows').")
@click.option("--osquery-version", help="Oldest osquery release the queries must run on.")
@click.option("--schema", "schema_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra table schema (osqsdk JSON or an extension's --spec output); "
                   "repeatable.")
@click.option("--fleetd/--no-fleetd", default=None,
              help="Allow Fleet's fleetd tables everywhere (always allowed in Fleet files).")
@click.option("--hosts", type=click.IntRange(min=1), help="Add the fleet view for N hosts.")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default=None,
              help="Lowest severity that makes the exit code 1 (default: warning).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="pyproject.toml to read [tool.osqsdk.lint] from (default: the nearest).")
@click.option("--no-config", is_flag=True, help="Ignore pyproject.toml.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--quiet", "-q", is_flag=True, help="Text format: no summary line.")
@click.option("--statistics", is_flag=True,
              help="Count the findings per rule instead of showing each one.")
@click.option("--no-progress", is_flag=True, help="Never show the progress bar.")
@click.option("--skip-other-files", is_flag=True,
              help="Skip JSON/YAML files that are not osquery or Fleet documents even when "
                   "named on the command line (what the pre-commit hook does).")
@click.option("--fix", "apply_fixes", is_flag=True,
              help="Apply the safe fixes in place, then lint again.")
@click.option("--unsafe-fixes", is_flag=True,
              help="With --fix or --diff, also the fixes that change what runs.")
@click.option("--diff", "show_diff", is_flag=True,
              help="Print the fixes as a unified diff instead of applying them "
                   "(exit 1 when there are any).")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False),
              help="Hide the findings this baseline file records (see --write-baseline).")
@click.option("--write-baseline", "write_baseline_file", type=click.Path(dir_okay=False),
              help="Record every finding of this run in a baseline file, then exit 0.")
@click.option("--cost", "cost_report", is_flag=True,
              help="After the findings, print the cost model's estimate for every scheduled "
                   "query and pack (per run, runs a day, per day, and why).")
def lint(**options: Any) -> int:
    """Lint osquery configs, packs, Fleet YAML and .sql files (default: the current directory).

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or I/O error.
    """
    # ``options`` are the parameters above, by name, for _lint. The command's process ends
    # right after it: keep the cycle collector from walking the parse trees during the run
    # and again at the end (freeze, then re-enable).
    gc.disable()
    try:
        return _lint(**options)
    finally:
        gc.freeze()
        gc.enable()


def _lint(paths: tuple[str, ...], fmt: str | None, select: str | None,
          extend_select: str | None, ignore: str | None, platform: str | None,
          osquery_version: str | None, schema_files: tuple[str, ...], fleetd: bool | None,
          hosts: int | None, fail_on: str | None, config_file: str | None, no_config: bool,
          exit_zero: bool, quiet: bool, statistics: bool, no_progress: bool,
          skip_other_files: bool, cost_report: bool, baseline_file: str | None,
          write_baseline_file: str | None, apply_fixes: bool = False,
          unsafe_fixes: bool = False, show_diff: bool = False) -> int:
    from osqsdk.errors import SchemaError
    from osqsdk.lint._inputs import LintInputError
    from osqsdk.lint._runner import lint_paths, unknown_selectors
    from osqsdk.lint._settings import SettingsError, find_pyproject, load_settings, parse_platforms

    targets = list(paths) or ["."]
    try:
        pyproject = None
        if config_file:
            pyproject = Path(config_file)
        elif not no_config:
            pyproject = find_pyproject(targets[0] if os.path.exists(targets[0]) else ".")
        settings = load_settings(pyproject)
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2

    def split(value: str | None) -> tuple[str, ...] | None:
        return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None

    settings = settings.with_(
        select=split(select), extend_select=split(extend_select), ignore=split(ignore),
        platform=parse_platforms(platform) if platform else None,
        osquery_version=osquery_version, fleetd=fleetd, hosts=hosts, fail_on=fail_on,
        schema_files=tuple(settings.schema_files) + tuple(schema_files) or None)
    bad = unknown_selectors(settings)
    if bad:
        click.echo(f"error: unknown rule selector(s): {', '.join(bad)} "
                   "(see `osqsdk rules`)", err=True)
        return 2
    progress = None
    if not no_progress and sys.stderr.isatty():
        progress = _progress_printer(sys.stderr)
    try:
        result = lint_paths(targets, settings=settings, progress=progress,
                            skip_other_files=skip_other_files)
    except (LintInputError, SchemaError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    notes = []
    if apply_fixes or show_diff:
        from osqsdk.lint._fix import plan_fixes

        plan = plan_fixes(result, settings, unsafe=unsafe_fixes)
        if show_diff:
            click.echo(plan.diff(), nl=False)
            click.echo(f"{plan.count()} fix{'es' if plan.count() != 1 else ''} would be applied"
                       f" to {len(plan.texts)} file{'s' if len(plan.texts) != 1 else ''}.",
                       err=True)
            return 1 if plan.count() else 0
        try:
            plan.write()
        except OSError as exc:
            click.echo(f"error: {exc.filename}: cannot be written ({exc.strerror})", err=True)
            return 2
        if plan.rejected:
            why = plan.reasons
            parts = [text for n, text in (
                (why.compile, "the query does not compile, so no check can be made"),
                (why.meaning, "SQLite would compile the edited query differently"),
                (why.format, "the file would not read the same")) if n]
            notes.append(f"{plan.rejected} offered fix{'es' if plan.rejected != 1 else ''} "
                         f"not applied: {'; '.join(parts)}.")
        if plan.count():
            notes.append(f"Fixed {plan.count()} finding{'s' if plan.count() != 1 else ''} in "
                         f"{len(plan.texts)} file{'s' if len(plan.texts) != 1 else ''}.")
            result = lint_paths(targets, settings=settings, skip_other_files=skip_other_files)
    else:
        from osqsdk.lint._fix import fixable

        safe, unsafe = fixable(result)
        if safe:
            notes.append(f"{safe} fixable with --fix.")
        if unsafe:
            notes.append(f"{unsafe} more fixable with --fix --unsafe-fixes.")
    findings = result.findings
    baseline = baseline_file or settings.baseline
    if write_baseline_file:
        from osqsdk.lint._baseline import BaselineError, write_baseline

        try:
            count = write_baseline(findings, write_baseline_file)
        except BaselineError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
        click.echo(f"Wrote {count} finding{'s' if count != 1 else ''} to {write_baseline_file}; "
                   f"lint with --baseline {write_baseline_file} to see only new ones.")
        return 0
    if baseline:
        from osqsdk.lint._baseline import BaselineError, apply_baseline

        try:
            filtered = apply_baseline(findings, baseline)
        except BaselineError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
        findings = filtered.findings
        if filtered.hidden:
            notes.append(f"{filtered.hidden} finding{'s' if filtered.hidden != 1 else ''} "
                         f"hidden by the baseline {baseline}.")
        if filtered.stale:
            notes.append(f"{filtered.stale} baseline entr{'ies' if filtered.stale != 1 else 'y'}"
                         " no longer found: fixed; refresh with --write-baseline.")
    documents = result.run.documents if result.run is not None else []
    sources = {doc.path: doc.source.line_text for doc in documents}
    click.echo(render(findings, fmt or "text", summary=not quiet, sources=sources,
                      statistics=statistics, rule_docs_url=settings.rule_docs_url), nl=False)
    if cost_report:
        from osqsdk.lint._cost import cost_report as render_cost

        click.echo(render_cost(result))
    if notes and not quiet and (fmt or "text") in ("text", "concise"):
        click.echo("\n".join(notes))
    if exit_zero:
        return 0
    from osqsdk.lint._runner import LintResult

    return LintResult(findings).exit_code(settings.fail_on)


@click.command("rule", context_settings=_CTX)
@click.argument("code")
def rule(code: str) -> int:
    """Print the documentation of rule CODE (a code like OSQ104 or a name)."""
    from osqsdk.lint.rules import rule_by_code

    found = rule_by_code(code)
    if found is None:
        click.echo(f"error: no rule {code!r} (see `osqsdk rules`)", err=True)
        return 2
    click.echo(f"# {found.name} ({found.code})\n")
    click.echo(f"Severity: {found.severity}\n")
    click.echo(found.doc())
    return 0


@click.command("rules", context_settings=_CTX)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]),
              default="text", help="markdown: the whole reference page, every rule's "
                                   "documentation.")
def rules(fmt: str) -> int:
    """List every rule: code, name, severity and summary."""
    import json

    from osqsdk.lint.rules import ALL_RULES

    if fmt == "markdown":
        from osqsdk.lint._ruledocs import markdown
        from osqsdk.lint._runner import in_default

        click.echo(markdown(list(ALL_RULES), in_default), nl=False)
        return 0

    if fmt == "json":
        click.echo(json.dumps([{"code": r.code, "name": r.name, "severity": r.severity,
                                "summary": r.summary()} for r in ALL_RULES], indent=2))
        return 0
    for r in ALL_RULES:
        click.echo(f"{r.code}  {r.name:<32} {r.severity:<8} {r.summary()}")
    return 0


@click.command("lsp", context_settings=_CTX)
@click.option("--stdio", is_flag=True, help="Speak on stdin/stdout (the default; editors "
                                            "pass it).")
def lsp(stdio: bool) -> int:
    """Run the linter as a language server on stdin/stdout: diagnostics, hover, completion
    and fixes for osquery configs, packs, Fleet YAML and .sql files in the editor."""
    try:
        from osqsdk.lint._lsp import serve
    except ImportError as exc:
        click.echo(f"error: the language server needs pygls ({exc.name} is missing): "
                   "pip install 'osqsdk[lsp]'", err=True)
        return 2
    serve()
    return 0


@click.group("pack", context_settings=_CTX)
def pack() -> None:
    """Build packs from directories of .sql files, unpack them, change them in bulk."""


def _lint_output(path: str) -> int:
    """Lint a file just written, as `osqsdk lint` would; its exit code."""
    from osqsdk.lint._runner import lint_paths
    from osqsdk.lint._settings import SettingsError, find_pyproject, load_settings

    try:
        settings = load_settings(find_pyproject(os.path.dirname(os.path.abspath(path))))
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    result = lint_paths([path], settings=settings)
    documents = result.run.documents if result.run is not None else []
    sources = {doc.path: doc.source.line_text for doc in documents}
    click.echo(render(result.findings, "text", sources=sources), nl=False)
    return result.exit_code(settings.fail_on)


def _changes(options: dict[str, Any]) -> dict[str, Any]:
    from osqsdk._osquery.config import parse_interval

    out: dict[str, Any] = {}
    for key in ("min_interval", "max_interval"):
        raw = options.get(key)
        if raw is not None:
            value = parse_interval(raw)
            if value is None or value <= 0:
                raise click.BadParameter(f"not a number of seconds: {raw!r}",
                                         param_hint=f"--{key.replace('_', '-')}")
            out[key] = value
    if options.get("platform"):
        out["platform"] = options["platform"]
    out["exclude"] = [n for v in options.get("exclude") or () for n in v.split(",") if n]
    out["exclude_tags"] = [t for v in options.get("exclude_tags") or () for t in v.split(",")
                           if t]
    return out


_CHANGE_OPTIONS = [
    click.option("--min-interval", help="Raise every interval below this many seconds."),
    click.option("--max-interval", help="Lower every interval above this many seconds."),
    click.option("--platform", help="Keep only the queries that run on this platform."),
    click.option("--exclude", multiple=True, help="Leave out these queries (names, "
                                                  "comma-separated; repeatable)."),
    click.option("--exclude-tags", multiple=True, help="Leave out the queries with these "
                                                       "tags (-- tags: header)."),
]


def _with_changes(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_CHANGE_OPTIONS):
        command = option(command)
    return command


def _finish(pack_fields: dict[str, Any], files: list[Any], output: str,
            options: dict[str, Any], source: Any = None) -> int:
    """Apply the changes, write the pack (``source``, a read PackFile, edited in place
    when it can be) and lint it."""
    from osqsdk.lint._packtool import PackToolError, apply_changes, edit_pack_text, write_pack

    try:
        kept, said = apply_changes(files, pack_platform=pack_fields.get("platform"),
                                   **_changes(options))
    except PackToolError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    for line in said:
        click.echo(line, err=True)
    text = None
    if source is not None:
        edited = edit_pack_text(source.text, kept)
        if edited is None:
            _say_comments_left(source.path, source.comment_lines)
        else:
            text, gone = edited
            if gone:
                click.echo(f"note: {len(gone)} comment line{'' if len(gone) == 1 else 's'} "
                           f"directly above the queries left out went with them", err=True)
    try:
        write_pack(pack_fields, kept, output, text)
    except PackToolError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    click.echo(f"wrote {output}: {len(kept)} quer{'ies' if len(kept) != 1 else 'y'}", err=True)
    return _lint_output(output)


@pack.command("build", context_settings=_CTX)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The pack file to write.")
@_with_changes
def pack_build(directory: str, output: str, **options: Any) -> int:
    """Make a pack from DIRECTORY's .sql files (-- interval:, -- platform: ... headers),
    then lint it. Exit codes: 0 clean, 1 findings, 2 bad input."""
    from osqsdk.lint._packtool import PackToolError, build_pack

    try:
        fields, files, notes = build_pack(directory)
    except PackToolError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    for note in notes:
        click.echo(note, err=True)
    return _finish(fields, files, output, options)


@pack.command("unpack", context_settings=_CTX)
@click.argument("pack_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="The directory to write one .sql file per query into.")
@click.option("--replace", is_flag=True, help="Write over .sql files already there.")
def pack_unpack(pack_file: str, output: str, replace: bool) -> int:
    """Write one .sql file per query of PACK_FILE into a directory (headers for its fields).
    Comments in PACK_FILE are not kept. Exit codes: 0 written, 2 bad input."""
    from osqsdk.lint._packtool import PackToolError, read_pack, unpack_pack

    try:
        source = read_pack(pack_file)
        written, removed = unpack_pack(source.fields, source.queries, output, replace=replace)
    except PackToolError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    _say_comments_left(pack_file, source.comment_lines)
    if removed:
        click.echo(f"removed {removed} .sql files that were in {output}")
    click.echo(f"wrote {len(written)} files to {output}")
    return 0


@pack.command("apply", context_settings=_CTX)
@click.argument("pack_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The pack file to write (may be PACK_FILE itself).")
@_with_changes
def pack_apply(pack_file: str, output: str, **options: Any) -> int:
    """Bulk changes to a pack (intervals, platform, exclusions), then lint the result.
    Only what changes is edited: comments and layout elsewhere are kept.
    Exit codes: 0 clean, 1 findings, 2 bad input."""
    from osqsdk.lint._packtool import PackToolError, read_pack

    try:
        source = read_pack(pack_file)
    except PackToolError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    return _finish(source.fields, source.queries, output, options, source)


def _say_comments_left(pack_file: str, lines: list[int]) -> None:
    if lines:
        where = f"line {lines[0]}" if len(lines) == 1 else f"the first at line {lines[0]}"
        click.echo(f"note: {pack_file}: {len(lines)} comment line"
                   f"{'' if len(lines) == 1 else 's'} ({where}) not kept in the output",
                   err=True)
