"""SQL text outside strings, quoted names and comments, as SQLite's tokenizer sees it."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["code_chars"]


def code_chars(sql: str, specials: str) -> Iterator[int]:
    """Offsets of the characters of ``specials`` in ``sql`` that are code: not inside a
    string ('...'), a quoted name ("...", `...`, [...]) or a comment (-- ..., /* ... */)."""
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = sql.find(close, i + 1)
            while j != -1 and close != "]" and j + 1 < n and sql[j + 1] == close:
                j = sql.find(close, j + 2)  # a doubled quote is one quote character
            i = n if j == -1 else j + 1
            continue
        if ch == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j == -1 else j + 1
            continue
        if ch == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j == -1 else j + 2
            continue
        if ch in specials:
            yield i
        i += 1
