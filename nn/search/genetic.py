"""Genetic-algorithm operators for the hyperparameter search (Freitas et al., JHEP 01 (2021) 076).

A generation is a list of trial configurations (dicts) with scores (higher is better). The
``top k`` become parents (:func:`select_parents`); each child takes every hyperparameter from
one of two randomly chosen parents (:func:`crossover`, uniform crossover), then each of its
genes is redrawn from the search space with probability ``p`` (:func:`mutate`).
:func:`next_generation` keeps the parents (elitism) and fills the population with children,
breeding again a child that copies a configuration already tried (diversity).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from nn.search.space import sample_value

__all__ = ["crossover", "mutate", "next_generation", "select_parents"]


def select_parents(population: Sequence[Mapping[str, Any]], scores: Sequence[float], k: int) -> list[dict[str, Any]]:
    """The ``k`` best configurations by score (descending; NaN scores -- failed trials -- last;
    ties keep population order)."""
    values = np.asarray(scores, dtype=float)
    ranked = np.where(np.isfinite(values), values, -np.inf)
    order = sorted(range(len(population)), key=lambda i: (-ranked[i], i))
    return [dict(population[i]) for i in order[:k]]


def crossover(first: Mapping[str, Any], second: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Uniform crossover: each hyperparameter from ``first`` or ``second`` with probability 1/2
    (one ``rng.random()`` draw per gene, in ``first``'s key order)."""
    return {name: (first[name] if rng.random() < 0.5 else second[name]) for name in first}


def mutate(child: Mapping[str, Any], space: Mapping[str, Any], probability: float, rng: np.random.Generator) -> dict[str, Any]:
    """Redraw each gene from its search-space dimension with ``probability`` (one
    ``rng.random()`` draw per gene, then a sample for each mutated one)."""
    mutated = dict(child)
    for name in child:
        if rng.random() < probability:
            mutated[name] = sample_value(space[name], rng)
    return mutated


def _identity(configuration: Mapping[str, Any]) -> str:
    return json.dumps(dict(configuration), sort_keys=True)


def next_generation(
    population: Sequence[Mapping[str, Any]],
    scores: Sequence[float],
    space: Mapping[str, Any],
    size: int,
    parents: int,
    mutation_probability: float,
    rng: np.random.Generator,
    seen: Iterable[Mapping[str, Any]] = (),
    attempts: int = 20,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(parents, children)``: the top ``parents`` and ``size - parents`` children, each bred
    from two distinct random parents by :func:`crossover` and :func:`mutate`.

    Diversity: a child equal to a configuration of ``population``, ``seen`` or an earlier child
    is bred again (up to ``attempts`` times, the last ones with mutation probability 1/2 at
    least), which keeps a small population from collapsing onto copies of one network.
    """
    elite = select_parents(population, scores, parents)
    known = {_identity(c) for c in itertools.chain(population, seen)}
    children = []
    for _ in range(size - len(elite)):
        for attempt in range(attempts):
            i, j = rng.choice(len(elite), size=2, replace=False) if len(elite) > 1 else (0, 0)
            probability = mutation_probability if attempt < max(1, attempts // 2) else max(mutation_probability, 0.5)
            child = mutate(crossover(elite[int(i)], elite[int(j)], rng), space, probability, rng)
            if _identity(child) not in known:
                break
        known.add(_identity(child))
        children.append(child)
    return elite, children
