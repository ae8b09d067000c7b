#!/usr/bin/env python3
"""The extension the C++ interop peers drive (tests/interop/cpp/*.cpp check its answers)."""

import os
import threading
import time

import osqsdk
from osqsdk import Column, ConstraintViolation

types_table = osqsdk.TablePlugin(
    "interop_types",
    columns=[
        Column("t", "TEXT", aliases=("text_alias",)),
        Column("i", "INTEGER", index=True),
        Column("b", "BIGINT", required=True),
        Column("u", "UNSIGNED BIGINT", additional=True),
        Column("d", "DOUBLE", optimized=True),
        Column("blob", "BLOB", hidden=True),
        Column("flag", "INTEGER"),
        Column("n", "TEXT"),
    ],
    generate=lambda context: [
        {"t": "héllo", "i": -42, "b": 2**40, "u": 2**63 - 1, "d": 0.1,
         "blob": b"\x00\x01\xff", "flag": True, "n": None},
        # b"caf\xe9" read with os.fsdecode(): a lone surrogate that must go out as the byte.
        {"t": b"caf\xe9".decode("utf-8", "surrogateescape"), "i": 0, "b": -1, "u": 0,
         "d": 1e100, "flag": False},
    ],
    aliases=("interop_types_alias",),
    cacheable=True,
)


@osqsdk.table("interop_echo", columns=[Column("column"), Column("operator"), Column("value"),
                                       Column("value_type")])
def echo(context):
    for c in context:
        yield {"column": c.column, "operator": c.operator.name, "value": c.value,
               "value_type": type(c.value).__name__}
    if context.columns_used is not None:
        yield {"column": "*used*", "value": ",".join(sorted(context.columns_used))}


class KeyValueStore:
    """A writable table: rows keyed by rowid, unique on key."""

    def __init__(self):
        self.rows = {}
        self.next_rowid = 1
        self.lock = threading.Lock()

    def generate(self, context):
        with self.lock:
            return [{"rowid": rowid, **row} for rowid, row in self.rows.items()]

    def insert(self, row, rowid):
        with self.lock:
            if any(r["key"] == row["key"] for r in self.rows.values()):
                raise ConstraintViolation(f"key {row['key']!r} exists")
            if rowid is None:
                rowid = self.next_rowid
                self.next_rowid += 1
            self.rows[rowid] = row
            return rowid

    def update(self, rowid, row, new_rowid):
        with self.lock:
            del self.rows[rowid]
            self.rows[new_rowid if new_rowid is not None else rowid] = row

    def delete(self, rowid):
        with self.lock:
            del self.rows[rowid]


store = KeyValueStore()
kv_table = osqsdk.TablePlugin(
    "interop_kv", columns=[Column("key"), Column("value", "BIGINT")], generate=store.generate,
    insert=store.insert, update=store.update, delete=store.delete)


@osqsdk.table("interop_fail", columns=[Column("x")])
def fail(context):
    raise RuntimeError("kaboom")


@osqsdk.table("interop_slow", columns=[Column("x")])
def slow(context):
    release = os.environ.get("INTEROP_RELEASE")  # the peer creates it when it may end
    if release:
        open(release + ".started", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(2.0)
    return [{"x": "done"}]


# -- logger, config and distributed plugins: what they receive is readable as interop_log --
import json  # noqa: E402
import tempfile  # noqa: E402

received = []


def on_result(record):
    for action, row in record.rows():
        received.append({"kind": record.format.value, "name": record.name,
                         "host": record.host_identifier, "counter": record.counter,
                         "unix_time": record.unix_time, "action": action,
                         "detail": json.dumps(row, sort_keys=True),
                         "decorations": json.dumps(record.decorations, sort_keys=True)})


def on_status(records):
    for r in records:
        received.append({"kind": "status", "name": r.severity.name, "host": r.host_identifier,
                         "counter": r.line, "unix_time": r.unix_time, "action": r.filename,
                         "detail": r.message})


def on_event(row):
    received.append({"kind": "subscriber", "detail": json.dumps(row, sort_keys=True)})


def on_init(name):
    received.append({"kind": "init", "name": name})


def on_write(results):
    for r in results:
        received.append({"kind": "distributed", "name": r.query_id, "counter": r.status,
                         "action": r.message, "detail": json.dumps(r.rows, sort_keys=True)})


logger = osqsdk.LoggerPlugin("interop_logger", log_result=on_result, log_status=on_status,
                             log_event=on_event, init=on_init)
log_table = osqsdk.TablePlugin(
    "interop_log", [Column("kind"), Column("name"), Column("host"), Column("counter", "BIGINT"),
                    Column("unix_time", "BIGINT"), Column("action"), Column("detail"),
                    Column("decorations")],
    lambda context: list(received))

config_dir = tempfile.mkdtemp(prefix="osqsdk-interop-conf-")
os.makedirs(os.path.join(config_dir, "packs"))
with open(os.path.join(config_dir, "osquery.conf"), "w") as f:
    f.write('{\n  // comment\n  "options": {"host_identifier": "uuid"},\n'
            '  "schedule": {"up": {"query": "SELECT * FROM uptime;", "interval": "60"}},\n'
            '  "packs": {"ir": "packs/ir.conf"}\n}\n')
with open(os.path.join(config_dir, "packs", "ir.conf"), "w") as f:
    f.write('{"queries": {"ssh": {"query": "SELECT * FROM last;", "interval": 60}}}')
config = osqsdk.DirectoryConfig(config_dir, name="interop_config")

distributed = osqsdk.DistributedPlugin(
    "interop_distributed",
    lambda: osqsdk.DistributedQueries({"q1": "SELECT 1"}, {"q1": "SELECT 1"}, 30),
    on_write)

PLUGINS = [types_table, echo, kv_table, fail, slow, logger, log_table, config, distributed]

if __name__ == "__main__":
    osqsdk.run("interop", PLUGINS, version="1.2.3")
