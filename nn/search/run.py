"""``run_search``: one search from the config's ``search`` section into an output folder.

Output directory: ``trials.jsonl`` (one JSON record per finished trial, appended as trials
finish; a rerun with the same settings skips every trial whose key -- a hash of its
hyperparameters, seed and epochs -- is already there), ``study.journal`` (the Optuna study of a
``bayesian`` search), ``leaderboard.json``, ``best.json``, ``best_config.yaml`` (the full
analysis config with the best hyperparameters), ``best_model/`` (its trained artifact,
:func:`nn.artifact.load_model`), ``plots/`` and ``parallel.html``, and ``search.json`` (the
settings' fingerprint: resuming into a folder of another search is refused).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from analysis.core.errors import UserError
from nn.search.plots import write_search_plots
from nn.search.runner import Runner, save_best_model
from nn.search.space import apply_hyperparameters
from nn.search.strategies import STRATEGIES
from nn.search.table import (
    TRIALS_FILE,
    ResultsTable,
    format_leaderboard,
    json_default,
    leaderboard,
)
from nn.search.trial import run_trial

__all__ = ["SearchError", "SearchResult", "best_model_directory", "run_search"]

log = logging.getLogger(__name__)


class SearchError(UserError, ValueError):
    """A search that cannot run as asked (empty space, a folder of another search, no result)."""


@dataclass
class SearchResult:
    """Outcome of :func:`run_search`: every trial record (in strategy order), the best one, the
    number of trials trained in this call (the others came from the table) and the output folder."""

    records: list[dict[str, Any]]
    best: dict[str, Any] | None
    executed: int
    out: Path
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)


def run_search(
    config,
    store: str | Path,
    out: str | Path,
    strategy: str | None = None,
    trials: int | None = None,
    client=None,
    trial_fn: Callable = run_trial,
    plots: bool = True,
    configurations: Sequence[Mapping[str, Any]] | None = None,
) -> SearchResult:
    """Run the ``config.search`` hyperparameter search on the feature ``store`` into ``out``.

    ``strategy`` / ``trials`` override ``search.strategy`` / ``search.trials``; ``client`` is a
    ``distributed.Client`` to run trials on (None: inline). ``trial_fn`` replaces
    :func:`~nn.search.trial.run_trial` (same signature; tests use a cheap objective).
    ``configurations``: the trials of a ``grid`` search (default: the space's full grid).
    Progress is logged. Returns a :class:`SearchResult`; writes the files listed in the module doc.
    """
    started = time.perf_counter()
    search = config.search
    if strategy is not None:
        search = search.model_copy(update={"strategy": strategy})
    if trials is not None:
        if trials <= 0:
            raise SearchError(f"trials must be > 0 (got {trials})")
        search = search.model_copy(update={"trials": trials})
    search = type(search).model_validate(search.model_dump())  # the overrides are validated too
    config = config.model_copy(update={"search": search})
    if not search.space:
        raise SearchError("search.space is empty: name at least one hyperparameter to vary")
    if configurations is not None and search.strategy != "grid":
        raise SearchError(f"explicit configurations need the grid strategy, not {search.strategy!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(search.seed if search.seed is not None else config.seed)
    epochs = int(search.epochs or config.training.max_epochs)
    _check_fingerprint(out / "search.json", config, store)
    runner = Runner(str(store), config, ResultsTable(out / TRIALS_FILE), out, client=client, trial_fn=trial_fn)
    where = "inline" if client is None else f"on {len(client.scheduler_info().get('workers', {}))} Dask worker(s)"
    budget = "every configuration" if search.strategy == "grid" else f"{search.trials} trial(s)"
    log.info("%s search, %s, objective %s, %s; results in %s", search.strategy, budget, search.objective, where, out)
    run = STRATEGIES[search.strategy]
    if search.strategy == "grid":
        run = functools.partial(run, configurations=configurations)
    records = run(runner, search, seed, search.trials, epochs)
    board = leaderboard(records)
    result = SearchResult(records, board[0] if board else None, runner.executed, out)
    _write_outputs(result, config, board, store)
    if plots and records:
        result.files.update(write_search_plots(records, out, objective=search.objective))
    result.seconds = time.perf_counter() - started
    failed = sum(r.get("status") == "failed" for r in records)
    pruned = sum(r.get("status") == "pruned" for r in records)
    log.info("%d trial(s), %d trained now, %d failed, %d pruned, %.1f s", len(records), runner.executed, failed, pruned, result.seconds)
    for line in format_leaderboard(board[:10], search.objective):
        log.info("%s", line)
    return result


def _check_fingerprint(path: Path, config, store) -> None:
    """Refuse to resume into a folder whose trials came from another store or other settings
    (everything but the strategy, trial budget and where the trials run must match)."""
    data = config.model_dump(mode="json")
    for name in ("strategy", "trials", "use_best_model", "directory", "ask_batch"):
        data["search"].pop(name, None)
    data.pop("executor", None)
    data.pop("cluster", None)
    text = json.dumps({"config": data, "store": str(Path(store).resolve())}, sort_keys=True)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
    if path.exists():
        previous = json.loads(path.read_text()).get("fingerprint")
        if previous != fingerprint:
            raise SearchError(f"{path.parent} holds trials of a search with another store or config; use another --out")
    else:
        path.write_text(json.dumps({"fingerprint": fingerprint, "store": str(store), "config": data}, indent=1))


def _write_outputs(result: SearchResult, config, board: list[dict], store) -> None:
    out = result.out
    (out / "leaderboard.json").write_text(json.dumps(board, indent=1, default=json_default))
    result.files["leaderboard"] = str(out / "leaderboard.json")
    if result.best is None:
        return
    best = result.best
    best_config = apply_hyperparameters(config, best["params"], best["seed"], best["epochs"])
    (out / "best_config.yaml").write_text(yaml.safe_dump(best_config.model_dump(mode="json"), sort_keys=False))
    (out / "best.json").write_text(json.dumps({"objective_name": config.search.objective, **best}, indent=1, default=json_default))
    model_dir = out / "best_model"
    if _model_search_key(model_dir) != best["key"]:
        # the best trial came from an earlier (interrupted) run: train it again, same seed
        record = run_trial(str(store), config.model_dump(mode="json"), {k: best[k] for k in ("index", "params", "seed", "epochs", "tags") if k in best})
        if record.get("status") == "ok":
            save_best_model(model_dir, record)
        else:
            log.warning("could not retrain the best trial for its artifact: %s", record.get("error"))
    result.files.update(best=str(out / "best.json"), best_config=str(out / "best_config.yaml"), best_model=str(model_dir))


def _model_search_key(directory: Path) -> str | None:
    try:
        return json.loads((directory / "model.json").read_text())["search"]["key"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def best_model_directory(search_dir: str | Path) -> Path:
    """The ``best_model`` artifact folder of a finished search in ``search_dir`` (:class:`SearchError` if none)."""
    directory = Path(search_dir).expanduser() / "best_model"
    if not (directory / "model.json").is_file() or not (Path(search_dir).expanduser() / "best.json").is_file():
        raise SearchError(f"no finished search with a best model in {search_dir} (run python -m nn.search first)")
    return directory
