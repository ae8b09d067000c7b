"""A baseline: today's findings, written once, so that only new findings fail.

Adopting the linter on a large legacy pack set: ``osqsdk lint --write-baseline FILE`` records
every finding; ``--baseline FILE`` (or ``baseline`` in ``[tool.osqsdk.lint]``) hides those
and reports the rest. An entry is matched by file, rule, query and message, never by line,
so edits elsewhere in a file keep it matching; a finding that happens more often than the
baseline recorded is reported for the extra times (docs/lint.md §1.8).
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from osqsdk.lint._files import write_file
from osqsdk.lint._finding import Finding

__all__ = ["BASELINE_VERSION", "BaselineError", "Filtered", "apply_baseline", "read_baseline",
           "write_baseline"]

BASELINE_VERSION = 1
_MAX_BYTES = 64 << 20
_Key = tuple[str, str, str, str]


class BaselineError(Exception):
    """The baseline file cannot be read or written."""


@dataclass(frozen=True)
class Filtered:
    findings: list[Finding]
    hidden: int       #: findings the baseline accounted for
    stale: int        #: baseline entries (counted per occurrence) no longer found


def _relative(path: str, base: Path) -> str:
    try:
        return Path(os.path.relpath(os.path.abspath(path), base)).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(os.path.abspath(path)).as_posix()


def _key(f: Finding, base: Path) -> _Key:
    return (_relative(f.path, base), f.code, f.query or "", f.message)


def write_baseline(findings: Iterable[Finding], file: str | os.PathLike[str]) -> int:
    """Record ``findings`` in ``file`` (paths relative to its folder); returns how many."""
    target = Path(file)
    base = target.resolve().parent
    counts = collections.Counter(_key(f, base) for f in findings)
    entries = [{"path": p, "code": c, "query": q or None, "message": m, "count": n}
               for (p, c, q, m), n in sorted(counts.items())]
    text = json.dumps({"osqsdk-lint-baseline": BASELINE_VERSION, "findings": entries},
                      indent=2, ensure_ascii=False) + "\n"
    try:
        write_file(target, text.encode("utf-8"))
    except OSError as exc:
        raise BaselineError(f"{target}: cannot be written ({exc.strerror})") from None
    return sum(counts.values())


def read_baseline(file: str | os.PathLike[str]) -> collections.Counter[_Key]:
    """The entries of a baseline file (keys relative to its folder)."""
    path = Path(file)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise BaselineError(f"{path}: larger than {_MAX_BYTES >> 20} MiB")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise BaselineError(f"{path}: nested too deeply to be a baseline") from None
    if not isinstance(data, dict) or data.get("osqsdk-lint-baseline") != BASELINE_VERSION \
            or not isinstance(data.get("findings"), list):
        raise BaselineError(f"{path}: not an osqsdk lint baseline (version "
                            f"{BASELINE_VERSION}); write one with --write-baseline")
    counts: collections.Counter[_Key] = collections.Counter()
    for index, entry in enumerate(data["findings"]):
        fields = (entry.get(k) if isinstance(entry, dict) else None
                  for k in ("path", "code", "query", "message", "count"))
        p, c, q, m, n = fields
        if not (isinstance(p, str) and isinstance(c, str) and isinstance(m, str)
                and (q is None or isinstance(q, str)) and isinstance(n, int)
                and not isinstance(n, bool) and n > 0):
            raise BaselineError(f"{path}: findings[{index}] needs path, code, message (text), "
                                "query (text or null) and count (a positive integer)")
        counts[(p, c, q or "", m)] += n
    return counts


def apply_baseline(findings: list[Finding], file: str | os.PathLike[str]) -> Filtered:
    """``findings`` less those the baseline in ``file`` records."""
    left = read_baseline(file)
    base = Path(file).resolve().parent
    kept: list[Finding] = []
    hidden = 0
    for f in findings:
        key = _key(f, base)
        if left[key] > 0:
            left[key] -= 1
            hidden += 1
        else:
            kept.append(f)
    return Filtered(kept, hidden, sum(n for n in left.values() if n > 0))
