"""Benchmark of the training stage (``python benchmarks/train.py [--store DIR]``).

Prints, measured in one run on this machine (medians of ``--repeats`` repeats):

1. training throughput (samples/s) of the jitted epoch (``lax.scan`` over ``train_step``)
   for the ``susy_3x128`` preset (batch 512) and the ``baldi_5x300`` preset (its batch 100,
   and batch 4096);
2. the machine's matrix-multiply FLOP rate, numpy and JAX (square float32 matmuls), and the
   fraction of it that the 5 x 300 training step reaches at batch 4096, measured side by side
   (each repeat times numpy, JAX and the training step back to back; the fraction is the
   median of the per-repeat ratios to the faster matmul).  Step FLOPs count the matrix
   products only: forward 2 B sum(in*out), weight gradients the same again, input gradients
   for every layer but the first.  Target (issue 4): >= 0.3;
3. the weighted test ROC AUC of the MLP (default: ``susy_3x128``) and of an XGBoost
   classifier (``pip install bsmscan[baselines]``) trained on the same inputs, split and
   training weights; target: the MLP within 0.005 of XGBoost or better.

Without ``--store`` a synthetic store (:mod:`nn.synthetic`) of ``--events`` events is written
to a temporary directory.  Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from analysis.core.config import default_config  # noqa: E402
from analysis.core.names import point_name  # noqa: E402
from nn.data import read_feature_store  # noqa: E402
from nn.metrics import weighted_roc_auc  # noqa: E402
from nn.model import build_model, init_params  # noqa: E402
from nn.presets import apply_preset  # noqa: E402
from nn.train import loss_spec, train_classifier  # noqa: E402
from nn.trainer import (  # noqa: E402
    OptimizerSpec,
    Regularisation,
    TrainState,
    make_optimizer,
    make_train_epoch,
    make_train_step,
)
from tests.synthetic import write_synthetic_store  # noqa: E402


def step_flops(widths: list[int], batch: int) -> float:
    """Matrix-multiply FLOPs of one training step of a dense network with layer ``widths``."""
    products = [a * b for a, b in zip(widths[:-1], widths[1:])]
    return 2.0 * batch * (3 * sum(products) - products[0])


def epoch_runner(config, n_inputs: int, batch: int, n_batches: int):
    """A closure timing one jitted epoch of ``n_batches`` batches; returns (run, widths)."""
    model_config, training = config.model, config.training
    network = build_model(model_config.hidden_layers, model_config.activation, model_config.dropout, 1)
    tx = make_optimizer(OptimizerSpec.from_training(training), n_batches, training.learning_rate)
    epoch = make_train_epoch(make_train_step(network, loss_spec(config), tx, model_config.l1 > 0, model_config.l2 > 0), batch)
    hyper = Regularisation.of(model_config.dropout, model_config.l1, model_config.l2)
    params = init_params(network, n_inputs, jax.random.key(0))
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
    n = batch * n_batches
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, n_inputs)).astype(np.float32))
    target = jnp.asarray((rng.random(n) < 0.5).astype(np.int32))
    weight = jnp.ones(n, jnp.float32)
    key = jax.random.key(1)

    def run() -> float:
        start = time.perf_counter()
        jax.block_until_ready(epoch(state, x, target, weight, key, key, float(n), hyper))
        return time.perf_counter() - start

    run()  # compile
    return run, [n_inputs, *model_config.hidden_layers, 1]


def throughput(n_inputs: int, repeats: int) -> None:
    print("== training throughput (jitted epoch, samples/s; median of repeats)")
    base = default_config()
    for preset, batch in (("susy_3x128", None), ("baldi_5x300", None), ("baldi_5x300", 4096)):
        config = apply_preset(base, preset)
        batch = batch or config.training.batch_size
        n_batches = max(4, 65_536 // batch)
        run, widths = epoch_runner(config, n_inputs, batch, n_batches)
        times = [run() for _ in range(repeats)]
        rate = batch * n_batches / statistics.median(times)
        gflops = step_flops(widths, batch) * n_batches / statistics.median(times) / 1e9
        print(f"  {preset:12s} batch {batch:5d}: {rate:12,.0f} samples/s  ({gflops:6.1f} GFLOP/s in matmuls)")


def flop_fraction(n_inputs: int, repeats: int, size: int) -> None:
    print(f"== matmul FLOP rate ({size}x{size} float32) and the 5x300 step at batch 4096, side by side")
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    matmul = jax.jit(jnp.matmul)
    jax.block_until_ready(matmul(ja, jb))
    _ = a @ b
    config = apply_preset(default_config(), "baldi_5x300")
    batch, n_batches = 4096, 8
    run, widths = epoch_runner(config, n_inputs, batch, n_batches)
    flops = 2.0 * size**3
    numpy_rates, jax_rates, step_rates, fractions = [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        _ = a @ b
        numpy_rates.append(flops / (time.perf_counter() - start))
        start = time.perf_counter()
        jax.block_until_ready(matmul(ja, jb))
        jax_rates.append(flops / (time.perf_counter() - start))
        step_rates.append(step_flops(widths, batch) * n_batches / run())
        fractions.append(step_rates[-1] / max(numpy_rates[-1], jax_rates[-1]))
    print(f"  numpy matmul  : {statistics.median(numpy_rates) / 1e9:7.1f} GFLOP/s")
    print(f"  jax matmul    : {statistics.median(jax_rates) / 1e9:7.1f} GFLOP/s")
    print(f"  5x300 step    : {statistics.median(step_rates) / 1e9:7.1f} GFLOP/s  ({batch * statistics.median(step_rates) / step_flops(widths, batch):,.0f} samples/s)")
    print(f"  fraction of the faster matmul: median {statistics.median(fractions):.2f} "
          f"(per repeat {', '.join(f'{f:.2f}' for f in fractions)}; target >= 0.3)")


def compare_with_xgboost(store: Path, preset: str, seed_config) -> None:
    print(f"== weighted test AUC: MLP ({preset}) vs XGBoost, same inputs, split and training weights")
    table = read_feature_store(store)
    config = apply_preset(seed_config, preset)
    start = time.perf_counter()
    result = train_classifier(table, config)  # per-epoch lines: the nn loggers (set up in main)
    mlp_seconds = time.perf_counter() - start
    test = result.data.splits["test"]
    mlp_auc = result.metrics["test"]["auc"]
    mlp_points = result.metrics["test"].get("auc_per_point", {})
    print(f"  MLP     test AUC {mlp_auc:.4f}  (mean per point {np.mean(list(mlp_points.values())):.4f}; {mlp_seconds:.0f} s)")
    try:
        import xgboost
    except ImportError:
        print("  XGBoost not installed (pip install 'bsmscan[baselines]'): baseline skipped")
        return
    train, val = result.data.splits["train"], result.data.splits["val"]
    classifier = xgboost.XGBClassifier(
        n_estimators=2000, learning_rate=0.05, max_depth=6, tree_method="hist", early_stopping_rounds=50,
        eval_metric="logloss", n_jobs=os.cpu_count(), random_state=0,
    )
    start = time.perf_counter()
    classifier.fit(train.x, train.target, sample_weight=train.weight, eval_set=[(val.x, val.target)],
                   sample_weight_eval_set=[val.weight], verbose=False)
    xgb_seconds = time.perf_counter() - start
    xgb_score = classifier.predict_proba(test.x)[:, 1]
    xgb_auc = weighted_roc_auc(xgb_score, test.is_signal, test.weight)
    per_point = []
    background = ~test.is_signal
    d = len(result.data.feature_names)
    for index, (m, dm) in enumerate(result.data.signal_points):
        signal = test.is_signal & (test.point == index)
        x_background = test.x[background].copy()
        if result.data.parametrised:
            x_background[:, d:] = result.data.standardised_point(index)
        scores = classifier.predict_proba(np.concatenate([test.x[signal], x_background]))[:, 1]
        labels = np.r_[np.ones(signal.sum()), np.zeros(background.sum())]
        per_point.append(weighted_roc_auc(scores, labels, np.r_[test.weight[signal], test.weight[background]]))
    print(f"  XGBoost test AUC {xgb_auc:.4f}  (mean per point {np.mean(per_point):.4f}; "
          f"{classifier.best_iteration + 1} trees, {xgb_seconds:.0f} s)")
    print(f"  MLP - XGBoost = {mlp_auc - xgb_auc:+.4f} (target >= -0.005)")
    for (m, dm), auc in zip(result.data.signal_points, per_point):
        name = point_name(m, dm)
        print(f"    {name:18s} MLP {mlp_points.get(name, float('nan')):.4f}  XGBoost {auc:.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a feature store to use (default: a synthetic one)")
    parser.add_argument("--events", type=int, default=360_000, help="events in the synthetic store")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matmul-size", type=int, default=4096)
    parser.add_argument("--preset", default="susy_3x128", help="the MLP of the AUC comparison")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-auc", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="    %(message)s")
    logging.getLogger("nn").setLevel(logging.INFO)
    print(f"devices: {jax.devices()}  cores: {os.cpu_count()}  jax {jax.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.store) if args.store else None
        if store is None:
            n_signal = args.events // 18  # 6 points x n_signal + 3 backgrounds x 4 n_signal
            store = write_synthetic_store(Path(tmp) / "store", n_signal=n_signal, n_background=4 * n_signal, seed=0)
        n_inputs = len(read_feature_store(store).feature_names) + 2
        if not args.skip_speed:
            throughput(n_inputs, args.repeats)
            flop_fraction(n_inputs, args.repeats, args.matmul_size)
        if not args.skip_auc:
            compare_with_xgboost(store, args.preset, default_config())
    return 0


if __name__ == "__main__":
    sys.exit(main())
