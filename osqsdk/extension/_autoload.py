"""What osqueryd checks before it launches an extension (docs/protocol.md §2.2).

``autoload_entries`` reads an ``--extensions_autoload`` file the way osqueryd does, and
``launch_problems`` gives the reasons osqueryd would refuse to launch a path, so that
``osqsdk extension check`` can tell a user why an extension never starts.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

__all__ = ["autoload_entries", "launch_argv", "launch_problems"]


def autoload_entries(text: str, base: Path | None = None) -> list[Path]:
    """The paths an autoload file names: one per line, trimmed; blank lines and lines
    starting with ``#`` or ``;`` skipped; a directory stands for every file under it."""
    paths: list[Path] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        path = Path(line)
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            paths.extend(sorted(p for p in path.rglob("*") if not p.is_dir()))
        else:
            paths.append(path)
    return paths


def launch_problems(path: str | Path, *, osqueryd_uid: int | None = None,
                    autoload: bool = True) -> list[str]:
    """Why osqueryd would not launch ``path`` (empty if it would).

    ``osqueryd_uid`` is the user osqueryd runs as (default: this process's). With
    ``autoload=False`` the checks are those of ``--extension PATH``, which skips the suffix
    rule but not the permission rules.
    """
    path = Path(path)
    uid = os.getuid() if osqueryd_uid is None else osqueryd_uid
    problems: list[str] = []
    try:
        st = path.stat()
    except OSError as exc:
        return [f"{path}: cannot be read ({exc.strerror})"]
    if stat.S_ISDIR(st.st_mode):
        return [f"{path}: is a directory"]
    parent = path.resolve().parent
    if parent.stat().st_mode & stat.S_ISVTX:
        problems.append(f"{path}: its directory {parent} has the sticky bit (like /tmp); "
                        "osqueryd refuses extensions there")
    if st.st_uid not in (0, uid):
        problems.append(f"{path}: owned by uid {st.st_uid}; osqueryd needs it owned by root or "
                        f"by the user running osqueryd (uid {uid})")
    if not st.st_mode & stat.S_IXUSR:
        problems.append(f"{path}: not executable by its owner (chmod u+x)")
    if st.st_mode & stat.S_IWOTH:
        problems.append(f"{path}: writable by everyone (chmod o-w)")
    if autoload:
        suffixes = (".exe", ".ext") if sys.platform == "win32" else (".ext",)
        if not path.name.endswith(suffixes):
            problems.append(f"{path}: autoloaded extensions must end in {' or '.join(suffixes)}")
    if not problems and st.st_mode & stat.S_IXUSR:
        try:
            with open(path, "rb") as handle:
                head = handle.read(2)
        except OSError:
            head = b""
        if head != b"#!" and head != b"\x7fE":
            problems.append(f"{path}: osqueryd executes it directly; a Python file needs a "
                            "'#!/usr/bin/env python3' line")
    return problems


def launch_argv(path: str | Path, socket: str, *, timeout: str = "3", interval: str = "3",
                verbose: bool = False) -> list[str]:
    """The argv osqueryd starts an extension with (separate elements, no '=')."""
    argv = [str(path)]
    if verbose:
        argv.append("--verbose")
    return argv + ["--socket", socket, "--timeout", str(timeout), "--interval", str(interval)]
