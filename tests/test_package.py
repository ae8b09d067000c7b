"""The package's public surface and its three import graphs."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import osqsdk


def test_every_exported_name_resolves_and_type_checkers_see_the_same_names():
    for name in osqsdk.__all__:
        assert getattr(osqsdk, name) is not None, name
    # The TYPE_CHECKING imports are what mypy and editors see: the same names as __all__.
    tree = ast.parse(Path(osqsdk.__file__).read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    seen = {alias.asname or alias.name for node in guarded.body
            if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen | {"__version__"} == set(osqsdk.__all__)
    # and the lazy table that resolves them at run time holds the same names
    assert set(osqsdk._EXPORTS) | {"__version__"} == set(osqsdk.__all__)


def test_nothing_public_is_left_out_of_all():
    # In a fresh interpreter: pytest's assertion rewriting adds names to modules it imports.
    code = (
        "import importlib, json, pkgutil, osqsdk\n"
        "subs = {m.name for m in pkgutil.iter_modules(osqsdk.__path__)}\n"
        "for name in osqsdk.__all__: getattr(osqsdk, name)\n"
        "public = {n for n in dir(osqsdk) if not n.startswith('_')}\n"
        "print(json.dumps(sorted(public - subs - set(osqsdk.__all__))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    # the module's own imports are the only public names that are not exports
    assert json.loads(out) == ["Any", "TYPE_CHECKING", "annotations", "importlib"]


def run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("code", [
    # import osqsdk never loads sqlglot or click (nor Thrift until the server is used).
    "import osqsdk, sys; assert not {'sqlglot','click','thrift'} & {m.split('.')[0] for m in sys.modules}",
    # Declaring plugins does not need Thrift either.
    "import osqsdk, sys; osqsdk.TablePlugin; osqsdk.Column; assert 'thrift' not in sys.modules",
    # The server does, and still no sqlglot or click.
    "import osqsdk, sys; osqsdk.run; assert 'thrift' in sys.modules; "
    "assert not {'sqlglot','click'} & {m.split('.')[0] for m in sys.modules}",
])
def test_import_graphs(code):
    run(code)


def test_python_dash_m_osqsdk_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "osqsdk", "--help"], capture_output=True,
                            text=True, check=True)
    assert "extension" in result.stdout
    version = subprocess.run([sys.executable, "-m", "osqsdk", "--version"], capture_output=True,
                             text=True, check=True)
    assert osqsdk.__version__ in version.stdout
