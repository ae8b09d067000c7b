"""Unix-domain stream sockets the way osqueryd uses them (docs/protocol.md §1.1, §1.5).

Named pipes (Windows) would be a second implementation of ``listen`` and ``connect``.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading

from osqsdk.errors import ExtensionConnectionError, ExtensionTimeout, PluginDefinitionError

__all__ = ["MAX_MANAGER_PATH", "check_manager_path", "connect", "listen", "socket_alive"]

# sockaddr_un.sun_path holds 108 bytes on Linux and 104 on macOS/BSD, NUL included.
_SUN_PATH = 108 if sys.platform.startswith("linux") else 104
# An extension serves "<manager path>.<uuid>" with a uuid of up to five digits (uint16), so
# the manager path must leave room for six more bytes (osquery-go's 97 is the macOS value).
MAX_MANAGER_PATH = _SUN_PATH - 1 - 6

_umask_lock = threading.Lock()


def check_manager_path(path: str) -> None:
    """Raise PluginDefinitionError if extension sockets under ``path`` cannot exist."""
    size = len(os.fsencode(path))
    if size == 0:
        raise PluginDefinitionError("the extensions socket path is empty")
    if size > MAX_MANAGER_PATH:
        raise PluginDefinitionError(
            f"extensions socket path is {size} bytes long, the limit is {MAX_MANAGER_PATH}: "
            f"the extension socket '{path}.<uuid>' would not fit in a unix socket address "
            f"({_SUN_PATH} bytes); use a shorter --socket path"
        )


def connect(path: str, timeout: float | None) -> socket.socket:
    """Connect to the unix socket at ``path``, mapping failures to osqsdk errors."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except TimeoutError as exc:
        sock.close()
        raise ExtensionTimeout(f"connecting to {path} timed out after {timeout}s") from exc
    except OSError as exc:
        sock.close()
        raise ExtensionConnectionError(f"cannot connect to {path}: {exc.strerror or exc}") from exc
    return sock


def listen(path: str, backlog: int = 128) -> socket.socket:
    """Create, bind and listen on a unix socket that only its owner can connect to.

    A stale socket file at ``path`` (left by a killed process) is replaced; any other kind
    of file there is an error, never deleted.
    """
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ExtensionConnectionError(f"cannot serve {path}: directory {directory} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise ExtensionConnectionError(
                f"cannot serve {path}: a file that is not a socket is there")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # bind() creates the file with 0777 & ~umask: set the umask so that the socket is
        # owner-only from the moment it exists, not after a chmod.
        with _umask_lock:
            old = os.umask(0o177)
            try:
                sock.bind(path)
            finally:
                os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ExtensionConnectionError(f"cannot serve {path}: {exc.strerror or exc}") from exc
    return sock


def socket_alive(path: str) -> bool:
    """osqueryd's socketExists(): the path exists and this process may write to it."""
    return os.path.exists(path) and os.access(path, os.W_OK)
