"""Find the plugins a Python file defines (osqsdk plugins and osquery-python ones)."""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path
from typing import Any

from osqsdk.errors import PluginDefinitionError
from osqsdk.extension._compat import adapt, osquery_python_registrations
from osqsdk.extension._plugin import Plugin

__all__ = ["LoadedFile", "collect_plugins", "declared_identity", "load_file"]


class LoadedFile:
    """The plugins of one file, and the names it asks for (``EXTENSION_NAME``/``VERSION``)."""

    def __init__(self, path: Path, plugins: list[Plugin], namespace: dict[str, Any]) -> None:
        self.path = path
        self.plugins = plugins
        declared_name, declared_version = declared_identity(path)
        self.name = str(namespace.get("EXTENSION_NAME") or declared_name
                        or path.stem.removesuffix(".ext"))
        self.version = str(namespace.get("EXTENSION_VERSION") or declared_version
                           or namespace.get("__version__") or "0.0.0")


def declared_identity(path: str | Path) -> tuple[str | None, str | None]:
    """The name and version a file's own main block registers with, read from its source
    (the block is not run when the file is loaded): ``osqsdk.run(NAME, ..., version=V)`` or
    osquery-python's ``start_extension(name=NAME, version=V)``; None for what it does not
    say with a literal."""
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None, None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else \
            func.id if isinstance(func, ast.Name) else ""
        positions: tuple[str, ...]
        if called == "start_extension":
            positions = ("name", "version")
        elif called == "run" and isinstance(func, ast.Attribute) and \
                isinstance(func.value, ast.Name) and func.value.id == "osqsdk":
            positions = ("name", "", "version")
        else:
            continue
        found: dict[str, str] = {}
        for key, arg in zip(positions, node.args):
            if key and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found[key] = arg.value
        for keyword in node.keywords:
            if keyword.arg in ("name", "version") and isinstance(keyword.value, ast.Constant) \
                    and isinstance(keyword.value.value, str):
                found[keyword.arg] = keyword.value.value
        if found:
            return found.get("name"), found.get("version")
    return None, None


def load_file(path: str | Path) -> LoadedFile:
    """Run ``path`` as a module (not as ``__main__``) and collect its plugins.

    osqsdk plugins are found among the module's global values. osquery-python's
    ``@register_plugin`` returns None, so its plugins are taken from osquery-python's own
    registry instead (those registered while the file ran).
    """
    path = Path(path)
    if not path.is_file():
        raise PluginDefinitionError(f"{path}: no such file")
    directory = str(path.resolve().parent)
    sys.path.insert(0, directory)  # let the file import its neighbours, as `python FILE` does
    try:
        with osquery_python_registrations() as legacy_plugins:
            namespace = runpy.run_path(str(path), run_name="__osqsdk_extension__")
    except PluginDefinitionError as exc:
        raise PluginDefinitionError(f"{path}: {exc}") from None
    except SyntaxError as exc:
        raise PluginDefinitionError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    finally:
        if sys.path and sys.path[0] == directory:
            sys.path.pop(0)
    return LoadedFile(path, collect_plugins(namespace, legacy_plugins, str(path)), namespace)


def collect_plugins(namespace: dict[str, Any], legacy_plugins: list[Any],
                    where: str) -> list[Plugin]:
    """The plugins among a module's global values (and osquery-python's registrations)."""
    plugins: list[Plugin] = []
    seen: set[int] = set()
    for value in namespace.values():
        if isinstance(value, Plugin) and id(value) not in seen:
            seen.add(id(value))
            plugins.append(value)
        elif isinstance(value, (list, tuple)):  # e.g. PLUGINS = [...]
            for item in value:
                if isinstance(item, Plugin) and id(item) not in seen:
                    seen.add(id(item))
                    plugins.append(item)
    plugins.extend(adapt(legacy) for legacy in legacy_plugins)
    if not plugins:
        raise PluginDefinitionError(
            f"{where}: defines no plugins (no osqsdk plugin objects at module level and no "
            "osquery-python @register_plugin classes)")
    return plugins
