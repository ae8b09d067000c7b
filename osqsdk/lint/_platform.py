"""osquery's platform matching (``checkPlatform``), as sets of platforms.

osquery compares a pack's or query's ``platform`` string by substring, case-sensitively:
empty, ``any`` or ``all`` anywhere match every host; ``linux``, ``ubuntu`` or ``centos``
match Linux; ``posix`` matches macOS, Linux and FreeBSD; otherwise the host's own name
(``darwin``, ``linux``, ``windows``, ``freebsd``) must appear in the string.
"""

from __future__ import annotations

import re

__all__ = ["FLEET_PLATFORMS", "HOST_PLATFORMS", "KNOWN_TOKENS", "matching", "tokens"]

HOST_PLATFORMS = frozenset({"darwin", "linux", "windows", "freebsd"})
FLEET_PLATFORMS = frozenset({"darwin", "linux", "windows", "chrome"})
KNOWN_TOKENS = frozenset({"darwin", "linux", "windows", "freebsd", "posix", "any", "all",
                          "ubuntu", "centos"})


def tokens(value: str) -> list[str]:
    """The comma- or space-separated words of a platform string."""
    return [t for t in re.split(r"[\s,]+", value.strip()) if t]


def matching(value: str | None, *, fleet: bool = False) -> frozenset[str] | None:
    """Host platforms a ``platform`` value selects; None means all of them."""
    if value is None:
        return None
    if fleet:
        words = {t.lower() for t in tokens(value)}
        if not words:
            return None
        return frozenset(words & FLEET_PLATFORMS)
    if value.strip() in ("", "null") or "any" in value or "all" in value:
        return None
    out = set()
    if "linux" in value or "ubuntu" in value or "centos" in value:
        out.add("linux")
    if "posix" in value:
        out.update({"darwin", "linux", "freebsd"})
    for name in HOST_PLATFORMS:
        if name in value:
            out.add(name)
    return frozenset(out)


def intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b
