"""`osqsdk extension build` and `install`: one .ext file that runs on a host with nothing
installed, checked by running it with an empty environment from an empty directory and
reading, from /proc, every file its processes mapped."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from osqsdk.testing import LokiReceiver, launch_extension
from tests.conftest import ROOT, peer_missing
from tests.loki.conftest import result_line
from tests.sdk.test_logger import EVENT

SOURCE = Path(__file__).parent / "files" / "table_and_logger.py"
#: Where the test run's own Python and packages live: a built .ext must not touch them.
FORBIDDEN = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, ROOT)})


def osqsdk_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "osqsdk", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=1800, check=False)


def build(tmp: Path, source: str, out_name: str) -> Path:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        peer_missing("PyInstaller is not installed (pip install 'osqsdk[build]')")
    out = tmp / out_name
    done = osqsdk_cli("extension", "build", source, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{out}: " in done.stdout and "registers as" in done.stdout
    return out


def on_empty_host(artifact: Path, tmp: Path) -> Path:
    """A copy of ``artifact`` alone in a new directory."""
    host = tmp / "host"
    host.mkdir()
    placed = host / artifact.name
    shutil.copy2(artifact, placed)
    return placed


def family(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent:
                found.append(int(entry))
                frontier.append(int(entry))
    return found


def mapped_files(pids: list[int]) -> set[str]:
    files = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6 and parts[5].startswith("/"):
                        files.add(parts[5].strip())
        except OSError:
            continue
    return files


def environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        items = [i.decode(errors="replace") for i in f.read().split(b"\0") if i]
    return dict(i.split("=", 1) for i in items if "=" in i)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build"), str(SOURCE), "table_and_logger.ext")


@pytest.fixture(scope="module")
def loki_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("build-loki"), "loki", "loki.ext")


@pytest.fixture
def procs():
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=15)


def test_built_file_serves_a_table_and_a_logger_with_an_empty_environment(
        artifact, manager, tmp_path, procs):
    placed = on_empty_host(artifact, tmp_path)
    proc = launch_extension(placed, manager.socket_path, interval=0.3, env={},
                            cwd=placed.parent, stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    ext = manager.wait_for("built_artifact_test", timeout=30)
    assert ext.version == "2.0.1"
    assert manager.call_extension("built_artifact_test", "logger", "keeper",
                                  {"string": EVENT, "category": "event"}).code == 0
    rows = manager.call_extension("built_artifact_test", "table", "seen_lines",
                                  {"action": "generate", "context": "{}"}).rows
    assert [(r["n"], r["name"]) for r in rows] == [("0", "pack_ir_ssh_logins")]
    # the interpreter is the .ext itself, and nothing of this test run's Python is touched
    assert rows[0]["python"] == str(placed)
    pids = family(proc.pid)
    assert len(pids) >= 2  # PyInstaller's one-file start: the .ext, then its Python child
    for pid in pids:  # nothing that could point it at an interpreter or packages
        env = environ(pid)
        assert not [k for k in env if k.startswith("PYTHON") or
                    k in ("PATH", "VIRTUAL_ENV", "HOME", "CONDA_PREFIX")], env
        # PyInstaller points its Python child at the libraries it unpacked, and only there
        libs = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
        assert all(os.path.basename(p).startswith("_MEI") for p in libs), libs
    files = mapped_files(pids)
    assert any(f.endswith("libpython3." + f.split("libpython3.")[-1]) for f in files
               if "libpython3." in f), "no Python library mapped: is it really the .ext?"
    leaked = sorted(f for f in files if f.startswith(FORBIDDEN))
    assert not leaked, f"the .ext used files of the build machine's Python: {leaked}"


def test_built_file_spec_check_and_build_info(artifact, tmp_path):
    placed = on_empty_host(artifact, tmp_path)
    spec = subprocess.run([str(placed), "--spec"], capture_output=True, text=True, env={},
                          cwd=placed.parent, timeout=60, check=False)
    assert spec.returncode == 0, spec.stderr
    assert [t["name"] for t in json.loads(spec.stdout)] == ["seen_lines"]
    check = osqsdk_cli("extension", "check", str(placed))
    assert check.returncode == 0 and check.stdout.strip() == f"{placed}: ok"
    info = subprocess.run([str(placed), "--osqsdk-build-info"], capture_output=True, env={},
                          text=True, timeout=60, check=True)
    facts = json.loads(info.stdout)
    assert (facts["name"], facts["version"], facts["source"]) == (
        "built_artifact_test", "2.0.1", "table_and_logger.py")
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    refused = subprocess.run([str(placed), "--osqsdk-install", "--dir", str(sticky),
                              "--no-autoload"], capture_output=True, text=True, env={},
                             timeout=60, check=False)
    assert refused.returncode == 1 and "sticky bit" in refused.stderr, refused.stderr
    assert list(sticky.iterdir()) == [] and "Traceback" not in refused.stderr
    bad = subprocess.run([str(placed), "--timeout", "soon"], capture_output=True, text=True,
                         env={}, timeout=60, check=False)
    assert bad.returncode == 64 and "not a number of seconds" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_file_that_only_defines_plugins_is_served_like_extension_run(manager, tmp_path,
                                                                         procs):
    source = tmp_path / "plugins_only.py"
    source.write_text(SOURCE.read_text().split("if __name__")[0]
                      + 'EXTENSION_NAME = "plugins_only"\n')
    placed = on_empty_host(build(tmp_path, str(source), "plugins_only.ext"), tmp_path)
    procs.append(launch_extension(placed, manager.socket_path, interval=0.3, env={},
                                  stderr=subprocess.PIPE, text=True))
    manager.wait_for("plugins_only", timeout=30)
    rows = manager.call_extension("plugins_only", "table", "seen_lines",
                                  {"action": "generate", "context": "{}"}).rows
    assert rows == []


def test_loki_artifact_ships_to_the_receiver_from_an_empty_environment(loki_artifact, manager,
                                                                       tmp_path, procs):
    placed = on_empty_host(loki_artifact, tmp_path)
    spool = tmp_path / "spool"
    # The .ext runs with an empty environment, so under CI's faketime runs it keeps the
    # real clock while this test's receiver has the moved one: time limits off on both sides.
    with LokiReceiver(reject_old_samples_max_age=None, creation_grace_period=None,
                      out_of_order_window=None) as receiver:
        # osqueryd passes its own flags; the Loki settings come as the extension's extra
        # flags (--loki-*) because the environment must stay empty
        argv = [str(placed), "--socket", manager.socket_path, "--interval", "0.3",
                "--loki-url", receiver.url, "--loki-spool-dir", str(spool),
                "--loki-batch-wait", "50ms", "--loki-max-age", "0", "--loki-max-future", "0"]
        proc = subprocess.Popen(argv, env={}, cwd=placed.parent, stderr=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        manager.wait_for("osqsdk_loki", timeout=30)
        lines = [result_line(i) for i in range(50)]
        for line in lines:
            assert manager.call_extension("osqsdk_loki", "logger", "loki",
                                          {"string": line, "category": "event"}).code == 0
        assert receiver.wait_for_entries(50, timeout=30)
        shipped = [line for entries in receiver.streams().values() for _, line, _ in entries]
        assert sorted(shipped) == sorted(lines)
        pids = family(proc.pid)
        # the encoder process is the .ext again, started in its encoder role
        roles = [environ(pid).get("OSQSDK_FROZEN_ROLE") for pid in pids]
        assert "loki-encoder" in roles, roles
        leaked = sorted(f for f in mapped_files(pids) if f.startswith(FORBIDDEN))
        assert not leaked, leaked
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_install_places_it_as_osqueryd_needs_and_lists_it_once(artifact, tmp_path):
    target, autoload = tmp_path / "lib" / "osquery", tmp_path / "etc" / "extensions.load"
    autoload.parent.mkdir()
    autoload.write_text("# extensions\n/opt/other.ext")
    placed = target / "table_and_logger.ext"
    inodes = []
    for round_ in range(2):
        done = osqsdk_cli("extension", "install", str(artifact), "--dir", str(target),
                          "--autoload", str(autoload))
        assert done.returncode == 0, done.stderr
        assert (f"installed {placed}" if round_ == 0 else
                f"{placed} is already installed (unchanged)") in done.stdout
        assert ("added to" if round_ == 0 else "already in") in done.stdout
        inodes.append((placed.stat().st_ino, placed.stat().st_mtime_ns))
        assert "--extensions_require=built_artifact_test" in done.stdout
        assert f"--extensions_autoload={autoload}" in done.stdout
    assert autoload.read_text() == f"# extensions\n/opt/other.ext\n{placed}\n"
    assert inodes[0] == inodes[1]  # the second run changed nothing
    st = placed.stat()
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == os.geteuid()
    assert placed.read_bytes() == artifact.read_bytes()
    assert osqsdk_cli("extension", "check", "--autoload", str(autoload)).stdout.count(
        ": ok") == 1  # /opt/other.ext does not exist; ours is fine


def test_install_refuses_what_osqueryd_would_refuse(tmp_path):
    script = tmp_path / "tool.ext"
    script.write_text("print('no shebang')\n")
    done = osqsdk_cli("extension", "install", str(script), "--dir", str(tmp_path / "d"),
                      "--no-autoload")
    assert done.returncode == 1 and "neither an ELF file nor a #! script" in done.stderr
    named = tmp_path / "tool.py"
    named.write_text("#!/usr/bin/env python3\n")
    done = osqsdk_cli("extension", "install", str(named), "--dir", str(tmp_path / "d"),
                      "--autoload", str(tmp_path / "extensions.load"))
    assert done.returncode == 1 and "only files named *.ext" in done.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "extensions.load").exists()
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    good = tmp_path / "good.ext"
    good.write_text("#!/usr/bin/env python3\n")
    done = osqsdk_cli("extension", "install", str(good), "--dir", str(sticky), "--no-autoload")
    assert done.returncode == 1 and "sticky bit" in done.stderr
    assert list(sticky.iterdir()) == []  # nothing left behind
    assert "Traceback" not in done.stderr


def test_build_errors_name_the_file_and_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import osqsdk\n\ndef oops(:\n")
    done = osqsdk_cli("extension", "build", str(broken), "-o", str(tmp_path / "b.ext"))
    assert done.returncode == 1 and f"{broken}:3: syntax error" in done.stderr
    done = osqsdk_cli("extension", "build", "no-such-thing", "-o", str(tmp_path / "b.ext"))
    assert done.returncode == 2 and "not a ready-made extension" in done.stderr
    listed = osqsdk_cli("extension", "build", "--list")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "loki", "file-logger", "directory-config", "spool-distributed", "python-environments"]
    assert "Traceback" not in done.stderr + listed.stderr


def test_killing_the_started_process_stops_the_extension_too(artifact, manager, tmp_path,
                                                             procs):
    # osqueryd knows only the pid it forked: PyInstaller's starter. When that one is killed
    # outright, the Python it started must not go on serving under the same name.
    placed = on_empty_host(artifact, tmp_path)
    proc = launch_extension(placed, manager.socket_path, interval=0.3, env={},
                            stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    manager.wait_for("built_artifact_test", timeout=30)
    pids = family(proc.pid)
    assert len(pids) == 2
    os.kill(pids[0], 9)

    def registered() -> bool:
        return any(e.name == "built_artifact_test" for e in manager.extensions_by_uuid.values())

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (registered() or alive(pids[1])):
        time.sleep(0.05)
    assert not alive(pids[1]), "the extension's Python outlived its starter"
    assert not registered(), "still registered after its starter died"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_source_that_cannot_load_is_refused_before_building(tmp_path):
    missing = tmp_path / "imp.py"
    missing.write_text("import osqsdk\nimport no_such_module_here\n\n"
                       "if __name__ == '__main__':\n    osqsdk.run('imp', [])\n")
    done = osqsdk_cli("extension", "build", str(missing), "-o", str(tmp_path / "imp.ext"))
    assert done.returncode == 1, done.stderr
    assert f"{missing.resolve()}:2: ModuleNotFoundError: No module named " \
           "'no_such_module_here'" in done.stderr
    empty = tmp_path / "empty.py"
    empty.write_text("")
    done = osqsdk_cli("extension", "build", str(empty), "-o", str(tmp_path / "empty.ext"))
    assert done.returncode == 1 and "defines no plugins" in done.stderr
    binary = tmp_path / "bin.py"
    binary.write_bytes(b"\x00\x01\x02")
    done = osqsdk_cli("extension", "build", str(binary), "-o", str(tmp_path / "bin.ext"))
    assert done.returncode == 1 and f"{binary}: not Python source" in done.stderr
    assert "None" not in done.stderr
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = osqsdk_cli("extension", "build", str(SOURCE), "-o", str(fifo))
    assert done.returncode == 1 and "exists and is not a regular file" in done.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert not list(tmp_path.glob("*.ext")) and "Traceback" not in done.stderr


@pytest.fixture
def read_only_dir(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        peer_missing(f"cannot mount a read-only tmpfs: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_unwritable_places_are_one_line_errors_and_leave_nothing_half_done(
        artifact, tmp_path, read_only_dir):
    done = osqsdk_cli("extension", "build", str(SOURCE), "-o", str(read_only_dir / "x.ext"))
    assert done.returncode == 1 and f"{read_only_dir}: not writable" in done.stderr
    placed = on_empty_host(artifact, tmp_path)
    refused = subprocess.run([str(placed), "--osqsdk-install", "--dir", str(read_only_dir),
                              "--no-autoload"], capture_output=True, text=True, env={},
                             timeout=60, check=False)
    assert refused.returncode == 1 and "cannot be written" in refused.stderr
    target = tmp_path / "lib"
    refused = subprocess.run([str(placed), "--osqsdk-install", "--dir", str(target),
                              "--autoload", str(read_only_dir / "extensions.load")],
                             capture_output=True, text=True, env={}, timeout=60, check=False)
    assert refused.returncode == 1 and "nothing was installed" in refused.stderr
    assert not target.exists() or not list(target.iterdir())
    for out in (done, refused):
        said = [line for line in out.stderr.splitlines() if not line.startswith("building ")]
        assert "Traceback" not in out.stderr and len(said) == 1, out.stderr


def test_no_autoload_installs_a_file_of_any_name_and_help_shows_the_build_flags(
        artifact, tmp_path):
    renamed = tmp_path / "tool"
    shutil.copy2(artifact, renamed)
    done = osqsdk_cli("extension", "install", str(renamed), "--dir", str(tmp_path / "d"),
                      "--no-autoload")
    assert done.returncode == 0 and (tmp_path / "d" / "tool").is_file(), done.stderr
    shown = subprocess.run([str(artifact), "--help"], capture_output=True, text=True, env={},
                           timeout=60, check=False)
    assert shown.returncode == 0
    assert "--osqsdk-install" in shown.stdout and "--osqsdk-build-info" in shown.stdout
    assert "--socket SOCKET" in shown.stdout  # and then the extension's own flags
