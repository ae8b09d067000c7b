#!/usr/bin/env python3
"""A logger extension: osquery results and status logs to Grafana Loki, nothing lost.

osqueryd flags (see the README):

    --extensions_autoload=/etc/osquery/extensions.load   (lists this file, named *.ext)
    --extensions_require=osqsdk_loki
    --logger_plugin=loki                                  (or filesystem,loki)

Settings: a TOML file (OSQSDK_LOKI_CONFIG, else /etc/osquery/osqsdk-loki.toml if present),
OSQSDK_LOKI_<SETTING> environment variables, or --loki-<setting> VALUE flags when run by
hand (e.g. --loki-url http://loki:3100). The spool defaults to /var/osquery/osqsdk-loki.

Every result line is in the spool before osqueryd gets its answer; the extension ships it
on its own time and never answers a failure (that would make osqueryd exit).
"""

import os
import sys

import osqsdk
from osqsdk.extension._flags import parse_flags
from osqsdk.loki import LokiConfigError, LokiLogger, SpoolError, load_config

DEFAULT_CONFIG = "/etc/osquery/osqsdk-loki.toml"
DEFAULT_SPOOL = "/var/osquery/osqsdk-loki"
EX_USAGE, EX_CANTCREAT = 64, 73


def loki_flags(extra):
    """--loki-<setting> VALUE / --loki-<setting>=VALUE among osqueryd's unknown flags."""
    overrides, rest = {}, list(extra)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--loki-"):
            continue
        key, sep, value = arg[len("--loki-"):].partition("=")
        if not sep:
            if not rest:
                raise LokiConfigError(f"option {arg} needs a value")
            value = rest.pop(0)
        overrides[key.replace("-", "_")] = value
    return overrides


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    flags = parse_flags(argv)
    try:
        overrides = loki_flags(flags.unknown)
        config_file = overrides.pop("config", None)
        if config_file is None and "OSQSDK_LOKI_CONFIG" not in os.environ \
                and os.path.exists(DEFAULT_CONFIG):
            config_file = DEFAULT_CONFIG
        if "spool_dir" not in overrides and "OSQSDK_LOKI_SPOOL_DIR" not in os.environ:
            overrides["spool_dir"] = DEFAULT_SPOOL
        config = load_config(config_file, flag_prefix="--loki-", **overrides)
        plugin = LokiLogger(config)
    except LokiConfigError as exc:
        sys.stderr.write(f"osqsdk_loki: configuration error: {exc}\n")
        return EX_USAGE
    except SpoolError as exc:
        sys.stderr.write(f"osqsdk_loki: {exc}\n")
        return EX_CANTCREAT
    try:
        osqsdk.run("osqsdk_loki", [plugin], version=osqsdk.__version__, argv=argv)
    finally:
        plugin.close()  # send what it can within drain_timeout; the rest stays spooled
    return 0


if __name__ == "__main__":
    sys.exit(main())
