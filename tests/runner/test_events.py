"""EventTable catches what lives and dies between two scheduled runs."""

import json

import pytest

import osqsdk
from osqsdk import Column, EventTable, PluginDefinitionError
from osqsdk.runner import Engine
from osqsdk.runner._scheduler import Scheduler


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_short_lived_containers_seen_only_by_the_event_table():
    start = 1_700_000_040
    clock = Clock(start)
    running = {}  # what a normal table sees: containers alive at query time
    normal = osqsdk.TablePlugin("containers_now", [Column("id"), Column("image")],
                                lambda ctx: list(running.values()))
    events = EventTable("container_events", [Column("id"), Column("image"), Column("action")],
                        clock=clock, expiry=3600)
    engine = Engine()
    engine.add_plugin(normal)
    engine.add_plugin(events)
    config = {"schedule": {
        "now": {"query": "SELECT id, image FROM containers_now", "interval": 60},
        "events": {"query": "SELECT id, image, action FROM container_events", "interval": 60,
                   "removed": False}}}
    scheduler = Scheduler(engine, config, start_time=start)

    def publisher(second, container, action):
        clock.now = start + second
        if action == "start":
            running[container] = {"id": container, "image": "alpine"}
        else:
            running.pop(container, None)
        events.publish({"id": container, "image": "alpine", "action": action})

    scheduler.step()                     # tick 1 at t=0: nothing yet
    publisher(10, "c1", "start")         # c1 lives 20 s, between two runs
    publisher(30, "c1", "die")
    publisher(40, "c2", "start")         # c2 is still running at the next run
    clock.now = start + 60
    lines = [json.loads(l.line) for l in scheduler.step()]  # tick 2 at t=60
    seen = {(l["name"], l["columns"]["id"], l["columns"].get("action")) for l in lines}
    assert ("now", "c2", None) in seen
    assert ("now", "c1", None) not in seen          # the normal table missed c1
    assert {("events", "c1", "start"), ("events", "c1", "die"),
            ("events", "c2", "start")} <= seen      # the event table caught it


def test_time_constraints_and_bounds():
    clock = Clock(1000)
    table = EventTable("e", [Column("x")], clock=clock, expiry=100, max_events=3)
    for i in range(5):
        clock.now = 1000 + i * 10
        table.publish({"x": str(i)})
    assert [e["x"] for e in table.events()] == ["2", "3", "4"] and table.dropped == 2
    engine = Engine(core_tables=False)
    engine.add_plugin(table)
    assert engine.query("SELECT x FROM e WHERE time >= 1030").rows == [{"x": "3"}, {"x": "4"}]
    time_list = {c["name"]: c["list"] for c in engine.calls[-1].context["constraints"]}["time"]
    assert time_list == [{"op": 32, "expr": "1030"}]
    clock.now = 1000 + 200
    assert table.events() == [] and table.expired == 3
    assert engine.query("SELECT eid FROM e").rows == []


def test_eids_increase_and_columns_are_checked():
    table = EventTable("e", [Column("x")], clock=lambda: 5)
    first, second = table.publish({"x": "a"}), table.publish({"x": "b"})
    assert first["eid"] < second["eid"] and first["time"] == 5
    with pytest.raises(PluginDefinitionError, match="not a column"):
        table.publish({"y": 1})
    with pytest.raises(PluginDefinitionError, match="added by EventTable"):
        EventTable("e", [Column("time", "BIGINT")])
