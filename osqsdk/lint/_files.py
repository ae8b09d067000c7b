"""Writing a file the linter produces (fixes, baselines, packs): whole or not at all."""

from __future__ import annotations

import os
import secrets

__all__ = ["write_file"]

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def write_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path``'s content with ``data``, so that a crash leaves the old or the new
    file, never half of one. A symbolic link stays one (its target is written); a file with
    other hard links is written in place, so every name sees the new content; the file's
    mode is kept (a new file gets 0666 less the umask). Raises OSError (a partial file is
    removed)."""
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
    # The new content goes to a file of a name no one could plant beforehand, created
    # exclusively: a symbolic link waiting at a predictable name would be written through.
    partial = os.path.join(os.path.dirname(real),
                           f".{os.path.basename(real)}.{secrets.token_hex(6)}.partial")
    fd = os.open(partial, _NEW, 0o666 if st is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            if st is not None:
                os.fchmod(fh.fileno(), st.st_mode & 0o7777)
            fh.write(data)
        os.replace(partial, real)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
