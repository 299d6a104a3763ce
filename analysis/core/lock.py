"""A lock on a folder while one bsmscan process writes into it (results folder, sample cache).

:func:`folder_lock` creates ``<folder>/.bsmscan.lock`` with ``os.open(O_CREAT | O_EXCL)``
(atomic on local and NFS filesystems alike) holding the owner's PID, host name and command.
A second process that wants the same folder gets :class:`FolderLockedError` naming the
first one's PID, instead of the two mixing their outputs. A lock left by a process that died
(``kill -9``, a power cut) is stale: when its PID is no longer alive on this host, the lock is
removed and taken over (a log line says so). A lock from another host is never taken over
(its PID cannot be checked from here); the message says which file to remove.

The same process may take the lock on a folder it already holds (nested stages, a pipeline
that calls the generation): the lock counts its holders and is removed by the last one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from analysis.core.errors import UserError

log = logging.getLogger(__name__)

#: The lock file's name inside a locked folder.
LOCK_NAME = ".bsmscan.lock"

_held: dict[str, int] = {}  # lock path -> times this process holds it
_held_guard = threading.Lock()


class FolderLockedError(UserError, RuntimeError):
    """Another live bsmscan process writes into this folder; the message names its PID."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (signal 0 probes without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def read_lock(path: str | Path) -> dict | None:
    """The owner recorded in a lock file (``pid``, ``host``, ``command``, ``since``), or None."""
    try:
        owner = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _owner_text(owner: dict | None) -> str:
    if owner is None:
        return "an unknown process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"PID {owner['pid']} on {owner.get('host', '?')} (since {since}: {str(owner.get('command', ''))[:200]})"


def _is_stale(owner: dict | None) -> bool:
    """A lock whose process is gone: same host and dead PID (an unreadable lock is not stale)."""
    return owner is not None and owner.get("host") == socket.gethostname() and not pid_alive(owner["pid"])


def _create(path: Path) -> bool:
    """Create the lock file atomically with this process as owner; False if it exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv), "since": time.time()}
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(owner))
    return True


def acquire(folder: str | Path, what: str = "folder") -> Path:
    """Take the lock on ``folder`` (created if needed); returns the lock file's path.

    Raises :class:`FolderLockedError` naming the owner's PID while another live process holds
    it. ``what`` names the folder in messages (``results folder``, ``sample cache``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    key = str(path.resolve())
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            return path
        for _ in range(3):  # a stale lock removed here may be taken by another process first
            if _create(path):
                _held[key] = 1
                return path
            owner = read_lock(path)
            if owner is not None and owner["pid"] == os.getpid() and owner.get("host") == socket.gethostname():
                _held[key] = 1  # ours, from a fork's parent or a lost count: keep it
                return path
            if not _is_stale(owner):
                if owner is None and not path.exists():
                    continue  # released between our two looks
                raise FolderLockedError(
                    f"the {what} {folder} is in use by {_owner_text(owner)}: wait for it to finish or use another "
                    f"folder (if that process is gone, remove {path})"
                )
            log.warning("removing the stale lock of %s on the %s %s (that process is gone)", _owner_text(owner), what, folder)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
    raise FolderLockedError(f"the {what} {folder}: could not take the lock {path} (other processes keep taking it)")


def release(folder: str | Path) -> None:
    """Give back one hold of this process's lock on ``folder`` (the file goes with the last)."""
    path = Path(folder) / LOCK_NAME
    key = str(path.resolve())
    with _held_guard:
        count = _held.get(key, 0)
        if count > 1:
            _held[key] = count - 1
            return
        _held.pop(key, None)
        owner = read_lock(path)
        if owner is not None and owner["pid"] == os.getpid():
            try:
                path.unlink()
            except OSError as error:
                if error.errno != errno.ENOENT:
                    raise


@contextmanager
def folder_lock(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold the lock on ``folder`` for the block (see :func:`acquire`); released on any exit."""
    path = acquire(folder, what)
    try:
        yield path
    finally:
        release(folder)
