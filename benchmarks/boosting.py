"""Boosting on errors on bsmscan's own samples (``python benchmarks/boosting.py [--store DIR]``).

The hard-scattering study (section 4) raised the weights of misclassified training events and
retrained, round after round, and found the network got *worse* each round. This script does
the same with :func:`nn.boosting.boost_on_errors` and prints, per round, the weighted
validation and test AUC, the number of misclassified training events and the largest weight
multiplier.

Without ``--store`` it generates small unbiased Pythia samples (signal at (100, 40) and
(200, 75) GeV against WW, ZZ, ttbar; about a minute on 2 cores) and selects them with a loose
dilepton + MET > 80 GeV selection, so that every class has hundreds of events.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config, load_config  # noqa: E402
from analysis.core.fileset import load_fileset  # noqa: E402
from analysis.stages.process import run_processing  # noqa: E402
from jobs.generate import generate_samples  # noqa: E402
from nn.boosting import boost_on_errors  # noqa: E402
from nn.data import read_feature_store  # noqa: E402
from tests.conftest import small_config  # noqa: E402


def generated_store(workdir: Path):
    """Small unbiased samples with a loose selection (as tests/test_nn_generated.py)."""
    config = small_config(workdir / "cache", signal_grid=[{"m_slepton": 100, "dm": 40}, {"m_slepton": 200, "dm": 75}],
                          backgrounds=["WW", "ZZ", "ttbar"], signal_events=3000, background_events=5000,
                          events_per_job=2500, pt_bias_power=0.0)
    data = config.model_dump(mode="json")
    data["selection"]["cuts"] = {"two_leptons": "n_lepton == 2", "met": "met > 80",
                                 "opposite_charge": "lep1_charge * lep2_charge < 0"}
    config = config_from_dict(data)
    manifest = generate_samples(config, workers=2, show_progress=False)
    run_processing(config, workdir / "store", executor="iterative", fileset=load_fileset(manifest))
    return config, workdir / "store"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="a feature store (default: generate small samples)")
    parser.add_argument("--config", type=Path, help="analysis config (with --store; default: the built-in one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bsmscan-boost-") as tmp:
        if args.store:
            config, store = (load_config(args.config) if args.config else default_config()), args.store
        else:
            config, store = generated_store(Path(tmp))
        data = config.model_dump(mode="json")
        data["training"].update(max_epochs=args.epochs)
        config = config_from_dict(data)
        table = read_feature_store(store)
        start = time.perf_counter()
        result = boost_on_errors(table, config, rounds=args.rounds, factor=args.factor)
        elapsed = time.perf_counter() - start
    print(f"boosting on errors: {args.rounds} rounds, factor {args.factor:g}, {len(table.label)} events, "
          f"{elapsed:.0f} s")
    print(f"{'round':>5} {'val AUC':>8} {'test AUC':>8} {'misclassified':>13} {'max weight x':>12}")
    for entry in result.history:
        print(f"{entry['round']:>5} {entry['val_auc']:>8.4f} {entry['test_auc']:>8.4f} {entry['misclassified']:>13d} "
              f"{entry['max_weight_multiplier']:>12g}")
    first, last = result.history[0]["test_auc"], result.history[-1]["test_auc"]
    print(f"test AUC, last round / first round: {last / first:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
