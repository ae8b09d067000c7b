"""The package's public surface and its three import graphs."""

import subprocess
import sys

import pytest

import osqsdk


def test_all_is_sorted_and_complete():
    assert osqsdk.__all__ == sorted(osqsdk.__all__)
    for name in osqsdk.__all__:
        assert getattr(osqsdk, name) is not None
    public = {n for n in dir(osqsdk) if not n.startswith("_")} - {"annotations", "importlib",
                                                                  "TYPE_CHECKING", "Any"}
    submodules = {"errors", "testing", "cli", "lint", "schema", "loki", "runner"}
    assert public - submodules <= set(osqsdk.__all__)


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
