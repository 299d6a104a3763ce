"""Class-imbalance methods of the reference studies, with imbalanced-learn, on the training split.

``training.resample`` chooses the method and ``training.sampling_strategy`` how many events
each class ends up with (imbalanced-learn's string strategies):

- ``undersample``: :class:`imblearn.under_sampling.RandomUnderSampler` -- drops events at
  random (``auto`` = ``not minority``: every class but the smallest is cut to its size);
- ``oversample``: :class:`imblearn.over_sampling.RandomOverSampler` -- duplicates events at
  random (``auto`` = ``not majority``: every class but the largest is filled up to its size);
- ``smote``: :class:`imblearn.over_sampling.SMOTE` (Chawla et al., JAIR 16 (2002) 321) --
  synthetic events on the segments between an event and one of its ``smote_k_neighbors``
  nearest neighbours of the same class, in the standardised input space.

Strategies (as the Z' study compared them): ``minority`` (resample the smallest class only),
``not minority``, ``not majority``, ``all``, ``auto`` (the method's default).

**Weights.** A duplicated event keeps its weights; a synthetic (SMOTE) event gets the mean
weights of its class. Then every class's weights (training and physics) are scaled so that
the class total equals its total before resampling: resampling changes how many events
carry a class, never how much the class weighs. Only the training split is resampled; the
validation and test splits (and so every metric and the scans) are untouched.
"""

from __future__ import annotations

import logging

import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.neighbors import NearestNeighbors

from analysis.core.config import RESAMPLING_METHODS as METHODS
from analysis.core.config import SAMPLING_STRATEGIES as STRATEGIES
from analysis.core.errors import UserError

log = logging.getLogger(__name__)


class ResamplingError(UserError, ValueError):
    """A resampling setting that cannot work on these events; the message names the setting."""


def _sampler(method: str, strategy: str, k_neighbors: int, seed: int):
    if method == "undersample":
        if strategy == "minority":
            raise ResamplingError("training.sampling_strategy: 'minority' would undersample the smallest class "
                                  "(to its own size: nothing to do); use 'auto', 'not minority', 'not majority' or 'all'")
        return RandomUnderSampler(sampling_strategy=strategy, random_state=seed % 2**32)
    if method == "oversample":
        return RandomOverSampler(sampling_strategy=strategy, random_state=seed % 2**32)
    if method == "smote":
        return SMOTE(sampling_strategy=strategy, k_neighbors=k_neighbors, random_state=seed % 2**32)
    raise ResamplingError(f"training.resample: unknown method {method!r}; known: {', '.join(METHODS)}")


def resample_training_split(x: np.ndarray, target: np.ndarray, weights: dict[str, np.ndarray], extra: dict[str, np.ndarray],
                            method: str, strategy: str, k_neighbors: int, seed: int):
    """Resample one split's rows; returns ``(x, target, weights, extra, n_synthetic)``.

    ``weights`` are per-row weight arrays (each class total is preserved, see the module doc);
    ``extra`` are other per-row arrays (grid point index, signal flag, source row): duplicated
    rows copy theirs, a synthetic row takes those of its nearest original event of the same
    class, except ``rows`` (the source-table row), which is -1 for a synthetic event.
    """
    if method == "none":
        return x, target, weights, extra, 0
    if strategy not in STRATEGIES:
        raise ResamplingError(f"training.sampling_strategy: unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    classes, counts = np.unique(target, return_counts=True)
    if classes.size < 2:
        raise ResamplingError(f"training.resample: {method} needs two classes in the training split, found {classes.tolist()}")
    if method == "smote" and counts.min() <= k_neighbors:
        small = classes[np.argmin(counts)]
        raise ResamplingError(f"training.smote_k_neighbors: SMOTE needs more events in every class than its "
                              f"{k_neighbors} neighbours; class {int(small)} has {int(counts.min())} in the training split")
    sampler = _sampler(method, strategy, k_neighbors, seed)
    index = np.arange(len(target))
    if method == "smote":
        x_new, target_new = sampler.fit_resample(x, target)
        n_original = len(target)  # imblearn appends the synthetic events after the originals
        source = np.concatenate([index, _nearest_original(x, target, x_new[n_original:], target_new[n_original:])])
        synthetic = np.arange(len(target_new)) >= n_original
    else:
        sampler.fit_resample(index.reshape(-1, 1), target)
        source = np.sort(sampler.sample_indices_)
        x_new, target_new, synthetic = x[source], target[source], np.zeros(len(source), dtype=bool)
    new_counts = {int(k): int(np.sum(target_new == k)) for k in classes}
    if min(new_counts.values()) == 0:
        raise ResamplingError(f"training.sampling_strategy {strategy!r} with {method} would leave a class empty: {new_counts}")
    new_weights = {}
    for name, values in weights.items():
        resampled = values[source].astype(np.float64)
        for k in classes:
            in_class, original = target_new == k, values[target == k].astype(np.float64)
            resampled[in_class & synthetic] = original.mean()
            total = resampled[in_class].sum()
            resampled[in_class] *= original.sum() / total if total != 0 else 1.0
        new_weights[name] = resampled.astype(values.dtype)
    new_extra = {name: values[source].copy() for name, values in extra.items()}
    if "rows" in new_extra:
        new_extra["rows"][synthetic] = -1
    n_synthetic = int(synthetic.sum())
    log.info("resampled the training split with %s (%s): %s -> %s events per class (%d synthetic)", method, strategy,
             {int(k): int(c) for k, c in zip(classes, counts)}, new_counts, n_synthetic)
    return x_new.astype(x.dtype), target_new.astype(target.dtype), new_weights, new_extra, n_synthetic


def _nearest_original(x: np.ndarray, target: np.ndarray, x_synthetic: np.ndarray, target_synthetic: np.ndarray) -> np.ndarray:
    """Index of the nearest original event of the same class for each synthetic event."""
    nearest = np.empty(len(target_synthetic), dtype=np.int64)
    for k in np.unique(target_synthetic):
        members = np.flatnonzero(target == k)
        wanted = np.flatnonzero(target_synthetic == k)
        finder = NearestNeighbors(n_neighbors=1).fit(x[members])
        nearest[wanted] = members[finder.kneighbors(x_synthetic[wanted], return_distance=False)[:, 0]]
    return nearest
