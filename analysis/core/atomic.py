"""Atomic file writes: a file appears complete under its name or not at all.

Every writer in bsmscan writes under a temporary name in the same folder
(``.<name>.tmp-<pid>``) and renames it when complete. A writer killed half-way (``kill -9``,
an evicted batch job) leaves its temporary file behind: :func:`remove_stale_temporaries`
removes those whose process is gone, at the start of the next write into the folder (the
feature store, the sample cache).
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from analysis.core.lock import pid_alive

#: The infix of every temporary file bsmscan writes (``.<name>.tmp-<pid>``).
TMP_INFIX = ".tmp-"
_TEMPORARY = re.compile(r"^\..+" + re.escape(TMP_INFIX) + r"(\d+)$")

log = logging.getLogger(__name__)


def temporary_path(path: Path) -> Path:
    """The temporary name :func:`atomic_path` writes ``path`` under."""
    return path.with_name(f".{path.name}{TMP_INFIX}{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` if the block succeeds, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | Path, payload: Any, **dumps_options) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically (``dumps_options`` go to ``json.dumps``)."""
    return write_text_atomic(path, json.dumps(payload, **dumps_options))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files in ``folder`` whose process is no longer alive here.

    Only this host's PIDs can be checked, so call it where no other host writes at the same
    time (the caller holds the folder's lock, :mod:`analysis.core.lock`). Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if match is None or not path.is_file() or int(match.group(1)) == os.getpid() or pid_alive(int(match.group(1))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left in %s by killed writers", len(removed), folder)
    return removed
