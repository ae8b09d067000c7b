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
    with LokiReceiver() as receiver:
        # osqueryd passes its own flags; the Loki settings come as the extension's extra
        # flags (--loki-*) because the environment must stay empty
        argv = [str(placed), "--socket", manager.socket_path, "--interval", "0.3",
                "--loki-url", receiver.url, "--loki-spool-dir", str(spool),
                "--loki-batch-wait", "50ms"]
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
    for round_ in range(2):
        done = osqsdk_cli("extension", "install", str(artifact), "--dir", str(target),
                          "--autoload", str(autoload))
        assert done.returncode == 0, done.stderr
        placed = target / "table_and_logger.ext"
        assert f"installed {placed}" in done.stdout
        assert ("added to" if round_ == 0 else "already in") in done.stdout
        assert "--extensions_require=built_artifact_test" in done.stdout
        assert f"--extensions_autoload={autoload}" in done.stdout
    assert autoload.read_text() == f"# extensions\n/opt/other.ext\n{placed}\n"
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
    done = osqsdk_cli("extension", "install", str(named), "--no-autoload")
    assert done.returncode == 1 and "only files named *.ext" in done.stderr
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

    deadline = time.monotonic() + 10
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
