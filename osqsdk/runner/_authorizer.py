"""The SQL osqueryd lets a query do: its SQLite authorizer, reproduced (docs/protocol.md §3.7).

osqueryd sets an authorizer on every database it opens (osquery/sql/sqlite_util.h,
``kAllowedSQLiteActionCodes`` and ``kAllowedSQLitePragmas``) and denies every other action,
ATTACH above all (it can write any file; VACUUM INTO attaches its target too). SQLite then
fails the statement with ``not authorized``, the message osqueryd answers with.
"""

from __future__ import annotations

import apsw

__all__ = ["ALLOWED_ACTIONS", "ALLOWED_PRAGMAS", "osqueryd_authorizer"]

ALLOWED_ACTIONS = frozenset({
    apsw.SQLITE_READ, apsw.SQLITE_SELECT,
    apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE,   # writable tables
    apsw.SQLITE_CREATE_VTABLE, apsw.SQLITE_DROP_VTABLE,
    apsw.SQLITE_CREATE_VIEW, apsw.SQLITE_DROP_VIEW,
    apsw.SQLITE_CREATE_TABLE, apsw.SQLITE_DROP_TABLE,
    apsw.SQLITE_CREATE_TEMP_TABLE, apsw.SQLITE_DROP_TEMP_TABLE,
    apsw.SQLITE_CREATE_TEMP_VIEW, apsw.SQLITE_DROP_TEMP_VIEW,
    apsw.SQLITE_FUNCTION, apsw.SQLITE_RECURSIVE, apsw.SQLITE_TRANSACTION,
})
ALLOWED_PRAGMAS = frozenset({"table_info", "table_xinfo", "function_list", "journal_mode",
                             "case_sensitive_like", "collation_list"})


def osqueryd_authorizer(action: int, arg1: str | None, arg2: str | None,
                        database: str | None, trigger: str | None) -> int:
    """An apsw authorizer that allows what osqueryd's allows and denies the rest."""
    if action in ALLOWED_ACTIONS:
        return apsw.SQLITE_OK
    if action == apsw.SQLITE_PRAGMA and arg1 is not None and arg1.lower() in ALLOWED_PRAGMAS:
        return apsw.SQLITE_OK
    return apsw.SQLITE_DENY
