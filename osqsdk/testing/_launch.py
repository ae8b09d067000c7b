"""Start an extension the way osqueryd's watcher does (protocol.md §2.2)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from osqsdk._autoload import launch_argv, launch_problems
from osqsdk.errors import PluginDefinitionError

__all__ = ["launch_extension"]


def launch_extension(path: str | Path, socket: str, *, timeout: float = 3, interval: float = 3,
                     verbose: bool = False, autoload: bool = True,
                     **popen: Any) -> subprocess.Popen:
    """Check ``path`` as osqueryd would, then execute it directly with osqueryd's argv.

    Raises PluginDefinitionError with osqueryd's reasons when it would refuse the file.
    The child gets ``OSQUERY_EXTENSION=<its pid>`` in its environment, as from osqueryd.
    """
    problems = launch_problems(path, autoload=autoload)
    if problems:
        raise PluginDefinitionError("osqueryd would not launch it: " + "; ".join(problems))
    argv = launch_argv(path, socket, timeout=_number(timeout), interval=_number(interval),
                       verbose=verbose)
    # osqueryd sets OSQUERY_EXTENSION to the child's own pid between fork and exec; a shell
    # that execs keeps its pid, so $$ is that pid.
    return subprocess.Popen(["/bin/sh", "-c", 'OSQUERY_EXTENSION=$$ exec "$@"', "sh", *argv],
                            **popen)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
