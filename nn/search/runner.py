"""Running batches of trials inline or on a Dask client, skipping those already in the table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from distributed import as_completed

from nn.artifact import save_artifact
from nn.search.space import trial_key, trial_seed
from nn.search.table import ResultsTable, record_line
from nn.search.trial import run_trial

__all__ = ["Runner", "make_trial", "save_best_model"]

log = logging.getLogger(__name__)


def make_trial(index: int, params: dict, search_seed: int, epochs: int, seed: int | None = None, **tags) -> dict:
    """A trial dict; its training seed is :func:`~nn.search.space.trial_seed` (search seed, index)
    unless ``seed`` is given."""
    seed = trial_seed(search_seed, index) if seed is None else int(seed)
    return {"index": index, "params": params, "seed": seed, "epochs": int(epochs), "tags": tags}


def save_best_model(directory: Path, record: dict) -> None:
    """Write the trained network of an ``ok`` record (with its ``_artifact``) to ``directory``."""
    metadata = dict(record["_artifact"]["metadata"])
    metadata["search"] = {k: record[k] for k in ("key", "params", "seed", "epochs", "objective", "score")}
    save_artifact(directory, record["_artifact"]["params"], metadata)


@dataclass
class Runner:
    """Runs batches of trials inline (``client`` None) or as Dask tasks, appends each record to
    the table as it finishes, and keeps the best model so far in ``out/best_model``."""

    store: str
    config: Any
    table: ResultsTable
    out: Path
    client: Any = None
    trial_fn: Callable = run_trial
    executed: int = 0
    best: dict[str, Any] | None = None

    def __post_init__(self):
        self.config_data = self.config.model_dump(mode="json")

    def run(self, trials: Sequence[dict]) -> list[dict[str, Any]]:
        """Records of ``trials`` (in their order); new ones are run and appended as they finish."""
        keys = [trial_key(t["params"], t["seed"], t["epochs"]) for t in trials]
        todo = [t for t, key in zip(trials, keys) if key not in self.table]
        if len(todo) < len(trials):
            log.info("resuming: %d of %d trial(s) already in %s", len(trials) - len(todo), len(trials), self.table.path.name)
        for record in self._execute(todo):
            self.executed += 1
            self.table.append(record)
            self._keep_if_best(record)
            log.info("%s", record_line(record))
        return [self.table.records[key] for key in keys]

    def _execute(self, trials: Sequence[dict]) -> Iterator[dict]:
        if self.client is None:
            for trial in trials:
                yield self.trial_fn(self.store, self.config_data, trial)
            return
        futures = {self.client.submit(self.trial_fn, self.store, self.config_data, trial, pure=False): trial for trial in trials}
        for future in as_completed(list(futures)):
            try:
                yield future.result()
            except Exception as error:  # the worker itself died (out of memory, killed)
                trial = futures[future]
                yield dict({k: v for k, v in trial.items() if not k.startswith("_")},
                           key=trial_key(trial["params"], trial["seed"], trial["epochs"]), status="failed",
                           error=f"{type(error).__name__}: {error}", seconds=0.0)

    def _keep_if_best(self, record: dict) -> None:
        if record.get("status") != "ok" or "_artifact" not in record:
            return
        if self.best is None or record["score"] > self.best["score"]:
            self.best = {k: v for k, v in record.items() if not k.startswith("_")}
            save_best_model(self.out / "best_model", record)
