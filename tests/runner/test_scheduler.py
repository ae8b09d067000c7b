"""The scheduler's differential output, against hand-written osqueryd result lines."""

import json

import pytest

import osqsdk
from osqsdk.runner import Engine
from osqsdk.runner._scheduler import (
    Scheduler,
    SchedulerStopped,
    diff_rows,
    escape_non_printable,
    host_shard,
    platform_matches,
)

START = 1_700_000_040  # a multiple of 60 and 120: every query runs at tick 1
CAL = {1: "Tue Nov 14 22:14:00 2023 UTC", 2: "Tue Nov 14 22:15:00 2023 UTC",
       3: "Tue Nov 14 22:16:00 2023 UTC", 4: "Tue Nov 14 22:17:00 2023 UTC"}


def logins(*users):
    return [{"username": u, "type": 7, "host": h, "time": t, "tty": "pts/0", "pid": p}
            for u, h, t, p in users]


@pytest.fixture
def engine():
    e = Engine()
    e.fixtures.set("last", logins(("root", "10.0.0.1", 100, 10)), tick=1)
    e.fixtures.set("last", logins(("root", "10.0.0.1", 100, 10), ("alice", "10.0.0.9", 200, 20)),
                   tick=3)
    e.fixtures.set("last", logins(("alice", "10.0.0.9", 200, 20)), tick=4)
    e.fixtures.set("system_info", [{"uuid": "U-1", "hostname": "web-1"}])
    return e


CONFIG = {
    "decorators": {"load": ["SELECT uuid AS host_uuid FROM system_info"]},
    "packs": {"ir": {"queries": {
        "ssh": {"query": "SELECT username, host FROM last WHERE type = 7", "interval": 60},
        "count": {"query": "SELECT count(*) AS n FROM last", "interval": "120",
                  "snapshot": True}}}},
}


def common(tick, counter):
    return (f'"name":"pack_ir_ssh","hostIdentifier":"web-1","calendarTime":"{CAL[tick]}",'
            f'"unixTime":{START + 60 * (tick - 1)},"epoch":0,"counter":{counter},'
            f'"numerics":false,"decorations":{{"host_uuid":"U-1"}}')


def test_event_format_lines_over_four_ticks(engine):
    scheduler = Scheduler(engine, CONFIG, host_identifier="web-1", start_time=START)
    lines = [(line.tick, line.kind, line.line) for line in scheduler.run(4)]
    snap = ('{"snapshot":[{"n":"%s"}],"action":"snapshot","name":"pack_ir_count",'
            '"hostIdentifier":"web-1","calendarTime":"%s","unixTime":%d,"epoch":0,"counter":0,'
            '"numerics":false,"decorations":{"host_uuid":"U-1"}}')
    assert lines == [
        (1, "string", "{" + common(1, 0) + ',"columns":{"host":"10.0.0.1","username":"root"},'
                                           '"action":"added"}'),
        (1, "snapshot", snap % ("1", CAL[1], START)),
        (3, "string", "{" + common(3, 1) + ',"columns":{"host":"10.0.0.9","username":"alice"},'
                                           '"action":"added"}'),
        (3, "snapshot", snap % ("2", CAL[3], START + 120)),
        (4, "string", "{" + common(4, 2) + ',"columns":{"host":"10.0.0.1","username":"root"},'
                                           '"action":"removed"}'),
    ]


def test_batch_format_and_removed_false(engine):
    config = json.loads(json.dumps(CONFIG))
    config["packs"]["ir"]["queries"]["ssh"]["removed"] = False
    del config["packs"]["ir"]["queries"]["count"]
    scheduler = Scheduler(engine, config, host_identifier="web-1", start_time=START,
                          event_format=False)
    lines = [(line.tick, line.line) for line in scheduler.run(4)]
    assert lines == [
        (1, '{"diffResults":{"removed":[],"added":[{"host":"10.0.0.1","username":"root"}]},'
            + common(1, 0) + "}"),
        (3, '{"diffResults":{"removed":[],"added":[{"host":"10.0.0.9","username":"alice"}]},'
            + common(3, 1) + "}"),
    ]
    # Tick 4 only removed root: with removed false nothing is logged, but the results
    # changed, so the counter moved on (launchQuery clears removed rows after the diff).
    assert scheduler._state["pack_ir_ssh"].counter == 2


def test_first_run_without_rows_is_logged_in_batch_format_only():
    engine = Engine()
    config = {"schedule": {"empty": {"query": "SELECT * FROM last", "interval": 60}}}
    assert Scheduler(Engine(), config, start_time=START).run(2) == []
    lines = Scheduler(engine, config, start_time=START, event_format=False).run(2)
    assert [json.loads(line.line)["diffResults"] for line in lines] == [
        {"removed": [], "added": []}]


def test_multiset_diff_counts_duplicates():
    added, removed = diff_rows([{"a": "1"}, {"a": "1"}, {"a": "2"}], [{"a": "1"}, {"a": "3"}])
    assert added == [{"a": "3"}] and removed == [{"a": "1"}, {"a": "2"}]


def test_numerics_and_top_level_decorations(engine):
    config = {"decorators": {"always": ["SELECT 'x' AS d"]},
              "schedule": {"q": {"query": "SELECT pid, username FROM last", "interval": 60}}}
    line = Scheduler(engine, config, start_time=START, numerics=True,
                     decorations_top_level=True).run(1)[0]
    data = json.loads(line.line)
    assert data["numerics"] is True and data["d"] == "x" and "decorations" not in data
    assert data["columns"] == {"pid": 10, "username": "root"}


def test_interval_decorators_run_on_their_minute(engine):
    counter = iter(range(100))
    engine.add_plugin(osqsdk.TablePlugin("seq", [osqsdk.Column("n", "BIGINT")],
                                         lambda ctx: [{"n": next(counter)}]))
    config = {"decorators": {"interval": {"120": ["SELECT n FROM seq"]}},
              "schedule": {"q": {"query": "SELECT username FROM last", "interval": 60,
                                 "snapshot": True}}}
    lines = Scheduler(engine, config, start_time=START).run(5)
    # The decorator ran at ticks 1, 3 and 5 (every 120 s); queries run first in a second.
    assert [json.loads(l.line).get("decorations", {}).get("n") for l in lines] == [
        None, "0", "0", "1", "1"]


def test_pack_platform_version_shard_and_discovery(engine):
    config = {"packs": {
        "mac": {"platform": "darwin", "queries": {"q": {"query": "SELECT 1", "interval": 60}}},
        "new": {"version": "9.0.0", "queries": {"q": {"query": "SELECT 1", "interval": 60}}},
        "shard": {"shard": 1, "queries": {"q": {"query": "SELECT 1", "interval": 60}}},
        "found": {"discovery": ["SELECT 1 FROM last WHERE username = 'alice'"],
                  "queries": {"q": {"query": "SELECT 1 AS one", "interval": 60}}},
    }}
    scheduler = Scheduler(engine, config, start_time=START, hostname="web-1")
    assert host_shard("web-1") > 1
    names = {q.name for q in scheduler.queries}
    assert names == {"pack_found_q"}
    assert any("darwin" in s for s in scheduler.skipped) and any("9.0.0" in s for s in scheduler.skipped)
    # alice appears at tick 3, but discovery is cached for an hour (pack_refresh_interval).
    assert scheduler.run(4) == []


def test_platform_matching_is_osquerys():
    assert platform_matches("", "linux") and platform_matches("all", "darwin")
    assert platform_matches("ubuntu", "linux") and platform_matches("posix", "darwin")
    assert platform_matches("darwin, linux", "linux") and not platform_matches("windows", "linux")
    assert not platform_matches("posix", "windows")


def test_bad_intervals_and_sql_errors(engine):
    config = {"schedule": {"zero": {"query": "SELECT 1", "interval": 0},
                           "huge": {"query": "SELECT 1", "interval": 604801},
                           "broken": {"query": "SELECT * FROM nope", "interval": 60}}}
    scheduler = Scheduler(engine, config, start_time=START)
    assert [q.name for q in scheduler.queries] == ["broken"]
    scheduler.run(1)
    assert scheduler.errors == ["Error executing scheduled query broken: no such table: nope"]


def test_loggers_get_init_features_lines_and_status(engine):
    got = {"results": [], "status": []}
    logger = osqsdk.LoggerPlugin("l", log_result=got["results"].append,
                                 log_status=got["status"].extend)
    config = {"schedule": {"ssh": {"query": "SELECT username FROM last", "interval": 60},
                           "broken": {"query": "SELECT * FROM nope", "interval": 60}}}
    Scheduler(engine, config, loggers=[logger], start_time=START).run(1)
    assert [r.columns for r in got["results"]] == [{"username": "root"}]
    assert [s.message for s in got["status"]] == [
        "Error executing scheduled query broken: no such table: nope"]


def test_a_failing_logger_stops_the_scheduler_like_osqueryd(engine):
    def fail(record):
        raise osqsdk.LoggerFailure("nope")

    config = {"schedule": {"ssh": {"query": "SELECT username FROM last", "interval": 60}}}
    with pytest.raises(SchedulerStopped, match="Error logging the results of query: ssh: nope"):
        Scheduler(engine, config, loggers=[osqsdk.LoggerPlugin("l", log_result=fail)],
                  start_time=START).run(1)


def test_changed_sql_resets_the_counter(engine):
    config = {"schedule": {"q": {"query": "SELECT username FROM last", "interval": 60}}}
    scheduler = Scheduler(engine, config, start_time=START)
    scheduler.run(3)
    scheduler.queries = [q.__class__(**{**q.__dict__, "sql": "SELECT username, host FROM last"})
                         for q in scheduler.queries]
    lines = scheduler.run(1)
    assert {json.loads(l.line)["counter"] for l in lines} == {0}


def test_non_printable_bytes_are_escaped_like_osqueryd():
    assert escape_non_printable("a\tb\x01") == "a\\x09b\\x01"
    assert escape_non_printable("héllo") == "héllo"
    assert escape_non_printable(b"caf\xe9".decode("utf-8", "surrogateescape")) == "caf\\xE9"
