#!/usr/bin/env python3
"""A distributed extension: run the .sql files dropped into a directory, write the answers.

    --disable_distributed=false --distributed_plugin=osqsdk_spool
    --distributed_interval=10   (osqueryd flags)

Environment: OSQSDK_QUERY_DIR (default /var/osquery/osqsdk-queries). Each ``<id>.sql`` in
``<dir>/pending`` is handed to osqueryd once; its answer lands in ``<dir>/done/<id>.json``
as {"status", "message", "rows"}, and the .sql file moves to ``<dir>/done``.
"""

import json
import os
import threading

import osqsdk


class Spool:
    def __init__(self, root):
        self.pending = os.path.join(root, "pending")
        self.done = os.path.join(root, "done")
        os.makedirs(self.pending, exist_ok=True)
        os.makedirs(self.done, exist_ok=True)
        self.sent = set()
        self.lock = threading.Lock()

    def get_queries(self):
        queries = {}
        with self.lock:
            for name in sorted(os.listdir(self.pending)):
                query_id = name[:-4]
                if name.endswith(".sql") and query_id not in self.sent:
                    with open(os.path.join(self.pending, name), encoding="utf-8") as f:
                        queries[query_id] = f.read()
                    self.sent.add(query_id)
        return osqsdk.DistributedQueries(queries)

    def write_results(self, results):
        for result in results:
            answer = {"status": result.status, "message": result.message, "rows": result.rows}
            target = os.path.join(self.done, f"{result.query_id}.json")
            with open(target + ".tmp", "w", encoding="utf-8") as f:
                json.dump(answer, f)
            os.replace(target + ".tmp", target)
            source = os.path.join(self.pending, f"{result.query_id}.sql")
            if os.path.exists(source):
                os.replace(source, os.path.join(self.done, f"{result.query_id}.sql"))
            with self.lock:
                self.sent.discard(result.query_id)


if __name__ == "__main__":
    spool = Spool(os.environ.get("OSQSDK_QUERY_DIR", "/var/osquery/osqsdk-queries"))
    osqsdk.run("osqsdk_spool_distributed",
               [osqsdk.DistributedPlugin("osqsdk_spool", spool.get_queries, spool.write_results)],
               version="1.0.0")
