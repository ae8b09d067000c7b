#!/usr/bin/env python3
"""A small osqsdk extension used by the server tests."""
import os
import sys
import time

import osqsdk
from osqsdk import Column


@osqsdk.table("acme_users", columns=[Column("name"), Column("uid", "BIGINT", index=True)])
def users(context):
    wanted = set(context.equals("uid"))
    for name, uid in (("alice", 1000), ("bob", 1001)):
        if not wanted or uid in wanted:
            yield {"name": name, "uid": uid}


@osqsdk.table("acme_slow", columns=[Column("x")])
def slow(context):
    release = os.environ.get("SLOW_UNTIL")  # a file the test creates to let it finish
    if release:
        open(release + ".started", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
    return [{"x": "done"}]


@osqsdk.table("acme_echo", columns=[Column("expr"), Column("hexed")])
def echo(context):
    for c in context:
        yield {"expr": c.expression, "hexed": c.expression.encode("utf-8", "surrogateescape").hex()}


if __name__ == "__main__":
    tables = [users, slow, echo]
    if "--with-core-name" in sys.argv:
        tables.append(osqsdk.TablePlugin("time", [Column("x")], lambda ctx: []))
    osqsdk.run(os.environ.get("EXT_NAME", "acme"), tables, version="1.0.0")
