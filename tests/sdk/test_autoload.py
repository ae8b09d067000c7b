"""Launching an extension file the way osqueryd does (docs/protocol.md §2.2)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from osqsdk import ExitCode, PluginDefinitionError
from osqsdk.extension._autoload import autoload_entries, launch_argv, launch_problems
from osqsdk.testing import ExtensionExited, launch_extension

ROOT = Path(__file__).resolve().parents[2]
BASIC = Path(__file__).parent / "files" / "basic_ext.py"


@pytest.fixture
def extdir():
    # Not under /tmp itself: osqueryd refuses directories with the sticky bit.
    path = Path(tempfile.mkdtemp(prefix="osqsdk-ext-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def install(directory: Path, name: str = "acme.ext", mode: int = 0o750) -> Path:
    target = directory / name
    target.write_text(f"#!{sys.executable}\n" + BASIC.read_text())
    target.chmod(mode)
    return target


def test_autoload_file_format(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.ext").write_text("")
    (tmp_path / "d" / "sub" / "b.ext").write_text("")
    text = "# comment\n; also a comment\n\n   /opt/x.ext   \nd\n"
    assert autoload_entries(text, tmp_path) == [
        Path("/opt/x.ext"), tmp_path / "d" / "a.ext", tmp_path / "d" / "sub" / "b.ext"]


def test_a_well_installed_extension_passes(extdir):
    assert launch_problems(install(extdir)) == []


@pytest.mark.parametrize("name, mode, message", [
    ("acme.ext", 0o640, "not executable by its owner"),
    ("acme.ext", 0o757, "writable by everyone"),
    ("acme.py", 0o750, "must end in .ext"),
])
def test_osqueryds_permission_rules(extdir, name, mode, message):
    problems = launch_problems(install(extdir, name, mode))
    assert any(message in p for p in problems), problems


def test_sticky_directories_are_refused(extdir):
    extdir.chmod(0o1777)
    assert any("sticky bit" in p for p in launch_problems(install(extdir)))


def test_owner_must_be_root_or_osqueryds_user(extdir):
    path = install(extdir)
    if os.getuid() == 0:
        os.chown(path, 12345, -1)  # root-owned files always pass, so give it to someone else
    other = os.getuid() + 23456
    assert any("owned by uid" in p for p in launch_problems(path, osqueryd_uid=other))


def test_script_without_shebang_is_refused(extdir):
    path = extdir / "bare.ext"
    path.write_text(BASIC.read_text().split("\n", 1)[1])
    path.chmod(0o750)
    assert any("#!" in p for p in launch_problems(path))


def test_extension_flag_skips_only_the_suffix_rule(extdir):
    path = install(extdir, "acme.py")
    assert launch_problems(path, autoload=False) == []


def test_launch_argv_is_osqueryds():
    assert launch_argv("/x.ext", "/var/osquery/osquery.em", timeout="3", interval="3",
                       verbose=True) == ["/x.ext", "--verbose", "--socket",
                                         "/var/osquery/osquery.em", "--timeout", "3",
                                         "--interval", "3"]


def test_osqueryd_style_launch_registers_and_sees_its_pid(extdir, manager):
    path = install(extdir)
    proc = launch_extension(path, manager.socket_path, interval=0.3, verbose=True,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EXT_NAME": "launched"})
    try:
        manager.wait_for("launched")
        manager.stop()
        assert proc.wait(15) == ExitCode.OK
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_launch_refuses_what_osqueryd_would(extdir, manager):
    path = install(extdir, mode=0o757)
    with pytest.raises(PluginDefinitionError, match="writable by everyone"):
        launch_extension(path, manager.socket_path)


def test_extension_check_command(extdir, tmp_path):
    good = install(extdir)
    bad = install(extdir, "bad.ext", 0o644)
    load = tmp_path / "extensions.load"
    load.write_text(f"# autoload\n{good}\n{bad}\n")
    result = subprocess.run([sys.executable, "-m", "osqsdk", "extension", "check",
                             "--autoload", str(load)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{good}: ok" in result.stdout
    assert f"{bad}: not executable by its owner" in result.stdout


def test_a_relative_path_is_the_file_in_the_current_directory(extdir, manager, monkeypatch):
    install(extdir, "relative.ext")
    monkeypatch.chdir(extdir)
    # not a PATH lookup: a bare name is the file here, as osqueryd executes what it is given
    proc = launch_extension("relative.ext", manager.socket_path, interval=0.3,
                            env={**os.environ, "EXT_NAME": "relative"})
    assert proc.args[-7] == str(extdir / "relative.ext")
    manager.wait_for("relative")
    manager.stop()
    assert proc.wait(15) == ExitCode.OK


def test_a_child_that_dies_before_registering_is_reported_at_once(extdir, manager):
    path = extdir / "dies.ext"
    path.write_text(f"#!{sys.executable}\nimport sys\n"
                    "print('cannot open /etc/acme.conf', file=sys.stderr)\nsys.exit(3)\n")
    path.chmod(0o750)
    launch_extension(path, manager.socket_path)
    started = time.monotonic()
    with pytest.raises(ExtensionExited) as raised:
        manager.wait_for("acme", timeout=120)
    assert time.monotonic() - started < 60  # not the full timeout
    message = str(raised.value)
    assert f"{path} exited with code 3" in message
    assert "cannot open /etc/acme.conf" in message
    assert raised.value.processes[0].returncode == 3
