"""A non-editable `pip install .` into a fresh venv works from any directory."""

import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    env_dir = tmp_path_factory.mktemp("venv")
    # The dependencies come from the environment running the tests (no network needed),
    # appended to the new venv's path after its own site-packages; osqsdk itself is
    # installed into the venv from a wheel built from the source tree.
    venv.create(env_dir, system_site_packages=False, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.stdout.strip()) / "_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                             "--no-build-isolation", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return env_dir


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    python = installed / "bin" / "python"
    out = subprocess.run([str(python), "-c", "import osqsdk, osqsdk.extension._server; print(osqsdk.__file__)"],
                         capture_output=True, text=True, cwd="/", check=True).stdout.strip()
    assert out.startswith(str(installed)), out


def test_console_script_and_module_entry_points(installed):
    script = subprocess.run([str(installed / "bin" / "osqsdk"), "--version"], capture_output=True,
                            text=True, cwd="/", check=True)
    assert "osqsdk" in script.stdout
    spec = subprocess.run([str(installed / "bin" / "python"), "-m", "osqsdk", "extension", "spec",
                           str(ROOT / "tests" / "sdk" / "files" / "basic_ext.py")],
                          capture_output=True, text=True, cwd="/", check=True)
    assert '"acme_users"' in spec.stdout


def test_wheel_carries_the_thrift_bindings_and_schema_data(installed):
    site = next(installed.glob("lib/python*/site-packages"))
    assert (site / "osqsdk" / "extension" / "_wire" / "_gen" / "Extension.py").exists()
    assert (site / "osqsdk" / "extension" / "_wire" / "osquery.thrift").exists()
    shipped = {p.name for p in (site / "osqsdk" / "_data" / "schema").iterdir()}
    source = {p.name for p in (ROOT / "schema").iterdir()}
    assert shipped == source


def test_wheel_carries_the_ready_made_extensions_and_the_rules_page(installed):
    site = next(installed.glob("lib/python*/site-packages"))
    shipped = {p.name for p in (site / "osqsdk" / "_data" / "extensions").glob("*.py")}
    assert shipped == {p.name for p in (ROOT / "extensions").glob("*.py")}
    assert (site / "osqsdk" / "lint" / "rules" / "rules.md").is_file()
    found = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "from osqsdk.extension._builtin import builtin_file, find_builtin;"
                            "print(builtin_file(find_builtin('loki')))"],
                           capture_output=True, text=True, cwd="/", check=True).stdout.strip()
    assert found == str(site / "osqsdk" / "_data" / "extensions" / "loki_logger.py")
