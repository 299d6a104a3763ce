"""Hyperparameter search on the Dask cluster: random search, Hyperband, genetic algorithm.

Command line::

    python -m nn.search --config FILE --store DIR --out DIR --strategy random|hyperband|genetic
                        --trials N [--executor iterative|dask|condor] [--workers N] [--scheduler ADDR]

Each *trial* trains one network (:func:`nn.train.train_classifier`) with a configuration drawn
from the config's ``search.space`` and its own seed, :func:`~nn.search_space.trial_seed` (search
seed, trial index), and scores it with the ``search.objective``. Trials are Dask tasks (one per
worker at a time) or run one after the other (``--executor iterative``); both give the same
numbers. A trial that raises or ends with a non-finite loss is recorded as ``failed`` with its
error and the search goes on.

Strategies (:func:`run_search`):

* ``random``: ``trials`` configurations sampled independently.
* ``hyperband``: brackets of successive halving on the number of epochs. Bracket ``s`` starts
  ``n_s`` configurations at ``max_epochs / eta**s`` epochs; after each rung only the best
  ``1/eta`` are trained again with ``eta`` times more epochs (retrained from scratch with the same
  seed, which keeps every trial an independent, resumable task), up to ``max_epochs``. The
  ``trials`` configurations are shared out over the brackets with Hyperband's weights
  ``eta**s / (s + 1)``. The brackets advance in lockstep (rung r of every bracket is one batch
  of tasks), so the workers stay busy. The best trial may come from any rung.
* ``genetic``: Freitas et al. (JHEP 01 (2021) 076): a random population of ``population``
  networks; the top ``parents`` breed ``population - parents`` children by uniform crossover and
  mutation (probability ``mutation_probability``, :mod:`nn.genetic`); parents survive
  (not retrained); repeated until ``trials`` networks are trained.

Output directory: ``trials.jsonl`` (one JSON record per finished trial, appended as trials
finish; a rerun with the same settings skips every trial whose key -- a hash of its
hyperparameters, seed and epochs -- is already there), ``leaderboard.json``, ``best.json``,
``best_config.yaml`` (the full analysis config with the best hyperparameters), ``best_model/``
(its trained artifact, :func:`nn.artifact.load_model`), ``plots/`` and ``parallel.html``, and
``search.json`` (the settings' fingerprint: resuming into a folder of another search is refused).
The CLI's LocalCluster workers run JAX single-threaded, each pinned to its own core
(:func:`search_client`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from nn.search_space import (
    apply_hyperparameters,
    sample_configuration,
    trial_key,
    trial_seed,
)

__all__ = [
    "ResultsTable",
    "SearchResult",
    "asimov_objective",
    "leaderboard",
    "main",
    "run_search",
    "run_trial",
    "search_client",
    "single_threaded_workers",
    "trial_objective",
]

Log = Callable[[str], None] | None
TRIALS_FILE = "trials.jsonl"


# ------------------------------------------------------------------ objectives


def asimov_objective(result, config) -> dict[str, float]:
    """Best Asimov Z of a threshold scan on the validation split, per grid point.

    Scores the validation events of :class:`~nn.train.TrainingResult` ``result`` at each grid
    point (signal of that point against all background), histograms the physics-weighted scores
    (scaled by 1 / validation fraction to the full luminosity) in ``scan.score_bins`` bins on
    [0, 1] and scans them with :func:`analysis.core.statistics.threshold_scan` and the ``scan``
    settings. A point without a valid threshold gets Z = 0.
    """
    from analysis.core.names import point_name
    from analysis.core.statistics import threshold_scan
    from nn.model import signal_probability_numpy
    from nn.trainer import compiled_apply, predict_logits

    data, scan = result.data, config.scan
    part = data.splits["val"]
    scale = 1.0 / config.training.split_fractions[1]
    apply = compiled_apply(result.network)
    edges = np.linspace(0.0, 1.0, scan.score_bins + 1)
    background = np.flatnonzero(~part.is_signal)
    x_background = part.x[background].copy()
    d = len(data.feature_names)
    z_by_point = {}
    for index, (m, dm) in enumerate(data.signal_points):
        signal = np.flatnonzero(part.is_signal & (part.point == index))
        if data.parametrised:
            x_background[:, d:] = data.standardised_point(index)
        histograms = []
        for rows, x in ((signal, part.x[signal]), (background, x_background)):
            score = signal_probability_numpy(predict_logits(apply, result.params, x, config.training.eval_batch_size)) if len(rows) else np.zeros(0)
            weight = part.physics_weight[rows].astype(np.float64) * scale
            counts, _ = np.histogram(np.clip(score, 0.0, 1.0), bins=edges, weights=weight)
            sumw2, _ = np.histogram(np.clip(score, 0.0, 1.0), bins=edges, weights=weight**2)
            histograms += [counts, sumw2]
        scanned = threshold_scan(
            *histograms, edges,
            relative_bkg_uncertainty=scan.relative_background_uncertainty,
            include_mc_stat=scan.include_mc_stat_uncertainty,
            min_signal=scan.min_signal,
            min_background=scan.min_background,
        )
        z = float(scanned.best_z)
        z_by_point[point_name(m, dm)] = z if math.isfinite(z) else 0.0
    return z_by_point


def trial_objective(result, config) -> dict[str, Any]:
    """``{"objective", "score", "metrics"}`` of a trained network for ``config.search.objective``.

    ``objective`` is the raw value (AUC, loss or Z); ``score`` is what the search maximises
    (the objective, or minus the loss).
    """
    search = config.search
    val = result.metrics["val"]
    metrics = {"val_auc": float(val["auc"]), "val_loss": float(val["loss"]), "epochs_run": int(result.metrics["epochs_run"])}
    if search.objective == "auc":
        objective = metrics["val_auc"]
    elif search.objective == "loss":
        objective = metrics["val_loss"]
    else:
        z_by_point = asimov_objective(result, config)
        metrics["asimov_z"] = z_by_point
        if search.objective_point is not None:
            if search.objective_point not in z_by_point:
                raise ValueError(f"search.objective_point {search.objective_point!r} is not a trained grid point; have {sorted(z_by_point)}")
            objective = z_by_point[search.objective_point]
        else:
            objective = float(np.mean(list(z_by_point.values())))
    if not all(math.isfinite(v) for v in (metrics["val_auc"], metrics["val_loss"], objective)):
        raise FloatingPointError(f"non-finite validation metrics: auc {metrics['val_auc']}, loss {metrics['val_loss']}, objective {objective}")
    score = -objective if search.objective == "loss" else objective
    return {"objective": float(objective), "score": float(score), "metrics": metrics}


# ------------------------------------------------------------------ one trial


@functools.lru_cache(maxsize=2)
def _cached_table(store: str):
    from nn.data import read_feature_store

    return read_feature_store(store)


def run_trial(store: str, config_data: dict, trial: dict) -> dict[str, Any]:
    """Train and score one trial; the task each Dask worker runs (also the iterative path).

    ``config_data`` is the analysis config as a JSON dict, ``trial`` a dict with ``index``,
    ``params``, ``seed``, ``epochs`` (and free-form ``tags``). Returns the trial's record with
    ``status`` ``ok`` (``objective``, ``score``, ``metrics``, and under ``_artifact`` the
    parameters and metadata of the trained network) or ``failed`` (``error``).
    """
    from analysis.core.config import config_from_dict
    from nn.train import train_classifier

    started = time.perf_counter()
    record = dict(trial, key=trial_key(trial["params"], trial["seed"], trial["epochs"]))
    try:
        config = apply_hyperparameters(config_from_dict(config_data, "search trial"), trial["params"], trial["seed"], trial["epochs"])
        result = train_classifier(_cached_table(str(store)), config, log=None)
        record.update(status="ok", **trial_objective(result, config))
        import jax

        record["_artifact"] = {"params": jax.device_get(result.params), "metadata": result.metadata}
    except Exception as error:  # a failing trial is a result, not the end of the search
        record.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc(limit=3))
    record["seconds"] = time.perf_counter() - started
    return record


# ------------------------------------------------------------------ results table


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
        """Add a finished trial (written and flushed at once)."""
        clean = {k: v for k, v in record.items() if not k.startswith("_")}
        self.records[clean["key"]] = clean
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as stream:
            stream.write(json.dumps(clean, sort_keys=True, allow_nan=False, default=_json_default) + "\n")
            stream.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------ running trials


@dataclass
class _Runner:
    """Runs batches of trials inline or on a Dask client, skipping those already in the table."""

    store: str
    config: Any
    table: ResultsTable
    out: Path
    client: Any = None
    trial_fn: Callable = run_trial
    log: Log = print
    executed: int = 0
    best: dict[str, Any] | None = None

    def __post_init__(self):
        self.config_data = self.config.model_dump(mode="json")

    def run(self, trials: Sequence[dict]) -> list[dict[str, Any]]:
        """Records of ``trials`` (in their order); new ones are run and appended as they finish."""
        keys = [trial_key(t["params"], t["seed"], t["epochs"]) for t in trials]
        todo = [t for t, key in zip(trials, keys) if key not in self.table]
        if self.log is not None and len(todo) < len(trials):
            self.log(f"resuming: {len(trials) - len(todo)} of {len(trials)} trial(s) already in {self.table.path.name}")
        for record in self._execute(todo):
            self.executed += 1
            self.table.append(record)
            self._keep_if_best(record)
            if self.log is not None:
                self.log(_record_line(record))
        return [self.table.records[key] for key in keys]

    def _execute(self, trials: Sequence[dict]) -> Iterator[dict]:
        if self.client is None:
            for trial in trials:
                yield self.trial_fn(self.store, self.config_data, trial)
            return
        from distributed import as_completed

        futures = {self.client.submit(self.trial_fn, self.store, self.config_data, trial, pure=False): trial for trial in trials}
        for future in as_completed(list(futures)):
            try:
                yield future.result()
            except Exception as error:  # the worker itself died (out of memory, killed)
                trial = futures[future]
                yield dict(trial, key=trial_key(trial["params"], trial["seed"], trial["epochs"]), status="failed",
                           error=f"{type(error).__name__}: {error}", seconds=0.0)

    def _keep_if_best(self, record: dict) -> None:
        if record.get("status") != "ok" or "_artifact" not in record:
            return
        if self.best is None or record["score"] > self.best["score"]:
            self.best = {k: v for k, v in record.items() if not k.startswith("_")}
            _save_best_model(self.out / "best_model", record)


def _save_best_model(directory: Path, record: dict) -> None:
    from nn.artifact import save_artifact

    metadata = dict(record["_artifact"]["metadata"])
    metadata["search"] = {k: record[k] for k in ("key", "params", "seed", "epochs", "objective", "score")}
    save_artifact(directory, record["_artifact"]["params"], metadata)


def _record_line(record: dict) -> str:
    params = ", ".join(f"{k}={_short(v)}" for k, v in record["params"].items())
    if record["status"] == "ok":
        outcome = f"objective {record['objective']:.5f}"
    else:
        outcome = f"FAILED ({record['error'].splitlines()[0][:120]})"
    return f"trial {record['index']:4d} [{record['epochs']} ep] {outcome}  {params}  ({record.get('seconds', 0):.1f} s)"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _trial(index: int, params: dict, search_seed: int, epochs: int, **tags) -> dict:
    return {"index": index, "params": params, "seed": trial_seed(search_seed, index), "epochs": int(epochs), "tags": tags}


# ------------------------------------------------------------------ strategies


def _score(record: dict) -> float:
    return record["score"] if record.get("status") == "ok" else -math.inf


def _random(runner: _Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
    rng = np.random.default_rng([seed, 0])
    batch = [_trial(i, sample_configuration(search.space, rng), seed, epochs, strategy="random") for i in range(trials)]
    return runner.run(batch)


def hyperband_brackets(trials: int, min_epochs: int, max_epochs: int, eta: int) -> list[tuple[int, list[int]]]:
    """``[(configurations, [epochs of each rung]), ...]`` of each Hyperband bracket, most
    aggressive first: ``trials`` configurations shared out with weights ``eta**s / (s + 1)``."""
    s_max = 0
    while min_epochs * eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    weights = np.array([eta**s / (s + 1) for s in range(s_max, -1, -1)])
    share = trials * weights / weights.sum()
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: trials - counts.sum()]:
        counts[i] += 1  # largest remainders
    brackets = []
    for n, s in zip(counts, range(s_max, -1, -1)):
        if n <= 0:
            continue
        rungs = [max(min_epochs, int(round(max_epochs / eta ** (s - i)))) for i in range(s + 1)]
        brackets.append((int(n), rungs))
    return brackets


def _hyperband(runner: _Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
    rng = np.random.default_rng([seed, 1])
    brackets, index = [], 0
    for bracket, (n, rungs) in enumerate(hyperband_brackets(trials, search.min_epochs, search.max_epochs, search.eta)):
        alive = [(index + j, sample_configuration(search.space, rng)) for j in range(n)]
        index += n
        brackets.append({"bracket": bracket, "rungs": rungs, "alive": alive})
    records = []
    # the brackets advance in lockstep: rung r of every bracket is one batch, so the workers
    # stay busy; within a bracket only the best 1/eta of a rung go on to the next
    for rung in range(max(len(b["rungs"]) for b in brackets)):
        active = [b for b in brackets if rung < len(b["rungs"]) and b["alive"]]
        batch = [
            _trial(i, params, seed, b["rungs"][rung], strategy="hyperband", bracket=b["bracket"], rung=rung)
            for b in active for i, params in b["alive"]
        ]
        results = iter(runner.run(batch))
        for b in active:
            mine = [next(results) for _ in b["alive"]]
            records += mine
            keep = max(1, len(b["alive"]) // search.eta)
            order = sorted(range(len(mine)), key=lambda j: (-_score(mine[j]), b["alive"][j][0]))
            b["alive"] = [b["alive"][j] for j in order[:keep] if mine[j].get("status") == "ok"]
    return records


def _genetic(runner: _Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
    from nn.genetic import next_generation

    rng = np.random.default_rng([seed, 2])
    size = min(search.population, trials)
    population = [sample_configuration(search.space, rng) for _ in range(size)]
    batch = [_trial(i, params, seed, epochs, strategy="genetic", generation=0) for i, params in enumerate(population)]
    current = runner.run(batch)
    records, index, generation = list(current), size, 0
    while index < trials:
        generation += 1
        parents_k = min(search.parents, len(current))
        elite, children = next_generation(
            [r["params"] for r in current], [_score(r) for r in current], search.space,
            parents_k + min(search.population - parents_k, trials - index), parents_k, search.mutation_probability, rng,
            seen=[r["params"] for r in records],
        )
        by_params = {json.dumps(r["params"], sort_keys=True): r for r in current}
        survivors = [by_params[json.dumps(p, sort_keys=True)] for p in elite]
        batch = [_trial(index + j, params, seed, epochs, strategy="genetic", generation=generation) for j, params in enumerate(children)]
        index += len(batch)
        new = runner.run(batch)
        records += new
        current = survivors + new
    return records


STRATEGIES = {"random": _random, "hyperband": _hyperband, "genetic": _genetic}


# ------------------------------------------------------------------ the search


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


def leaderboard(records: Iterable[dict], top: int | None = None) -> list[dict[str, Any]]:
    """Successful trials, best score first (ties: lower index, then more epochs); each trial key once."""
    unique = {r["key"]: r for r in records if r.get("status") == "ok"}
    ranked = sorted(unique.values(), key=lambda r: (-r["score"], r["index"], -r["epochs"]))
    return ranked[:top] if top is not None else ranked


def run_search(
    config,
    store: str | Path,
    out: str | Path,
    strategy: str | None = None,
    trials: int | None = None,
    client=None,
    trial_fn: Callable = run_trial,
    plots: bool = True,
    log: Log = print,
) -> SearchResult:
    """Run the ``config.search`` hyperparameter search on the feature ``store`` into ``out``.

    ``strategy`` / ``trials`` override ``search.strategy`` / ``search.trials``; ``client`` is a
    ``distributed.Client`` to run trials on (None: inline). ``trial_fn`` replaces
    :func:`run_trial` (same signature; tests use a cheap objective). Returns a
    :class:`SearchResult`; writes the files listed in the module doc.
    """
    started = time.perf_counter()
    search = config.search
    if strategy is not None:
        search = search.model_copy(update={"strategy": strategy})
    if trials is not None:
        if trials <= 0:
            raise ValueError(f"trials must be > 0 (got {trials})")
        search = search.model_copy(update={"trials": trials})
    config = config.model_copy(update={"search": search})
    if not search.space:
        raise ValueError("search.space is empty: name at least one hyperparameter to vary")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(search.seed if search.seed is not None else config.seed)
    epochs = int(search.epochs or config.training.max_epochs)
    _check_fingerprint(out / "search.json", config, store)
    table = ResultsTable(out / TRIALS_FILE)
    runner = _Runner(str(store), config, table, out, client=client, trial_fn=trial_fn, log=log)
    if log is not None:
        where = "inline" if client is None else f"on {len(client.scheduler_info().get('workers', {}))} Dask worker(s)"
        log(f"{search.strategy} search, {search.trials} trial(s), objective {search.objective}, {where}; results in {out}")
    records = STRATEGIES[search.strategy](runner, search, seed, search.trials, epochs)
    board = leaderboard(records)
    best = board[0] if board else None
    result = SearchResult(records, best, runner.executed, out)
    _write_outputs(result, config, board, store, log)
    if plots and records:
        from nn.search_plots import write_search_plots

        result.files.update(write_search_plots(records, out, objective=search.objective))
    result.seconds = time.perf_counter() - started
    if log is not None:
        failed = sum(r.get("status") != "ok" for r in records)
        log(f"{len(records)} trial(s), {runner.executed} trained now, {failed} failed, {result.seconds:.1f} s")
        for line in format_leaderboard(board[:10], search.objective):
            log(line)
    return result


def _check_fingerprint(path: Path, config, store) -> None:
    """Refuse to resume into a folder whose trials came from another store or other settings
    (everything but the strategy and trial budget must match)."""
    data = config.model_dump(mode="json")
    for name in ("strategy", "trials", "use_best_model", "directory"):
        data["search"].pop(name, None)
    data.pop("executor", None)
    data.pop("cluster", None)
    text = json.dumps({"config": data, "store": str(Path(store).resolve())}, sort_keys=True)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
    if path.exists():
        previous = json.loads(path.read_text()).get("fingerprint")
        if previous != fingerprint:
            raise ValueError(f"{path.parent} holds trials of a search with another store or config; use another --out")
    else:
        path.write_text(json.dumps({"fingerprint": fingerprint, "store": str(store), "config": data}, indent=1))


def format_leaderboard(board: Sequence[dict], objective: str) -> list[str]:
    """Printable lines of a leaderboard."""
    if not board:
        return ["no successful trial"]
    names = list(board[0]["params"])
    lines = [f"{'rank':>4} {'trial':>5} {'epochs':>6} {objective:>10}  " + "  ".join(f"{n:>13}" for n in names)]
    for rank, r in enumerate(board, 1):
        lines.append(f"{rank:4d} {r['index']:5d} {r['epochs']:6d} {r['objective']:10.5f}  " + "  ".join(f"{_short(r['params'][n]):>13}" for n in names))
    return lines


def _write_outputs(result: SearchResult, config, board: list[dict], store, log: Log) -> None:
    import yaml

    out = result.out
    (out / "leaderboard.json").write_text(json.dumps(board, indent=1, default=_json_default))
    result.files["leaderboard"] = str(out / "leaderboard.json")
    if result.best is None:
        return
    best = result.best
    best_config = apply_hyperparameters(config, best["params"], best["seed"], best["epochs"])
    (out / "best_config.yaml").write_text(yaml.safe_dump(best_config.model_dump(mode="json"), sort_keys=False))
    (out / "best.json").write_text(json.dumps({"objective_name": config.search.objective, **best}, indent=1, default=_json_default))
    model_dir = out / "best_model"
    if _model_search_key(model_dir) != best["key"]:
        # the best trial came from an earlier (interrupted) run: train it again, same seed
        record = run_trial(str(store), config.model_dump(mode="json"), {k: best[k] for k in ("index", "params", "seed", "epochs", "tags") if k in best})
        if record.get("status") == "ok":
            _save_best_model(model_dir, record)
        elif log is not None:
            log(f"could not retrain the best trial for its artifact: {record.get('error')}")
    result.files.update(best=str(out / "best.json"), best_config=str(out / "best_config.yaml"), best_model=str(model_dir))


def _model_search_key(directory: Path) -> str | None:
    try:
        return json.loads((directory / "model.json").read_text())["search"]["key"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def best_model_directory(search_dir: str | Path) -> Path:
    """The ``best_model`` artifact folder of a finished search in ``search_dir`` (ValueError if none)."""
    directory = Path(search_dir).expanduser() / "best_model"
    if not (directory / "model.json").is_file() or not (Path(search_dir).expanduser() / "best.json").is_file():
        raise ValueError(f"no finished search with a best model in {search_dir} (run python -m nn.search first)")
    return directory


# ------------------------------------------------------------------ local workers

#: XLA flags of the local search workers: one compute thread each (one worker per core, like
#: the columnar stages' single-threaded workers), so that 2 workers do not fight over the cores.
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@contextlib.contextmanager
def single_threaded_workers() -> Iterator[None]:
    """Within this block, worker processes that a LocalCluster spawns run JAX on one thread
    (``XLA_FLAGS`` is set in this process's environment, which they inherit, and restored after)."""
    before = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{before} {SINGLE_THREAD_XLA_FLAGS}" if before else SINGLE_THREAD_XLA_FLAGS
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before


@contextlib.contextmanager
def search_client(workers: int | None = None, scheduler: str | None = None, cluster_config=None) -> Iterator[Any]:
    """A Dask client for the search (:func:`analysis.core.executors.dask_client`); a new LocalCluster
    gets single-threaded JAX workers (:func:`single_threaded_workers`)."""
    from analysis.core.executors import dask_client

    local = scheduler is None and cluster_config is None
    with contextlib.ExitStack() as stack:
        if local:
            stack.enter_context(single_threaded_workers())
        client = stack.enter_context(dask_client(workers, scheduler, cluster_config=cluster_config))
        if local:
            pin_workers(client)
        yield client


def _pin_process(core: int) -> int:
    """Pin every thread of this process (and the threads it starts later) to CPU ``core``."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {core})
        except OSError:
            pass
    return core


def pin_workers(client) -> dict[str, int]:
    """Pin local worker ``i`` to CPU ``i mod cores`` (Linux; a no-op elsewhere), so that
    single-threaded workers do not migrate onto each other's cores. Returns {worker: core}."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        return {}
    cores = sorted(os.sched_getaffinity(0))
    workers = sorted(client.scheduler_info()["workers"])
    if len(workers) > len(cores):
        return {}
    return {w: client.run(_pin_process, cores[i], workers=[w])[w] for i, w in enumerate(workers)}


# ------------------------------------------------------------------ command line


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m nn.search``); returns the exit status."""
    from analysis.core.config import ConfigError, default_config, load_config
    from nn.data import FeatureStoreError

    parser = argparse.ArgumentParser(prog="python -m nn.search", description="Hyperparameter search for the classifier.")
    parser.add_argument("--config", help="analysis config YAML (its search: section); default: the built-in one")
    parser.add_argument("--store", required=True, help="feature-store directory")
    parser.add_argument("--out", required=True, help="output directory (rerun with the same one to resume)")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), help="default: search.strategy")
    parser.add_argument("--trials", type=int, help="default: search.trials")
    parser.add_argument("--objective", choices=["auc", "loss", "asimov"], help="default: search.objective")
    parser.add_argument("--executor", choices=["iterative", "dask", "condor"], default="dask")
    parser.add_argument("--workers", type=int, help="local Dask workers (default: one per core)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    log = None if args.quiet else (lambda line: print(line, flush=True))
    try:
        config = load_config(args.config) if args.config else default_config()
        if args.objective:
            config = config.model_copy(update={"search": config.search.model_copy(update={"objective": args.objective})})
        if not Path(args.store, "schema.json").is_file():
            raise FeatureStoreError(f"{args.store} is not a feature store (no schema.json)")
        kwargs = dict(strategy=args.strategy, trials=args.trials, plots=not args.no_plots, log=log)
        if args.executor == "iterative":
            result = run_search(config, args.store, args.out, **kwargs)
        else:
            cluster = config.cluster if args.executor == "condor" else None
            with search_client(args.workers, args.scheduler, cluster_config=cluster) as client:
                result = run_search(config, args.store, args.out, client=client, **kwargs)
    except (ConfigError, FeatureStoreError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.best is None:
        print("error: every trial failed; see trials.jsonl", file=sys.stderr)
        return 1
    print(f"best trial {result.best['index']}: {config.search.objective} = {result.best['objective']:.5f} "
          f"with {json.dumps(result.best['params'])}; model in {result.files.get('best_model')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
