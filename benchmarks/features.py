"""Benchmark of the feature step (``python benchmarks/features.py [--baseline OLD.py]``).

Builds ``--events`` synthetic events (0-3 leptons, mostly 2, Poisson jets, exponential pT and
MET) and times :func:`processors.features.compute_features` for the ``thesis`` set on all
events and on a sliced half (as the selection passes them), and for ``baldi`` and ``all`` on
``--events-baldi`` events (MT2's bisection dominates those).  Prints medians of ``--repeats``
rounds in events per second.

``--baseline`` names another version of the features module (a single file, e.g.
``git show <commit>:processors/features.py > /tmp/old_features.py``); it is then timed in the
same rounds, interleaved, and the ratio new/old of the times printed, and the outputs of the
two versions are compared on every feature (largest absolute difference on the two-lepton
events).  Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processors import features


def synthetic_events(n: int, seed: int = 1):
    """(leptons, jets, met_pt, met_phi) of ``n`` random events."""
    rng = np.random.default_rng(seed)

    def collection(counts, fields):
        total = int(counts.sum())
        return ak.unflatten(ak.zip({name: make(total) for name, make in fields.items()}), counts)

    leptons = collection(rng.choice([2, 2, 2, 2, 2, 2, 1, 3, 0], n), {
        "pt": lambda m: rng.exponential(50, m) + 10, "eta": lambda m: rng.uniform(-2.5, 2.5, m),
        "phi": lambda m: rng.uniform(-np.pi, np.pi, m), "mass": lambda m: rng.choice([0.000511, 0.1057], m),
        "charge": lambda m: rng.choice([-1, 1], m), "flavour": lambda m: rng.choice([11, 13], m).astype(np.int32)})
    jets = collection(rng.poisson(1.5, n), {
        "pt": lambda m: rng.exponential(60, m) + 20, "eta": lambda m: rng.uniform(-4.5, 4.5, m),
        "phi": lambda m: rng.uniform(-np.pi, np.pi, m), "mass": lambda m: rng.uniform(0, 20, m),
        "btag": lambda m: rng.random(m) < 0.2})
    return leptons, jets, rng.exponential(100, n), rng.uniform(-np.pi, np.pi, n)


def _load(path: str):
    spec = importlib.util.spec_from_file_location("baseline_features", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--events-baldi", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline", help="another features module (one .py file) to time against")
    args = parser.parse_args()

    versions = {"new": features} | ({"old": _load(args.baseline)} if args.baseline else {})
    events = synthetic_events(args.events)
    half = np.sort(np.random.default_rng(2).choice(args.events, args.events // 2, replace=False))
    few = synthetic_events(args.events_baldi, seed=3)
    cases = {
        "thesis": ("thesis", events),
        "thesis, sliced half": ("thesis", tuple(x[half] for x in events)),
        "baldi": ("baldi", few),
        "all": ("all", few),
    }
    times = {(case, name): [] for case in cases for name in versions}
    outputs = {}
    for _ in range(args.repeats):
        for case, (feature_set, inputs) in cases.items():
            for name, module in versions.items():
                start = time.perf_counter()
                outputs[case, name] = module.compute_features(*inputs, feature_set)
                times[case, name].append(time.perf_counter() - start)
    for case, (_, inputs) in cases.items():
        n = len(inputs[2])
        line = f"{case:20s} {n:7d} events:"
        for name in versions:
            line += f"  {name} {n / statistics.median(times[case, name]) / 1e3:7.1f} k events/s"
        if args.baseline:
            line += f"  time new/old {statistics.median(times[case, 'new']) / statistics.median(times[case, 'old']):.3f}"
        print(line)
    if args.baseline:
        two = ak.to_numpy(ak.num(few[0], axis=1)) == 2
        for name, values in outputs["all", "new"].items():
            difference = np.abs(values - outputs["all", "old"][name])[two]
            print(f"  {name:18s} largest |new - old| on two-lepton events: {difference.max():.2e}")


if __name__ == "__main__":
    main()
