"""Provenance of a result: which config, code, packages, machine and seeds produced it.

:func:`collect_provenance` gathers it into a JSON-serialisable dict for the report's
``summary.json``. Every lookup is defensive: a missing package, a checkout without git or a
JAX that cannot start gives ``None`` for that entry, never an exception that would lose the
results it is meant to describe.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "collect_provenance", "git_state", "jax_device", "package_versions"]

#: Distributions whose versions are recorded (bsmscan's main dependencies).
PACKAGES = (
    "coffea", "dask", "distributed", "awkward", "uproot", "jax", "jaxlib", "flax", "optax",
    "hist", "numpy", "pythia8mc", "fastjet",
)

#: The repository this module belongs to (the default place to ask git).
_REPOSITORY = Path(__file__).resolve().parents[2]
_GIT_TIMEOUT_S = 10


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``importlib.metadata``); None if not installed."""
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(repo_dir: Path, *args: str) -> str | None:
    """Output of ``git <args>`` in ``repo_dir``, or None when git fails or is not installed."""
    try:
        completed = subprocess.run(
            ["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def git_state(repo_dir: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the git checkout at ``repo_dir``.

    ``dirty`` is True when tracked files are modified or untracked (not ignored) files exist;
    both are None when ``repo_dir`` (default: this repository) is not a git checkout.
    """
    repo_dir = Path(repo_dir) if repo_dir is not None else _REPOSITORY
    commit = _git(repo_dir, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(repo_dir, "status", "--porcelain")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def jax_device() -> str | None:
    """Description of JAX's default device, e.g. ``"gpu:0 (NVIDIA H100 80GB HBM3)"``;
    None when JAX is not installed or cannot start a backend."""
    if importlib.util.find_spec("jax") is None:
        return None
    try:
        import jax  # optional and heavy: only when the report asks which device trained

        device = jax.devices()[0]
        return f"{device.platform}:{device.id} ({device.device_kind})"
    except Exception:  # noqa: BLE001 - any backend failure only means "unknown device"
        return None


def collect_provenance(
    config: Any,
    seeds: Mapping[str, Any],
    executor: str,
    device: str | None = None,
    repo_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Everything needed to say how a result was made, as a JSON-serialisable dict.

    Keys: ``config_hash`` (``config.hash()``), ``git_commit`` and ``git_dirty`` (of
    ``repo_dir``, default this repository; None outside a git checkout), ``packages``
    (:data:`PACKAGES` -> version or None), ``python``, ``hostname``, ``timestamp_utc``
    (ISO 8601), ``seeds``, ``executor`` and ``device`` (the given one, else JAX's default
    device from :func:`jax_device`).
    """
    git = git_state(repo_dir)
    return {
        "config_hash": config.hash(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "packages": package_versions(),
        "python": platform.python_version(),
        "hostname": socket.gethostname(),
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seeds": dict(seeds),
        "executor": executor,
        "device": device if device is not None else jax_device(),
    }
