"""Start an extension the way osqueryd's watcher does (docs/protocol.md §2.2)."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from osqsdk.errors import PluginDefinitionError
from osqsdk.extension._autoload import launch_argv, launch_problems

__all__ = ["ExtensionProcess", "launch_extension", "launched_at"]

_TAIL_LINES = 20

# The children started for each manager socket, so that the manager can tell a test at once
# that the extension it waits for has died. Held strongly: a caller that drops the handle
# of a running child must not get Popen's "still running" warning at collection.
_launched: dict[str, list[ExtensionProcess]] = collections.defaultdict(list)
_launched_lock = threading.Lock()


class ExtensionProcess(subprocess.Popen[bytes]):
    """A launched extension; keeps the last lines of its stderr when it was not redirected."""

    def __init__(self, argv: list[str], path: str, **popen: Any) -> None:
        self.path = path
        self._tail: collections.deque[str] | None = None
        capture = "stderr" not in popen
        if capture:
            popen["stderr"] = subprocess.PIPE
        super().__init__(argv, **popen)
        if capture and self.stderr is not None:
            self._tail = collections.deque(maxlen=_TAIL_LINES)
            self._reader = threading.Thread(target=self._pump, args=(self.stderr,), daemon=True,
                                            name=f"osqsdk-stderr-{self.pid}")
            self._reader.start()

    def _pump(self, stream: IO[bytes]) -> None:
        # Echo the child's stderr (pytest captures it per test) and keep its tail.
        assert self._tail is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._tail.append(line.rstrip("\n"))
            try:
                sys.stderr.write(line)
            except (ValueError, OSError):  # stderr closed under us at interpreter exit
                pass

    def stderr_tail(self) -> list[str]:
        """The last lines the child wrote to stderr (empty when stderr was redirected)."""
        if self._tail is None:
            return []
        if self.poll() is not None:
            self._reader.join(2)
        return list(self._tail)

    def describe_exit(self) -> str:
        """``"<path> exited with code N"`` and the tail of its stderr, for error messages."""
        code = self.poll()
        what = f"{self.path} exited with code {code}" if code is not None else \
            f"{self.path} is still running"
        tail = self.stderr_tail()
        if code is not None and code < 0:
            what = f"{self.path} was killed by signal {-code}"
        return what + ("; its last stderr lines:\n  " + "\n  ".join(tail) if tail else "")


def launch_extension(path: str | Path, socket: str, *, timeout: float = 3, interval: float = 3,
                     verbose: bool = False, autoload: bool = True,
                     **popen: Any) -> ExtensionProcess:
    """Check ``path`` as osqueryd would, then execute it directly with osqueryd's argv.

    A relative ``path`` is taken from the current directory (osqueryd itself executes the
    path it was given, never a PATH lookup). Raises PluginDefinitionError with osqueryd's
    reasons when it would refuse the file. The child gets ``OSQUERY_EXTENSION=<its pid>``
    in its environment, as from osqueryd. Unless ``stderr`` is given, the child's stderr
    is echoed to ours and its last lines kept, so ``ManagerDouble.wait_for`` can say why
    a child died before registering.
    """
    path = os.path.abspath(os.fspath(path))
    problems = launch_problems(path, autoload=autoload)
    if problems:
        raise PluginDefinitionError("osqueryd would not launch it: " + "; ".join(problems))
    argv = launch_argv(path, socket, timeout=_number(timeout), interval=_number(interval),
                       verbose=verbose)
    # osqueryd sets OSQUERY_EXTENSION to the child's own pid between fork and exec; a shell
    # that execs keeps its pid, so $$ is that pid.
    process = ExtensionProcess(["/bin/sh", "-c", 'OSQUERY_EXTENSION=$$ exec "$@"', "sh", *argv],
                               path, **popen)
    with _launched_lock:
        _launched[socket] = [p for p in _launched[socket] if p.returncode is None] + [process]
    return process


def launched_at(socket: str) -> list[ExtensionProcess]:
    """The extension processes launched for the manager at ``socket`` that still exist."""
    with _launched_lock:
        return list(_launched.get(socket, ()))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
