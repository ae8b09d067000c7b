"""The README's examples, taken from the README itself, run as a user would run them."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def blocks(language: str) -> list[tuple[int, str]]:
    """(line, text) of every fenced block in ``language``, in order."""
    text = README.read_text()
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if match.group(1) == language:
            found.append((text.count("\n", 0, match.start()) + 2, match.group(2)))
    return found


def block_with(language: str, marker: str) -> str:
    matching = [text for _, text in blocks(language) if marker in text]
    assert len(matching) == 1, f"README: expected one {language} block with {marker!r}"
    return matching[0]


def user_env() -> dict[str, str]:
    # ``#!/usr/bin/env python3`` must find the interpreter that has osqsdk installed.
    bindir = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}


def test_every_python_block_is_covered_here():
    # A new Python example in the README needs a test below; this one fails until it has.
    covered = ["@osqsdk.table(\"login_shells\"", "osqsdk.LoggerPlugin(", "launch_extension(",
               "lint_paths("]
    for line, text in blocks("python"):
        assert sum(marker in text for marker in covered) == 1, f"README.md:{line}"


def test_the_extension_and_its_test_as_written(tmp_path):
    extension = tmp_path / "login_shells.ext"
    extension.write_text(block_with("python", '@osqsdk.table("login_shells"'))
    extension.chmod(0o755)
    tmp_path.chmod(0o755)
    (tmp_path / "test_login_shells.py").write_text(block_with("python", "launch_extension("))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "test_login_shells.py"], cwd=tmp_path, env=user_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^1 passed", result.stdout, re.M), result.stdout


def test_the_extension_answers_spec_as_documented(tmp_path):
    extension = tmp_path / "login_shells.py"
    extension.write_text(block_with("python", '@osqsdk.table("login_shells"'))
    result = subprocess.run([sys.executable, str(extension), "--spec"], env=user_env(),
                            capture_output=True, text=True, timeout=60, check=True)
    assert '"login_shells"' in result.stdout and '"uid"' in result.stdout


def test_the_plugin_declarations_run(tmp_path):
    code = block_with("python", "osqsdk.LoggerPlugin(")
    code += "\nprint(logger.name, config.name, queries.name)\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=user_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["acme", "acme", "acme"]


def test_the_linter_from_python_runs_on_the_bundled_packs():
    code = block_with("python", "lint_paths(")
    code += "\nprint(len(result.findings), [f.code for f in findings])\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=user_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0 ['OSQ104']", result.stdout


def documented_names() -> list[str]:
    names = set()
    for span in re.findall(r"`([^`\n]+)`", README.read_text()):
        names.update(re.findall(r"\bosqsdk(?:\.[A-Za-z_]\w*)+", span))
    return sorted(names)


def resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr)
        return value
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("name", documented_names())
def test_every_documented_name_exists_and_is_exported(name):
    resolve(name)
    module, _, attr = name.rpartition(".")
    exported = getattr(importlib.import_module(module), "__all__", None)
    if exported is not None and not isinstance(resolve(name), type(os)):
        assert attr in exported, f"{name} is documented but not in {module}.__all__"


def test_documented_names_are_found():
    assert "osqsdk.runner.Scheduler" in documented_names()


def test_the_lint_output_shown_is_the_linters(tmp_path):
    block = block_with("console", "$ osqsdk lint packs/")
    shown = block.split("\n", 1)[1]
    # rebuild the pack from the source lines the output quotes, then lint it
    quoted = dict(re.findall(r"^(\d+) \| (.*)$", shown, re.M))
    lines = ["{", '  "queries": {', "", '    "ok": {"query": "SELECT 1", "interval": 60},',
             "", "  }", "}"]
    for number, text in quoted.items():
        lines[int(number) - 1] = text
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "it.conf").write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "osqsdk", "lint", "--no-config", "packs/"],
                            cwd=tmp_path, env=user_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stdout == shown


@pytest.mark.slow
def test_the_by_hand_ssh_recipe_runs_and_metrics_are_observable(tmp_path):
    import signal
    import time
    import urllib.request

    from tests.e2e.conftest import free_port

    block = block_with("sh", "osqsdk loki receiver --port 3100 &")
    receiver_cmd, run_cmd = block.split("\n", 1)
    # as written, with free ports, a private spool, and a tick a second instead of every 15
    rx_port, metrics_port = free_port(), free_port()
    receiver_cmd = receiver_cmd.removesuffix(" &").replace("3100", str(rx_port))
    run_cmd = (run_cmd.replace("\\\n", " ").replace("3100", str(rx_port))
               .replace("9464", str(metrics_port))
               .replace("/tmp/osqsdk-spool", str(tmp_path / "spool"))
               .replace("--pace 15", "--pace 1"))
    assert "--pace 1 " in run_cmd
    env = user_env()
    receiver = subprocess.Popen(["bash", "-c", f"exec {receiver_cmd}"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = subprocess.Popen(["bash", "-c", run_cmd], env=env, cwd=ROOT, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == f"http://127.0.0.1:{rx_port}"

        def counters() -> dict[str, float]:
            try:
                url = f"http://127.0.0.1:{metrics_port}/metrics"
                text = urllib.request.urlopen(url, timeout=30).read().decode()
            except OSError:
                return {}
            ssh = 'name="pack_incident-response_ssh_logins"'
            return {line.split("{")[0]: float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if ssh in line and 'action="added"' in line}

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and counters().get("osquery_new_results_total") != 1:
            assert run.poll() is None, "the run ended early"
            time.sleep(0.5)
        # the first run's old login, then alice's: one of the two is new
        assert counters() == {"osquery_results_total": 2.0, "osquery_new_results_total": 1.0}
        time.sleep(2)
        assert run.poll() is None  # still serving, /metrics still answers
        assert counters()["osquery_new_results_total"] == 1.0
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
        _, run_err = run.communicate(timeout=30)
        receiver.send_signal(signal.SIGTERM)
        out, err = receiver.communicate(timeout=30)
    assert run.returncode == 0, run_err
    assert receiver.returncode == 0
    assert '"username":"alice"' in out  # the receiver printed the login it stored
    assert '"entries"' in err  # and its counts on the way out


def test_the_fleet_recipe_builds_installs_and_serves_with_nothing_on_the_host(tmp_path,
                                                                             manager):
    """The README's build-once recipe: build on this machine, then install and run the file
    from a directory of its own with an empty environment, the way a bare host would."""
    from osqsdk.extension._autoload import autoload_entries
    from osqsdk.testing import launch_extension
    from tests.conftest import peer_missing

    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        peer_missing("PyInstaller is not installed (pip install 'osqsdk[build]')")
    block = block_with("sh", "osqsdk extension build login_shells.py")
    commands = [line for line in block.replace("\\\n", " ").splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands[0] == "pip install 'osqsdk[build]'"  # this environment has it (test extra)
    build_dir, host = tmp_path / "build", tmp_path / "host"
    build_dir.mkdir()
    host.mkdir()
    (build_dir / "login_shells.py").write_text(block_with("python",
                                                          '@osqsdk.table("login_shells"'))
    built = subprocess.run(["bash", "-c", commands[1]], cwd=build_dir, env=user_env(),
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr
    (host / "login_shells.ext").write_bytes((build_dir / "login_shells.ext").read_bytes())
    (host / "login_shells.ext").chmod(0o755)
    # the host's paths, moved into the test's directory
    target, autoload = tmp_path / "usr-local-lib-osquery-extensions", tmp_path / "extensions.load"
    install = (commands[2].replace("/usr/local/lib/osquery/extensions", str(target))
               .replace("/etc/osquery/extensions.load", str(autoload)))
    assert str(target) in install and str(autoload) in install
    for _ in range(2):  # a second run changes nothing
        done = subprocess.run(["env", "-i", "/bin/sh", "-c", install], cwd=host,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    flags = [line.strip() for line in done.stdout.splitlines() if line.startswith("  --")]
    shown = block_with("", "--extensions_require=login_shells").split()
    assert flags == [f.replace("/etc/osquery/extensions.load", str(autoload)) for f in shown]
    entries = autoload_entries(autoload.read_text())
    assert entries == [target / "login_shells.ext"]
    launch_extension(entries[0], manager.socket_path, interval=0.3, env={},
                     stderr=subprocess.PIPE, text=True)
    manager.wait_for("login_shells", timeout=30)
    rows = manager.call_extension("login_shells", "table", "login_shells", {
        "action": "generate",
        "context": '{"constraints":[{"name":"uid","list":[{"op":2,"expr":"0"}],'
                   '"affinity":"BIGINT"}]}'}).rows
    assert rows == [{"username": "root", "uid": "0", "shell": rows[0]["shell"]}]


def test_the_baseline_recipe_as_written(tmp_path):
    import json
    import shutil

    block = block_with("sh", "--write-baseline lint-baseline.json")
    write, check = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    shutil.copytree(ROOT / "packs", tmp_path / "packs")
    legacy = {"queries": {"old": {"query": "SELECT nmae FROM processes", "interval": 60}}}
    (tmp_path / "packs" / "legacy.conf").write_text(json.dumps(legacy))
    env = user_env()

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    assert run(check.replace(" --baseline lint-baseline.json", "")).returncode == 1
    assert run(write).returncode == 0
    assert run(check).returncode == 0
    legacy["queries"]["new"] = {"query": "SELECT pid FROM procesess", "interval": 60}
    (tmp_path / "packs" / "legacy.conf").write_text(json.dumps(legacy))
    failed = run(check)
    assert failed.returncode == 1 and "procesess" in failed.stdout and "nmae" not in failed.stdout


def test_the_fix_recipe_as_written(tmp_path):
    block = block_with("sh", "osqsdk lint --fix packs/legacy.conf")
    diff, fix = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    (tmp_path / "packs").mkdir()
    pack = tmp_path / "packs" / "legacy.conf"
    text = ('{\n  // kept\n  "queries": {"s": {"query": '
            '"SELECT username FROM users WHERE shell = \\"/bin/sh\\"", "interval": 60}}\n}\n')
    pack.write_text(text)
    env = user_env()
    shown = subprocess.run(["bash", "-c", diff], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 1 and "+  \"queries\"" in shown.stdout and pack.read_text() == text
    done = subprocess.run(["bash", "-c", fix], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert pack.read_text() == text.replace('\\"/bin/sh\\"', "'/bin/sh'")


def test_the_pack_directory_recipe_as_written(tmp_path):
    import json
    import shutil

    block = block_with("sh", "osqsdk pack unpack packs/incident-response.conf")
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    shutil.copytree(ROOT / "packs", tmp_path / "packs")
    env = user_env()
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 1), done.stderr  # 1: the linted output has findings
        assert "Traceback" not in done.stderr
    from osqsdk._osquery.config import parse_osquery_json

    source = parse_osquery_json((tmp_path / "packs" / "incident-response.conf").read_text(),
                                "incident-response.conf")
    built = json.loads((tmp_path / "ir.conf").read_text())
    assert set(built["queries"]) == set(source["queries"])
    assert built["platform"] == source["platform"]
    assert all(int(q.get("interval", 3600)) >= 600 for q in built["queries"].values())
    lean = json.loads((tmp_path / "ir-lean.conf").read_text())["queries"]
    assert set(lean) == set(source["queries"]) - {"authorized_keys"}
