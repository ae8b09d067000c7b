"""Writing a file the linter produces (fixes, baselines, packs): whole or not at all."""

from __future__ import annotations

import os

__all__ = ["write_file"]


def write_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path``'s content with ``data``, so that a crash leaves the old or the new
    file, never half of one. A symbolic link stays one (its target is written); a file with
    other hard links is written in place, so every name sees the new content; the file's
    mode is kept. Raises OSError (a partial file is removed)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and st.st_nlink > 1:
        with open(real, "r+b") as fh:
            fh.write(data)
            fh.truncate()
        return
    partial = os.path.join(os.path.dirname(real), f".{os.path.basename(real)}.partial")
    try:
        with open(partial, "wb") as fh:
            fh.write(data)
        if st is not None:
            os.chmod(partial, st.st_mode & 0o7777)
        os.replace(partial, real)
    except OSError:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
