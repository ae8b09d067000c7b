"""Every query of osquery's own packs runs on the engine against empty fixtures."""

import re

import pytest

from osqsdk import QueryError
from osqsdk._osquery.config import parse_osquery_json
from osqsdk.runner import Engine
from tests.conftest import SHARED

PACKS = SHARED / "corpora" / "osquery" / "packs"


def pack_queries():
    if not PACKS.is_dir():
        return []
    found = []
    for path in sorted(PACKS.glob("*.conf")):
        pack = parse_osquery_json(path.read_text(), str(path))
        for name, query in pack.get("queries", {}).items():
            platform = query.get("platform") or pack.get("platform", "")
            found.append(pytest.param(path.name, query["query"], platform,
                                      id=f"{path.stem}/{name}"))
    return found


_ENGINES: dict[str, Engine] = {}


def engine_for(platform: str) -> Engine:
    name = "darwin" if "darwin" in platform else "windows" if "windows" in platform else "linux"
    if name not in _ENGINES:
        _ENGINES[name] = Engine(platform=name)
    return _ENGINES[name]


@pytest.mark.skipif(not PACKS.is_dir(), reason="../shared/corpora is not available")
@pytest.mark.parametrize("pack, sql, platform", pack_queries())
def test_osquery_pack_queries_run(pack, sql, platform):
    engine = engine_for(platform)
    try:
        engine.query(sql)
    except QueryError as exc:
        # Allowed only where the table does not exist on this platform or in this osquery
        # (the packs carry queries for tables since removed), or a required column is given
        # in a way SQLite cannot push down.
        allowed = (re.match(r"no such table: \w+", exc.message)
                   or "was queried without a required column" in exc.message)
        assert allowed, f"{pack}: {exc.message}"
        if exc.message.startswith("no such table"):
            table = exc.message.split(": ", 1)[1]
            assert table not in engine.tables


def test_the_corpus_is_not_empty():
    if PACKS.is_dir():
        assert len(pack_queries()) > 200
