"""Extension tables over the Thrift socket of a running extension process."""

from pathlib import Path

import pytest

from osqsdk import QueryError
from osqsdk.extension._wire.client import Client
from osqsdk.runner import Engine

BASIC = Path(__file__).resolve().parents[1] / "sdk" / "files" / "basic_ext.py"


@pytest.fixture
def served(spawn):
    engine = Engine()
    manager = engine.serve(health_interval=0.3)
    spawn(BASIC, manager.socket_path)
    manager.wait_for("acme")
    yield engine, manager
    manager.stop()
    engine.close()


def test_remote_tables_answer_sql_with_constraints(served):
    engine, _ = served
    assert engine.query("SELECT name FROM acme_users WHERE uid = 1001").rows == [{"name": "bob"}]
    context = engine.calls[-1].context
    assert {c["name"]: c["list"] for c in context["constraints"]}["uid"] == [
        {"op": 2, "expr": "1001"}]


def test_remote_and_fixture_tables_join(served):
    engine, _ = served
    engine.fixtures.set("users", [{"uid": 1000, "username": "alice", "directory": "/home/a"}])
    rows = engine.query("SELECT u.directory, a.name FROM users u "
                        "JOIN acme_users a USING (uid)").rows
    assert rows == [{"directory": "/home/a", "name": "alice"}]


def test_the_manager_socket_runs_sql_in_the_engine(served):
    _, manager = served
    with Client(manager.socket_path) as client:
        reply = client.query("SELECT name, uid FROM acme_users ORDER BY uid")
        assert reply.code == 0 and reply.rows == [{"name": "alice", "uid": "1000"},
                                                  {"name": "bob", "uid": "1001"}]
        bad = client.query("SELECT * FROM nope")
        assert bad.code == 1 and bad.message == "no such table: nope"
        columns = client.get_query_columns("SELECT uid FROM acme_users")
        assert columns.rows == [{"uid": "BIGINT"}]


def test_a_dead_extension_fails_the_query_and_its_tables_go(served, spawn):
    engine, manager = served
    ext = next(e for e in manager.extensions_by_uuid.values() if e.name == "acme")
    manager.remove(ext.uuid)
    with pytest.raises(QueryError, match="no such table: acme_users"):
        engine.query("SELECT * FROM acme_users")
