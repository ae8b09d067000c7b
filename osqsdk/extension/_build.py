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
    placed: bool = True  #: False when the same file was already installed


    def report(self) -> str:
        """What was done and the osqueryd flags to add, as printed to the user."""
        lines = [f"installed {self.path}" if self.placed else
                 f"{self.path} is already installed (unchanged)"]
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
        if exc.lineno is None:  # e.g. null bytes: not a text file at all
            raise BuildError(f"{path}: not Python source: {exc.msg}") from None
        raise BuildError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError as exc:  # null bytes
        raise BuildError(f"{path}: not Python source ({exc})") from None
    out = Path(output)
    if out.is_dir():
        raise BuildError(f"{out}: is a directory; give the file to write, e.g. "
                         f"{out / (path.stem + '.ext')}")
    if out.exists() and not out.is_file():
        raise BuildError(f"{out}: exists and is not a regular file; not replaced")
    if not out.parent.is_dir():
        raise BuildError(f"{out.parent}: no such directory")
    if not os.access(out.parent, os.W_OK):
        raise BuildError(f"{out.parent}: not writable")
    try:
        import PyInstaller  # type: ignore[import-untyped]  # noqa: F401  (say it is missing)
    except ImportError:
        raise BuildError("building an .ext needs PyInstaller: pip install 'osqsdk[build]'"
                         ) from None
    from osqsdk._version import __version__

    has_main = _has_main_block(tree)
    _check_loads(path, has_main)
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
        try:
            shutil.copyfile(built, tmp_out)
            os.chmod(tmp_out, 0o755)
            os.replace(tmp_out, out)
        except OSError as exc:
            _unlink_quietly(tmp_out)
            raise BuildError(f"{out}: cannot be written ({exc.strerror})") from None
    _check_starts(out)
    return Built(out, out.stat().st_size, info)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


_LOAD_CHECK = """
import runpy, sys, traceback
path, need_plugins = sys.argv[1], sys.argv[2] == "1"
sys.path.insert(0, __import__("os").path.dirname(path))
try:
    if need_plugins:
        from osqsdk.extension._loader import load_file
        load_file(path)
    else:
        runpy.run_path(path, run_name="__osqsdk_extension__")
except SystemExit:
    pass
except BaseException as exc:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    where = f"{path}:{frames[-1].lineno}" if frames else path
    print(f"{where}: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def _check_loads(path: Path, has_main: bool) -> None:
    """Run the file's top level (not its main block) in a fresh interpreter, as the .ext
    will: a missing module or, for a file without a main block, no plugins, is said now
    rather than by the .ext on every start."""
    try:
        done = subprocess.run([sys.executable, "-c", _LOAD_CHECK, str(path.resolve()),
                               "0" if has_main else "1"], capture_output=True, text=True,
                              errors="replace", timeout=120, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{path}: loading it took more than 120 s") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise BuildError(f"cannot build {path}: loading it failed: "
                         f"{lines[-1] if lines else f'exit {done.returncode}'}")


def _check_starts(out: Path) -> None:
    """The built file starts and answers (runs none of the extension's code)."""
    try:
        done = subprocess.run([str(out.resolve()), BUILD_INFO_FLAG], capture_output=True,
                              text=True, errors="replace", timeout=_INFO_TIMEOUT, check=False,
                              env={"PATH": os.defpath}, cwd="/", stdin=subprocess.DEVNULL)
        json.loads(done.stdout)
        if done.returncode == 0:
            return
    except (OSError, subprocess.TimeoutExpired, ValueError):
        pass
    raise BuildError(f"{out}: built, but it does not start on this machine")


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
        raise InstallError(f"{src}: no such file" if not src.exists() else
                           f"{src}: not a regular file")
    if autoload is not None and not src.name.endswith(".ext"):
        raise InstallError(f"{src}: osqueryd autoloads only files named *.ext "
                           f"(rename it, e.g. {src.stem}.ext, or use --no-autoload)")
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
    autoload_path = Path(autoload) if autoload is not None else None
    if autoload_path is not None:
        _check_writable(autoload_path)
    placed = not _same_install(src, dest, owner, group)
    if placed:
        partial = folder / f".{src.stem}.partial{src.suffix}"
        try:
            shutil.copyfile(src, partial)
            os.chmod(partial, 0o755)
            if (owner, group) != (os.geteuid(), os.getegid()):
                os.chown(partial, owner, group)
        except OSError as exc:
            _unlink_quietly(partial)
            raise InstallError(f"{dest}: cannot be written ({exc.strerror})") from None
        problems = [p.replace(str(partial), str(dest)) for p in
                    launch_problems(partial, osqueryd_uid=owner,
                                    autoload=autoload_path is not None)]
        if problems:
            _unlink_quietly(partial)
            raise InstallError("osqueryd would refuse to load it:\n" + "\n".join(problems))
        os.replace(partial, dest)
    else:
        problems = launch_problems(dest, osqueryd_uid=owner, autoload=autoload_path is not None)
        if problems:
            raise InstallError("osqueryd would refuse to load it:\n" + "\n".join(problems))
    if info is None:
        info = build_info(dest) or {}
    changed = False
    if autoload_path is not None:
        try:
            changed = _add_to_autoload(autoload_path, dest)
        except OSError as exc:
            raise InstallError(f"{autoload_path}: cannot be written ({exc.strerror}); "
                               f"{dest} is in place but not listed") from None
    name = info.get("name")
    flags = []
    if autoload_path is not None:
        flags.append(f"--extensions_autoload={autoload_path}")
    flags.append(f"--extensions_require={name}" if name else
                 "--extensions_require=<the name it registers>")
    flags += [str(f) for f in info.get("flags", [])]
    return Installed(dest, name, autoload_path, changed, flags, placed)


def _same_install(src: Path, dest: Path, owner: int, group: int) -> bool:
    """``dest`` is already ``src``, owned and moded as it would be installed."""
    try:
        st = dest.lstat()
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o755 or \
                (st.st_uid, st.st_gid) != (owner, group) or st.st_size != src.stat().st_size:
            return False
        if src.resolve() == dest.resolve():
            return True
        with open(src, "rb") as a, open(dest, "rb") as b:
            while True:
                x, y = a.read(1 << 20), b.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def _check_writable(autoload: Path) -> None:
    """Fail before anything is copied when the autoload file cannot be updated."""
    folder = autoload.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    target = autoload if autoload.exists() else folder
    if autoload.exists() and not autoload.is_file():
        raise InstallError(f"{autoload}: not a regular file")
    if not os.access(target, os.W_OK):
        raise InstallError(f"{autoload}: cannot be written (no write permission on "
                           f"{target}); nothing was installed")
