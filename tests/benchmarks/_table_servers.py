"""The three table servers table_throughput.py compares, one per process.

    python _table_servers.py osqsdk --socket MANAGER ...
    python _table_servers.py osquery-python --socket MANAGER ...
    python _table_servers.py bare SOCKET

Each serves the same tables from the same precomputed typed rows, copied per call:
``bench`` (10 columns: 8 TEXT, 2 BIGINT; 10,000 rows), ``one`` (1 row) and ``slow``
(answers after 2 s).
"""

import sys
import time

N_ROWS = 10_000
TEXT = [f"c{i}" for i in range(8)]
NUMS = ["n0", "n1"]
ROWS = [{**{c: f"{c}-value-{n:06d}" for c in TEXT}, "n0": n, "n1": n * 1_000_003}
        for n in range(N_ROWS)]
ONE = ROWS[:1]


def rows_for(table):
    if table == "slow":
        time.sleep(2.0)
        return [dict(r) for r in ONE]
    return [dict(r) for r in (ONE if table == "one" else ROWS)]


def serve_osqsdk():
    import osqsdk

    columns = [osqsdk.Column(c) for c in TEXT] + [osqsdk.Column(c, "BIGINT") for c in NUMS]
    plugins = [osqsdk.TablePlugin(name, columns, lambda ctx, name=name: rows_for(name))
               for name in ("bench", "one", "slow")]
    osqsdk.run("bench_osqsdk", plugins, version="1.0.0")


def osquery_python_tables():
    import osquery

    def make(table_name):
        class Table(osquery.TablePlugin):
            def name(self):
                return table_name

            def columns(self):
                return ([osquery.TableColumn(name=c, type=osquery.STRING) for c in TEXT]
                        + [osquery.TableColumn(name=c, type="BIGINT") for c in NUMS])

            def generate(self, context):
                return rows_for(table_name)

        Table.__name__ = f"Table_{table_name}"
        return Table

    return [make(table_name) for table_name in ("bench", "one", "slow")]


def serve_osquery_python():
    import osquery

    for table in osquery_python_tables():
        osquery.register_plugin(table)
    osquery.start_extension(name="bench_osquery_python", version="1.0.0")


def serve_osqsdk_compat():
    # the same osquery-python classes, unchanged, served by osqsdk (osqsdk extension run)
    import osqsdk
    from osqsdk.extension._compat import adapt

    osqsdk.run("bench_osqsdk_compat", [adapt(t) for t in osquery_python_tables()],
               version="1.0.0")


def serve_bare(path):
    # The least a correct server can do: thrift's threaded server, the C codec, and str()
    # of every value.
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolAcceleratedFactory
    from thrift.server.TServer import TThreadedServer
    from thrift.transport.TSocket import TServerSocket
    from thrift.transport.TTransport import TBufferedTransportFactory

    from osqsdk.extension._wire._gen import Extension
    from osqsdk.extension._wire._gen.ttypes import ExtensionResponse, ExtensionStatus

    class Handler:
        def ping(self):
            return ExtensionStatus(code=0, message="pong")

        def call(self, registry, item, request):
            rows = [{k: str(v) for k, v in row.items()} for row in rows_for(item)]
            return ExtensionResponse(status=ExtensionStatus(code=0, message="OK"), response=rows)

        def shutdown(self):
            pass

    server = TThreadedServer(Extension.Processor(Handler()), TServerSocket(unix_socket=path),
                             TBufferedTransportFactory(), TBinaryProtocolAcceleratedFactory(),
                             daemon=True)
    server.serve()


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    if mode == "osqsdk":
        serve_osqsdk()
    elif mode == "osquery-python":
        serve_osquery_python()
    elif mode == "osqsdk-compat":
        serve_osqsdk_compat()
    elif mode == "bare":
        serve_bare(sys.argv[1])
    else:
        sys.exit(f"unknown mode {mode}")
