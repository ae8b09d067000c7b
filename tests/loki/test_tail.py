"""``osqsdk loki tail``: ship a log file, across restarts, rotation and a kill -9."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time

from osqsdk import Severity
from osqsdk.cli import main
from osqsdk.loki._tail import _GLOG, _glog_status
from tests.conftest import wait_until
from tests.loki.conftest import result_line


def glog_line(when: float) -> str:
    """A glog status line as osqueryd writes it: local time, no year."""
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(when))
    return f"I{stamp}.437271  2849 scheduler.cpp:105] Executing scheduled query pack_ir_last"


def tail(path, receiver, spool, *extra) -> int:
    return main(["loki", "tail", str(path), "--url", receiver.url, "--spool", str(spool),
                 "--once", "--set", "batch_wait=50ms", "--set", "min_backoff=10ms",
                 "--set", "max_backoff=100ms", *extra])


def write(path, lines, mode="a"):
    with open(path, mode) as f:
        f.write("".join(line + "\n" for line in lines))


def test_once_ships_the_file_and_exits(tmp_path, receiver):
    log = tmp_path / "osqueryd.results.log"
    lines = [result_line(i) for i in range(50)]
    write(log, lines)
    assert tail(log, receiver, tmp_path / "spool") == 0
    assert receiver.lines() == lines


def test_a_restart_neither_skips_nor_repeats_and_rotation_is_followed(tmp_path, receiver):
    log = tmp_path / "osqueryd.results.log"
    spool = tmp_path / "spool"
    first = [result_line(i) for i in range(30)]
    write(log, first)
    assert tail(log, receiver, spool) == 0
    second = [result_line(i) for i in range(30, 45)]
    write(log, second)
    os.rename(log, tmp_path / "osqueryd.results.log.1")  # rotated while we were stopped
    third = [result_line(i) for i in range(45, 60)]
    write(log, third, "w")
    assert tail(log, receiver, spool) == 0
    assert receiver.lines() == first + second + third
    assert receiver.duplicates == 0
    requests = receiver.stats()["requests"]
    assert tail(log, receiver, spool) == 0  # nothing new: nothing sent
    assert receiver.stats()["requests"] == requests
    assert len(receiver.lines()) == 60


def test_truncation_is_read_from_the_start(tmp_path, receiver):
    log = tmp_path / "r.log"
    spool = tmp_path / "spool"
    write(log, [result_line(i) for i in range(10)])
    assert tail(log, receiver, spool) == 0
    write(log, [result_line(i) for i in range(100, 103)], "w")  # copytruncate + new lines
    assert tail(log, receiver, spool) == 0
    assert len(receiver.lines()) == 13


def test_status_lines_glog_and_json_and_problems_named_by_line(tmp_path, receiver, caplog):
    log = tmp_path / "osqueryd.INFO"
    write(log, [glog_line(time.time() - 60),
                f'{{"hostIdentifier":"h","calendarTime":"c","unixTime":{int(time.time())},'
                '"severity":1,"filename":"f.cpp","line":3,"message":"warned"}',
                "not osquery at all", '{"name": 5}', "I1332 10:00:00.0  1 a.cpp:1] no such day"])
    assert tail(log, receiver, tmp_path / "spool", "--host", "box-1") == 0
    streams = receiver.streams()
    assert {labels for labels in streams} == {
        '{host="box-1", job="osquery", log_type="status", service_name="osquery"}',
        '{host="h", job="osquery", log_type="status", service_name="osquery"}',
        '{job="osquery", log_type="unparsed", service_name="osquery"}'}
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{log}:3: neither JSON nor a glog status line" in m for m in messages)
    assert any(f"{log}:4: result line has no query 'name'" in m for m in messages)
    assert any(f"{log}:5: glog status line: month must be in 1..12" in m for m in messages)


def test_kill_9_while_loki_is_down_then_restart_delivers_each_line_once(tmp_path, receiver):
    log = tmp_path / "osqueryd.results.log"
    spool = tmp_path / "spool"
    lines = [result_line(i) for i in range(2000)]
    write(log, lines[:1000])
    url = receiver.url
    receiver.down()
    proc = subprocess.Popen([sys.executable, "-m", "osqsdk", "loki", "tail", str(log), "--url",
                             url, "--spool", str(spool), "--set", "batch_wait=50ms",
                             "--set", "min_backoff=10ms", "--set", "max_backoff=100ms"],
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: sum(p.stat().st_size for p in spool.glob("*.seg")) > 100_000,
                          timeout=30)
        write(log, lines[1000:])
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate(timeout=10)
    receiver.up()
    assert tail(log, receiver, spool) == 0
    assert receiver.lines() == lines
    assert receiver.duplicates == 0


def test_a_configuration_error_exits_2_with_the_cause(tmp_path, capsys):
    log = tmp_path / "r.log"
    log.write_text("")
    code = main(["loki", "tail", str(log), "--url", "ftp://x", "--once"])
    assert code == 2
    assert "url: must be an http:// or https:// URL" in capsys.readouterr().err


def test_a_glog_line_gets_the_year_it_was_written_in():
    # glog writes no year: a December line read in January is last year's
    line = "W1231 23:59:58.5  2849 config.cpp:12] late"
    match = _GLOG.match(line)
    assert match is not None
    new_year = datetime.datetime(2031, 1, 1, 0, 0, 5)
    status = _glog_status(match, "box-1", new_year)
    written = datetime.datetime(2030, 12, 31, 23, 59, 58).astimezone()
    assert status.unix_time == int(written.timestamp())
    assert status.calendar_time.endswith("UTC") and status.severity == Severity.WARNING
    match = _GLOG.match("I0102 10:00:00.0  1 a.cpp:1] m")
    assert match is not None
    same_year = _glog_status(match, "b", new_year)
    assert same_year.unix_time == int(datetime.datetime(2031, 1, 2, 10).astimezone().timestamp())


def test_once_exits_1_when_lines_were_dropped(tmp_path, receiver):
    log = tmp_path / "old.log"
    write(log, [result_line(i, unix_time=1_000_000_000) for i in range(3)])  # years old
    assert tail(log, receiver, tmp_path / "spool") == 1  # Loki's max_age: dropped, counted
    assert receiver.lines() == []
