"""The ready-to-run extensions that ship with osqsdk, by name (``osqsdk extension build loki``).

An installed wheel carries them as ``osqsdk/_data/extensions/*.py``; a source checkout has
them in the repository's top-level ``extensions/`` directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osqsdk.errors import PluginDefinitionError

__all__ = ["BUILTIN", "Builtin", "builtin_file", "find_builtin"]


@dataclass(frozen=True)
class Builtin:
    key: str
    file: str
    summary: str
    #: osqueryd flags that put its plugin to use, besides autoload and require
    flags: tuple[str, ...] = ()


BUILTIN = (
    Builtin("loki", "loki_logger.py", "logger `loki`: results and status logs to Grafana Loki",
            ("--logger_plugin=loki",)),
    Builtin("file-logger", "file_logger.py",
            "logger `osqsdk_file`: results and status logs to size-rotated files",
            ("--logger_plugin=osqsdk_file",)),
    Builtin("directory-config", "directory_config.py",
            "config `osqsdk_directory`: osquery.conf and packs from a directory",
            ("--config_plugin=osqsdk_directory", "--config_refresh=60")),
    Builtin("spool-distributed", "spool_distributed.py",
            "distributed `osqsdk_spool`: runs .sql files dropped in a directory",
            ("--disable_distributed=false", "--distributed_plugin=osqsdk_spool")),
    Builtin("python-environments", "python_environments.py",
            "table `python_environment_packages`: Python packages per environment"),
)


def find_builtin(name: str) -> Builtin | None:
    """The ready-made extension called ``name`` (``loki``, ``file-logger``, ``file_logger``,
    ``file_logger.py`` all name the same one), or None."""
    wanted = name.removesuffix(".py").replace("_", "-")
    for b in BUILTIN:
        if wanted in (b.key, b.file.removesuffix(".py").replace("_", "-")):
            return b
    return None


def builtin_file(builtin: Builtin) -> Path:
    """Where the source of ``builtin`` is, installed or in a checkout."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_data" / "extensions" / builtin.file,
                      package_dir.parent / "extensions" / builtin.file):
        if candidate.is_file():
            return candidate
    raise PluginDefinitionError(f"osqsdk's ready-made extension {builtin.file!r} is missing "
                                f"from this installation")
