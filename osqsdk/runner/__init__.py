"""Run osquery SQL locally: osquery's tables and functions on SQLite, without osqueryd.

- ``Engine``: SQLite (apsw) with every core table of the schema answering from fixtures,
  and extension tables (in-process plugins, Python files, running extensions), planned and
  called exactly as osqueryd does.
- ``Fixtures``: rows for core tables, per tick.
- ``Scheduler``: a config's schedule and packs over simulated ticks, producing osqueryd's
  differential result lines and delivering them to logger plugins.
"""

from osqsdk.runner._engine import Engine, QueryResult
from osqsdk.runner._fixtures import FixtureError, Fixtures
from osqsdk.runner._scheduler import Scheduler

__all__ = ["Engine", "FixtureError", "Fixtures", "QueryResult", "Scheduler"]
