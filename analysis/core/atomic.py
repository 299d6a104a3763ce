"""Atomic file writes: a file appears complete under its name or not at all.

Every writer in bsmscan writes under a temporary name in the same folder
(``.<name>.tmp-<pid>``) and renames it when complete.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

#: The infix of every temporary file bsmscan writes (``.<name>.tmp-<pid>``).
TMP_INFIX = ".tmp-"


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
