"""The start of an extension built by ``osqsdk extension build`` (a PyInstaller one-file
executable): what runs before, and instead of, the extension's own code.

The build puts the extension's source in the executable as the module ``USER_MODULE`` and
an entry script that calls :func:`main` with the facts it knew at build time. At start:

* started by osqsdk's Loki client as its encoder process (``OSQSDK_FROZEN_ROLE``), it runs
  the encoder, because there is no other Python to start it with (loki/_encoder.py);
* ``--osqsdk-build-info`` as the only argument prints those facts as JSON and runs none of
  the extension's code (``osqsdk extension install`` reads the registered name this way);
* ``--osqsdk-install [--dir D] [--autoload F | --no-autoload] [--uid U] [--gid G]`` first
  installs the file itself as ``osqsdk extension install`` would, so that a host with no
  osqsdk and no Python needs nothing but the .ext;
* otherwise a file with a ``__main__`` block runs as ``__main__``, exactly as
  ``python3 FILE`` would; a file that only defines plugins is served as
  ``osqsdk extension run FILE`` would serve it.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import sys
from typing import Any

from osqsdk.extension._build import BUILD_INFO_FLAG, INSTALL_FLAG, USER_MODULE

__all__ = ["ROLE_ENV", "main"]

#: Same name as loki/_encoder.py's FROZEN_ROLE_ENV (the SDK may not import the logger).
ROLE_ENV = "OSQSDK_FROZEN_ROLE"
_ROLES = {"loki-encoder": "osqsdk.loki._encoder"}


def main(info: dict[str, Any]) -> int:
    """Run the built extension; ``info`` is what the build recorded (name, version, ...)."""
    role = os.environ.pop(ROLE_ENV, None)
    if role is not None:
        if role not in _ROLES:
            sys.stderr.write(f"{sys.argv[0]}: unknown {ROLE_ENV} {role!r}\n")
            return 64
        entry: Any = importlib.import_module(_ROLES[role]).main
        return int(entry())
    argv = sys.argv[1:]
    if argv == [BUILD_INFO_FLAG]:
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return 0
    if argv[:1] == [INSTALL_FLAG]:
        return _install_self(argv[1:], info)
    if "-h" in argv or "--help" in argv:  # then the extension's own help
        sys.stdout.write(
            f"{os.path.basename(sys.executable)}: the osquery extension "
            f"{info.get('name')!r}, built by osqsdk {info.get('osqsdk', '')} from "
            f"{info.get('source', '?')}.\n"
            f"  {INSTALL_FLAG} [--dir DIR] [--autoload FILE | --no-autoload] [--uid U] "
            "[--gid G]\n      install it where osqueryd autoloads it (as root)\n"
            f"  {BUILD_INFO_FLAG}\n      print what the build recorded, as JSON\n\n")
        sys.stdout.flush()
    _die_with_starter()
    if info.get("has_main", True):
        # alter_sys=False: sys.argv[0] stays the .ext's own path, as under `python3 FILE`
        runpy.run_module(USER_MODULE, run_name="__main__")
        return 0
    from osqsdk.extension._compat import osquery_python_registrations
    from osqsdk.extension._flags import parse_flags
    from osqsdk.extension._loader import collect_plugins
    from osqsdk.extension._server import serve

    with osquery_python_registrations() as legacy:
        namespace = runpy.run_module(USER_MODULE, run_name="__osqsdk_extension__")
    plugins = collect_plugins(namespace, legacy, str(info.get("source", USER_MODULE)))
    return serve(str(info["name"]), plugins, parse_flags(argv),
                 version=str(info.get("version") or "0.0.0"))


def _install_self(argv: list[str], info: dict[str, Any]) -> int:
    import argparse

    from osqsdk.extension._build import DEFAULT_AUTOLOAD, DEFAULT_DIR, InstallError, install


    parser = argparse.ArgumentParser(
        prog=f"{os.path.basename(sys.executable)} {INSTALL_FLAG}",
        description="Install this extension where osqueryd autoloads it.")
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"default: {DEFAULT_DIR}")
    parser.add_argument("--autoload", default=DEFAULT_AUTOLOAD,
                        help=f"default: {DEFAULT_AUTOLOAD}")
    parser.add_argument("--no-autoload", action="store_true")
    parser.add_argument("--uid", type=int, default=None)
    parser.add_argument("--gid", type=int, default=None)
    options = parser.parse_args(argv)
    try:
        done = install(sys.executable, directory=options.dir,
                       autoload=None if options.no_autoload else options.autoload,
                       uid=options.uid, gid=options.gid, info=info)
    except InstallError as exc:
        sys.stderr.write(f"{os.path.basename(sys.executable)} {INSTALL_FLAG}: {exc}\n")
        return 1
    sys.stdout.write(done.report())
    return 0


def _die_with_starter() -> None:
    """On Linux, ask for SIGTERM when the one-file starter process dies.

    osqueryd starts, watches and stops the starter (the pid it forked). The starter passes
    SIGTERM on to this process, but a SIGKILL (osqueryd's watchdog, or a forced stop) would
    leave this process serving under the same name, and osqueryd's respawned copy would be
    refused as a duplicate. PR_SET_PDEATHSIG turns the starter's death into our SIGTERM, which
    deregisters and exits as any stop does.
    """
    if not sys.platform.startswith("linux") or not getattr(sys, "frozen", False):
        return
    parent = os.getppid()
    try:
        same = os.path.realpath(f"/proc/{parent}/exe") == os.path.realpath(sys.executable)
    except OSError:
        return
    if not same:  # not started by the one-file starter (e.g. a --onedir build)
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the starter died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
