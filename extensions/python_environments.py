#!/usr/bin/env python3
"""A table extension: Python packages per environment (system prefixes and virtualenvs).

    SELECT environment, name, version, installer FROM python_environment_packages
    WHERE name = 'requests';

osquery's own python_packages table reads the interpreter's standard directories; this one
also finds virtualenvs (a ``pyvenv.cfg`` up to four directories below each root) and says
which installer put each package there (pip, uv, debian, conda, ...), so a vulnerable
package can be traced to every environment that carries it. It reads package metadata
files only; it never runs an interpreter.

Environment: OSQSDK_PYTHON_ROOTS, a colon-separated list of directories to search
(default /usr:/usr/local:/opt:/srv:/root:/home).
"""

import os
import re
from email.parser import HeaderParser
from pathlib import Path

import osqsdk
from osqsdk import Column

DEFAULT_ROOTS = "/usr:/usr/local:/opt:/srv:/root:/home"
VENV_DEPTH = 4
_LIB = re.compile(r"^python\d+(\.\d+)*t?$")


def site_dirs(prefix: Path):
    """site-packages/dist-packages directories of the Python installation at ``prefix``."""
    for lib in ("lib", "lib64"):
        base = prefix / lib
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if _LIB.match(entry.name) and entry.is_dir():
                for leaf in ("site-packages", "dist-packages"):
                    candidate = Path(entry.path) / leaf
                    if candidate.is_dir():
                        yield candidate
    debian = prefix / "lib" / "python3" / "dist-packages"
    if debian.is_dir():
        yield debian


def virtualenvs(root: Path, depth: int = VENV_DEPTH):
    """Directories under ``root`` holding a pyvenv.cfg, without following symlinks."""
    stack = [(root, 0)]
    while stack:
        directory, level = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(e.name == "pyvenv.cfg" and e.is_file() for e in entries):
            yield directory
            continue
        if level < depth:
            stack.extend((Path(e.path), level + 1) for e in entries
                         if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))


def environments(roots):
    seen = set()
    for root in roots:
        for env in [root, *virtualenvs(root)]:
            key = str(env)
            if key not in seen:
                seen.add(key)
                yield env


def packages(site: Path):
    try:
        entries = list(os.scandir(site))
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(".dist-info"):
            meta = Path(entry.path) / "METADATA"
        elif entry.name.endswith(".egg-info"):
            meta = Path(entry.path) / "PKG-INFO" if entry.is_dir() else Path(entry.path)
        else:
            continue
        try:
            with open(meta, encoding="utf-8", errors="replace") as handle:
                headers = HeaderParser().parse(handle, headersonly=True)
        except OSError:
            continue
        installer = ""
        try:
            installer = (Path(entry.path) / "INSTALLER").read_text(errors="replace").strip()
        except OSError:
            pass
        yield {"name": headers.get("Name", ""), "version": headers.get("Version", ""),
               "installer": installer, "path": entry.path}


def interpreter(env: Path) -> str:
    for name in ("bin/python3", "bin/python", "Scripts/python.exe"):
        candidate = env / name
        if candidate.exists():
            return str(candidate)
    return ""


def generate(context):
    roots = [Path(p) for p in os.environ.get("OSQSDK_PYTHON_ROOTS", DEFAULT_ROOTS).split(":") if p]
    wanted_envs = {str(v) for v in context.equals("environment")}
    wanted_names = {str(v).lower() for v in context.equals("name")}
    envs = [Path(e) for e in wanted_envs] if wanted_envs else environments(roots)
    for env in envs:
        is_venv = (env / "pyvenv.cfg").is_file()
        for site in site_dirs(env):
            for package in packages(site):
                if wanted_names and package["name"].lower() not in wanted_names:
                    continue
                yield {"environment": str(env), "interpreter": interpreter(env),
                       "site_packages": str(site), "is_virtualenv": is_venv, **package}


table = osqsdk.TablePlugin(
    "python_environment_packages",
    columns=[
        Column("environment", index=True, description="Installation prefix or virtualenv root"),
        Column("interpreter", description="The environment's python executable, if present"),
        Column("site_packages", description="The site-packages directory"),
        Column("is_virtualenv", "INTEGER", description="1 if the environment has a pyvenv.cfg"),
        Column("name", index=True, description="Distribution name from its metadata"),
        Column("version", description="Distribution version"),
        Column("installer", description="Tool that installed it (INSTALLER file)"),
        Column("path", description="The .dist-info or .egg-info path"),
    ],
    generate=generate,
    description="Python packages per environment, virtualenvs included.",
    platforms=["linux", "darwin"],
)

if __name__ == "__main__":
    osqsdk.run("osqsdk_python_environments", [table], version="1.0.0")
