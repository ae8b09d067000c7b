"""Writing a file the linter produces (fixes, baselines, packs): whole or not at all."""

from __future__ import annotations

import os
import tempfile

__all__ = ["write_file"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    # A new file of a name no one could plant beforehand (mkstemp: O_EXCL, mode 0600): a
    # symbolic link waiting at a predictable name would be written through.
    fd, partial = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.",
                                   suffix=".partial", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(partial, st.st_mode & 0o7777 if st is not None else 0o666 & ~_umask())
        os.replace(partial, real)
    except OSError:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
