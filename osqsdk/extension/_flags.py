"""The flags osqueryd launches an extension with (docs/protocol.md §2.2)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

__all__ = ["DEFAULT_SOCKET", "ExtensionFlags", "parse_flags"]

DEFAULT_SOCKET = r"\\.\pipe\osquery.em" if sys.platform == "win32" else "/var/osquery/osquery.em"
# osqueryd clamps health-check and watcher intervals to 200 ms (extensions.cpp).
MIN_INTERVAL = 0.2


@dataclass(frozen=True)
class ExtensionFlags:
    socket: str = DEFAULT_SOCKET
    timeout: float = 3.0
    interval: float = 3.0
    verbose: bool = False
    spec: bool = False
    unknown: tuple[str, ...] = ()


def _seconds(text: str) -> float:
    # osqueryd passes --extensions_timeout/--extensions_interval through as strings it reads
    # with atoi; accept fractions too, for tests.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 64 (EX_USAGE) with a one-line message
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(64)


def parse_flags(argv: Sequence[str] | None = None, prog: str | None = None) -> ExtensionFlags:
    """Parse ``--socket --timeout --interval --verbose`` (both ``--x v`` and ``--x=v``).

    Unknown flags are tolerated, because osqueryd may pass more in the future and an
    extension that exits on them would be respawned forever.
    """
    parser = _Parser(prog=prog, add_help=True, allow_abbrev=False,
                     description="An osquery extension built with osqsdk.")
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="osqueryd's extensions socket")
    parser.add_argument("--timeout", type=_seconds, default=3.0,
                        help="seconds to wait for the socket (default 3)")
    parser.add_argument("--interval", type=_seconds, default=3.0,
                        help="seconds between checks that osqueryd is alive (default 3)")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--spec", action="store_true",
                        help="print the tables' schema JSON (osquery's format) and exit")
    known, unknown = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return ExtensionFlags(socket=known.socket, timeout=known.timeout,
                          interval=max(known.interval, MIN_INTERVAL), verbose=known.verbose,
                          spec=known.spec, unknown=tuple(unknown))
