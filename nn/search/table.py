"""The results table of a search (``OUT/trials.jsonl``) and its leaderboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["TRIALS_FILE", "ResultsTable", "format_leaderboard", "json_default", "leaderboard", "record_line"]

TRIALS_FILE = "trials.jsonl"


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class ResultsTable:
    """The append-only JSON-lines table of finished trials (``OUT/trials.jsonl``), keyed by trial key."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption: that trial runs again
                self.records[record["key"]] = record

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, record: dict[str, Any]) -> None:
        """Add a finished trial (written and flushed at once); keys starting with ``_`` are left out."""
        clean = {k: v for k, v in record.items() if not k.startswith("_")}
        self.records[clean["key"]] = clean
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as stream:
            stream.write(json.dumps(clean, sort_keys=True, allow_nan=False, default=json_default) + "\n")
            stream.flush()


def leaderboard(records: Iterable[dict], top: int | None = None) -> list[dict[str, Any]]:
    """Successful trials, best score first (ties: lower index, then more epochs); each trial key once."""
    unique = {r["key"]: r for r in records if r.get("status") == "ok"}
    ranked = sorted(unique.values(), key=lambda r: (-r["score"], r["index"], -r["epochs"]))
    return ranked[:top] if top is not None else ranked


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_leaderboard(board: Sequence[dict], objective: str) -> list[str]:
    """Printable lines of a leaderboard."""
    if not board:
        return ["no successful trial"]
    names = list(board[0]["params"])
    lines = [f"{'rank':>4} {'trial':>5} {'epochs':>6} {objective:>10}  " + "  ".join(f"{n:>13}" for n in names)]
    for rank, r in enumerate(board, 1):
        lines.append(f"{rank:4d} {r['index']:5d} {r['epochs']:6d} {r['objective']:10.5f}  " + "  ".join(f"{_short(r['params'][n]):>13}" for n in names))
    return lines


def record_line(record: dict) -> str:
    """One log line of a finished trial."""
    params = ", ".join(f"{k}={_short(v)}" for k, v in record["params"].items())
    if record["status"] == "ok":
        outcome = f"objective {record['objective']:.5f}"
    elif record["status"] == "pruned":
        outcome = f"pruned after epoch {record.get('pruned_at')}"
    else:
        outcome = f"FAILED ({record['error'].splitlines()[0][:120]})"
    return f"trial {record['index']:4d} [{record['epochs']} ep] {outcome}  {params}  ({record.get('seconds', 0):.1f} s)"
