"""The start of an extension built by ``osqsdk extension build`` (a PyInstaller one-file
executable): what runs before, and instead of, the extension's own code.

The build puts the extension's source in the executable as the module ``USER_MODULE`` and
an entry script that calls :func:`main` with the facts it knew at build time. At start:

* started by osqsdk's Loki client as its encoder process (``OSQSDK_FROZEN_ROLE``), it runs
  the encoder, because there is no other Python to start it with (loki/_encoder.py);
* ``--osqsdk-build-info`` as the only argument prints those facts as JSON and runs none of
  the extension's code (``osqsdk extension install`` reads the registered name this way);
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

__all__ = ["BUILD_INFO_FLAG", "ROLE_ENV", "USER_MODULE", "main"]

#: The name of the extension's own source inside the executable.
USER_MODULE = "_osqsdk_user_extension"
BUILD_INFO_FLAG = "--osqsdk-build-info"
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
