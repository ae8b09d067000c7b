#!/usr/bin/env python3
"""A table and a logger in one file, for the built-artifact tests: the logger keeps what it
is sent, and the table `seen_lines` answers with it, so one table call proves both ran."""

import sys
import threading

import osqsdk
from osqsdk import Column

LINES = []
LOCK = threading.Lock()


def keep(record):
    with LOCK:
        LINES.append(record.name or "")


@osqsdk.table("seen_lines", columns=[Column("n", "INTEGER"), Column("name"),
                                     Column("python")])
def seen_lines(context):
    with LOCK:
        for n, name in enumerate(LINES):
            yield {"n": n, "name": name, "python": sys.executable}


keeper = osqsdk.LoggerPlugin("keeper", log_result=keep)

if __name__ == "__main__":
    osqsdk.run("built_artifact_test", [seen_lines, keeper], version="2.0.1")
