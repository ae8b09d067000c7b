"""The extension SDK: table, logger, config and distributed plugins served to osqueryd.

Its public names are re-exported by ``osqsdk`` itself (``osqsdk.table``, ``osqsdk.run``,
...); the modules here are private. Thrift is confined to ``_wire``, and loaded only when a
server or client is used.
"""
