"""Search strategies: random, Hyperband, genetic algorithm and grid (Bayesian: :mod:`nn.search.bayesian`).

Each strategy is ``(runner, search, seed, trials, epochs) -> records`` and hands batches of
trials to the :class:`~nn.search.runner.Runner` (one batch runs in parallel on the cluster):

* ``random``: ``trials`` configurations sampled independently (one batch).
* ``hyperband``: brackets of successive halving on the number of epochs. Bracket ``s`` starts
  ``n_s`` configurations at ``max_epochs / eta**s`` epochs; after each rung only the best
  ``1/eta`` are trained again with ``eta`` times more epochs (retrained from scratch with the same
  seed, which keeps every trial an independent, resumable task), up to ``max_epochs``. The
  ``trials`` configurations are shared out over the brackets with Hyperband's weights
  ``eta**s / (s + 1)``. The brackets advance in lockstep (rung r of every bracket is one batch
  of tasks), so the workers stay busy. The best trial may come from any rung.
* ``genetic``: Freitas et al. (JHEP 01 (2021) 076): a random population of ``population``
  networks; the top ``parents`` breed ``population - parents`` children by uniform crossover and
  mutation (probability ``mutation_probability``, :mod:`nn.search.genetic`); parents survive
  (not retrained); repeated until ``trials`` networks are trained.
* ``grid``: every combination of the space's choices and int ranges
  (:func:`~nn.search.space.grid_configurations`, or the explicit ``configurations`` given to
  :func:`~nn.search.run.run_search`), all with the config's training seed, in one batch.
"""

from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

import numpy as np

from nn.search.bayesian import bayesian
from nn.search.genetic import next_generation
from nn.search.runner import Runner, make_trial
from nn.search.space import grid_configurations, sample_configuration
from nn.train import training_seed

__all__ = ["STRATEGIES", "hyperband_brackets"]


def _score(record: dict) -> float:
    return record["score"] if record.get("status") == "ok" else -math.inf


def _random(runner: Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
    rng = np.random.default_rng([seed, 0])
    batch = [make_trial(i, sample_configuration(search.space, rng), seed, epochs, strategy="random") for i in range(trials)]
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


def _hyperband(runner: Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
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
            make_trial(i, params, seed, b["rungs"][rung], strategy="hyperband", bracket=b["bracket"], rung=rung)
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


def _genetic(runner: Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
    rng = np.random.default_rng([seed, 2])
    size = min(search.population, trials)
    population = [sample_configuration(search.space, rng) for _ in range(size)]
    batch = [make_trial(i, params, seed, epochs, strategy="genetic", generation=0) for i, params in enumerate(population)]
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
        batch = [make_trial(index + j, params, seed, epochs, strategy="genetic", generation=generation) for j, params in enumerate(children)]
        index += len(batch)
        new = runner.run(batch)
        records += new
        current = survivors + new
    return records


def _grid(runner: Runner, search, seed: int, trials: int, epochs: int,
          configurations: Sequence[Mapping] | None = None) -> list[dict]:
    configurations = grid_configurations(search.space) if configurations is None else [dict(c) for c in configurations]
    same = training_seed(runner.config)
    batch = [make_trial(i, params, seed, epochs, seed=same, strategy="grid") for i, params in enumerate(configurations)]
    return runner.run(batch)


#: Strategy of each ``search.strategy`` name (:data:`analysis.core.config.SEARCH_STRATEGIES`).
STRATEGIES = {"random": _random, "hyperband": _hyperband, "genetic": _genetic, "bayesian": bayesian, "grid": _grid}
