"""``osqsdk extension build`` and ``install``: one self-contained .ext file per extension,
put where osqueryd autoloads it (docs/protocol.md §2.2, docs/architecture.md "Deploying").

The build uses PyInstaller's one-file mode: the file carries a Python interpreter, osqsdk
and every module the extension imports, so the host needs no Python at all (a PEX or shiv
zipapp would need a matching Python and its compiled wheels on every host). The extension's
source goes in as the module ``_frozen.USER_MODULE``, started by ``_frozen.main``.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osqsdk.errors import OsqsdkError
from osqsdk.extension._autoload import autoload_entries, launch_problems
from osqsdk.extension._builtin import Builtin, builtin_file, find_builtin
from osqsdk.extension._loader import declared_identity

__all__ = ["BUILD_INFO_FLAG", "DEFAULT_AUTOLOAD", "DEFAULT_DIR", "INSTALL_FLAG", "USER_MODULE",
           "BuildError", "Built", "InstallError", "Installed", "build", "build_info", "install"]

#: The name of the extension's own source inside the executable (extension/_frozen.py).
USER_MODULE = "_osqsdk_user_extension"
#: Flags the built .ext answers before running any of the extension's code.
BUILD_INFO_FLAG = "--osqsdk-build-info"
INSTALL_FLAG = "--osqsdk-install"
#: osqueryd's default --extensions_autoload
DEFAULT_AUTOLOAD = "/etc/osquery/extensions.load"
DEFAULT_DIR = "/usr/local/lib/osquery/extensions"
_BUILD_TIMEOUT = 1800.0
_INFO_TIMEOUT = 30.0
_ELF = b"\x7fELF"


class BuildError(OsqsdkError):
    """The extension could not be built."""


class InstallError(OsqsdkError):
    """The extension could not be installed where osqueryd would load it."""


@dataclass(frozen=True)
class Built:
    path: Path
    size: int
    info: dict[str, Any]


@dataclass
class Installed:
    path: Path
    name: str | None
    autoload: Path | None
    autoload_changed: bool
    flags: list[str] = field(default_factory=list)

    def report(self) -> str:
        """What was done and the osqueryd flags to add, as printed to the user."""
        lines = [f"installed {self.path}"]
        if self.autoload is not None:
            lines.append(f"{'added to' if self.autoload_changed else 'already in'} "
                         f"{self.autoload}")
        lines.append("osqueryd flags:")
        lines += [f"  {flag}" for flag in self.flags]
        return "\n".join(lines) + "\n"


def resolve_source(source: str) -> tuple[Path, Builtin | None]:
    """A file path, or the name of a ready-made extension (``loki``, ``file-logger``...)."""
    path = Path(source)
    if path.is_file():
        return path, None
    builtin = find_builtin(source)
    if builtin is not None and os.sep not in source:
        return builtin_file(builtin), builtin
    raise BuildError(f"{source}: no such file, and not a ready-made extension "
                     "(see `osqsdk extension build --list`)")


def _has_main_block(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n for n in (node.test.left, *node.test.comparators)
                     if isinstance(n, ast.Name) and n.id == "__name__"]
            if names and any(isinstance(n, ast.Constant) and n.value == "__main__"
                             for n in (node.test.left, *node.test.comparators)):
                return True
    return False


def _module_constant(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, str) and \
                any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value.value
    return None


#: Modules the standard library and osquery-python's Python 2 shims can reach but an extension
#: never runs; left out unless the extension's own source imports them.
_NEVER_NEEDED = ("tkinter", "_tkinter", "setuptools", "pkg_resources", "distutils", "unittest",
                 "test", "pydoc_data", "lib2to3", "ensurepip", "idlelib", "turtledemo")


#: Modules that compiled code imports by name, where PyInstaller cannot see it: thrift's
#: fastbinary decoder imports thrift.protocol.TBase from C (thrift/protocol/fastbinary.c).
_C_IMPORTS = ("thrift.protocol.TBase",)


def _imported_top_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _lazy_exports() -> list[str]:
    # ``import osqsdk`` loads its public names on first use (importlib), which PyInstaller's
    # import analysis cannot follow: name those modules explicitly.
    import osqsdk

    return sorted(set(osqsdk._EXPORTS.values()))


def build(source: str, output: str | os.PathLike[str], *, name: str | None = None,
          runtime_tmpdir: str | None = None, workdir: str | None = None) -> Built:
    """Build ``source`` (a file, or a ready-made extension's name) into ``output``."""
    path, builtin = resolve_source(source)
    try:
        text = path.read_bytes()
        tree = ast.parse(text, filename=str(path))
    except OSError as exc:
        raise BuildError(f"{path}: cannot be read ({exc.strerror})") from None
    except SyntaxError as exc:
        raise BuildError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError as exc:
        raise BuildError(f"{path}: not Python source ({exc})") from None
    out = Path(output)
    if out.is_dir():
        raise BuildError(f"{out}: is a directory; give the file to write, e.g. "
                         f"{out / (path.stem + '.ext')}")
    if not out.parent.is_dir():
        raise BuildError(f"{out.parent}: no such directory")
    try:
        import PyInstaller  # type: ignore[import-untyped]  # noqa: F401  (say it is missing)
    except ImportError:
        raise BuildError("building an .ext needs PyInstaller: pip install 'osqsdk[build]'"
                         ) from None
    from osqsdk._version import __version__

    has_main = _has_main_block(tree)
    declared_name, declared_version = declared_identity(path)
    info: dict[str, Any] = {
        "name": name or _module_constant(tree, "EXTENSION_NAME") or declared_name
        or path.stem.removesuffix(".ext"),
        "version": _module_constant(tree, "EXTENSION_VERSION") or declared_version,
        "source": path.name,
        "has_main": has_main,
        "osqsdk": __version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "flags": list(builtin.flags) if builtin else [],
    }
    with tempfile.TemporaryDirectory(prefix="osqsdk-build-", dir=workdir) as tmp:
        work = Path(tmp)
        (work / f"{USER_MODULE}.py").write_bytes(text)
        entry = work / "osqsdk_entry.py"
        entry.write_text("# osqsdk extension build: the start of the built .ext (generated)\n"
                         "import sys\n\n"
                         "from osqsdk.extension._frozen import main\n\n"
                         f"sys.exit(main({info!r}))\n", encoding="utf-8")
        argv = [sys.executable, "-m", "PyInstaller", "--onefile", "--noconfirm", "--clean",
                "--strip", "--log-level", "WARN", "--name", "extension",
                "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
                "--specpath", str(work), "--paths", str(work),
                "--hidden-import", USER_MODULE]
        for module in (*_lazy_exports(), *_C_IMPORTS):
            argv += ["--hidden-import", module]
        wanted = _imported_top_names(tree)
        for module in _NEVER_NEEDED:
            if module not in wanted:
                argv += ["--exclude-module", module]
        if runtime_tmpdir:
            argv += ["--runtime-tmpdir", runtime_tmpdir]
        argv.append(str(entry))
        try:
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True,
                                  errors="replace", timeout=_BUILD_TIMEOUT, check=False,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BuildError(f"{path}: PyInstaller did not finish within "
                             f"{_BUILD_TIMEOUT:.0f} s") from None
        built = work / "dist" / "extension"
        if done.returncode != 0 or not built.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise BuildError(f"{path}: PyInstaller failed (exit {done.returncode}):\n{tail}")
        tmp_out = out.with_name(f".{out.name}.partial")
        shutil.copyfile(built, tmp_out)
        os.chmod(tmp_out, 0o755)
        os.replace(tmp_out, out)
    return Built(out, out.stat().st_size, info)


def _is_artifact(path: Path) -> bool:
    """Whether ``path`` is an executable osqsdk built (an ELF that names the user module)."""
    marker = USER_MODULE.encode()
    with open(path, "rb") as fh:
        if fh.read(4) != _ELF:
            return False
        fh.seek(0)
        tail = b""
        while chunk := fh.read(1 << 20):
            if marker in tail + chunk:
                return True
            tail = chunk[-len(marker):]
    return False


def build_info(path: Path) -> dict[str, Any] | None:
    """What ``osqsdk extension build`` recorded in ``path``; None for other files. For a
    Python script, its name and version as its own ``osqsdk.run(...)`` gives them."""
    try:
        if not _is_artifact(path):
            declared_name, declared_version = declared_identity(path)
            return {"name": declared_name, "version": declared_version} \
                if declared_name else None
    except OSError:
        return None
    try:
        done = subprocess.run([str(path.resolve()), BUILD_INFO_FLAG], capture_output=True,
                              timeout=_INFO_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
                              env={"PATH": os.defpath}, cwd="/")
        info = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _add_to_autoload(autoload: Path, dest: Path) -> bool:
    """Add ``dest`` to the autoload file once; True when the file changed."""
    try:
        text = autoload.read_text(encoding="utf-8")
        mode = stat.S_IMODE(autoload.stat().st_mode)
    except FileNotFoundError:
        text, mode = "", 0o644
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"{autoload}: cannot be read ({exc})") from None
    target = dest.resolve()
    if any(p.resolve() == target for p in autoload_entries(text, autoload.parent)):
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"{dest}\n"
    autoload.parent.mkdir(parents=True, exist_ok=True)
    partial = autoload.with_name(f".{autoload.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.chmod(partial, mode)
    os.replace(partial, autoload)
    return True


def install(artifact: str | os.PathLike[str], *, directory: str | os.PathLike[str] = DEFAULT_DIR,
            autoload: str | os.PathLike[str] | None = DEFAULT_AUTOLOAD,
            uid: int | None = None, gid: int | None = None,
            info: dict[str, Any] | None = None) -> Installed:
    """Copy ``artifact`` into ``directory`` as osqueryd needs it (owner ``uid``, by default
    root when run as root and else you; mode 0755) and list it in ``autoload`` once.

    Raises InstallError, leaving the directory as it was, when osqueryd would refuse it.
    ``info`` is the build's record when the caller has it (a .ext installing itself).
    """
    src = Path(artifact)
    if not src.is_file():
        raise InstallError(f"{src}: no such file")
    if not src.name.endswith(".ext"):
        raise InstallError(f"{src}: osqueryd autoloads only files named *.ext "
                           f"(rename it, e.g. {src.stem}.ext)")
    with open(src, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"#!" and head != _ELF:
        raise InstallError(f"{src}: not an executable (neither an ELF file nor a #! script); "
                           "build one with `osqsdk extension build`")
    owner = (0 if os.geteuid() == 0 else os.geteuid()) if uid is None else uid
    group = (0 if os.geteuid() == 0 else os.getegid()) if gid is None else gid
    folder = Path(directory)
    try:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"{folder}: cannot be created ({exc.strerror})") from None
    dest = folder / src.name
    partial = folder / f".{src.stem}.partial.ext"
    try:
        shutil.copyfile(src, partial)
        os.chmod(partial, 0o755)
        if (owner, group) != (os.geteuid(), os.getegid()):
            os.chown(partial, owner, group)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InstallError(f"{dest}: cannot be written ({exc.strerror})") from None
    problems = [p.replace(str(partial), str(dest))
                for p in launch_problems(partial, osqueryd_uid=owner, autoload=True)]
    if problems:
        partial.unlink(missing_ok=True)
        raise InstallError("osqueryd would refuse to load it:\n" + "\n".join(problems))
    os.replace(partial, dest)
    if info is None:
        info = build_info(dest) or {}
    changed = False
    autoload_path = Path(autoload) if autoload is not None else None
    if autoload_path is not None:
        changed = _add_to_autoload(autoload_path, dest)
    name = info.get("name")
    flags = []
    if autoload_path is not None:
        flags.append(f"--extensions_autoload={autoload_path}")
    flags.append(f"--extensions_require={name}" if name else
                 "--extensions_require=<the name it registers>")
    flags += [str(f) for f in info.get("flags", [])]
    return Installed(dest, name, autoload_path, changed, flags)
