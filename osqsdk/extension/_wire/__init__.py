"""Everything that touches Thrift. Nothing in here is public API.

The rest of osqsdk talks to this package in plain Python types (str, dict, list); the
generated bindings in ``_gen`` are imported only here (``types`` re-exports the structs).
"""
