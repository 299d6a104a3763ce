"""Accelerator figures of the network code (``python benchmarks/gpu.py``), on whatever JAX device is present.

Prints, measured in one run on the default JAX device (an NVIDIA GPU when there is one; the
CPU otherwise, as in CI):

1. the device's matrix-multiply rate, measured here: square matmuls of ``--matmul-size``,
   float32 on a CPU; on a GPU bf16 and float32 at "tensorfloat32" precision (TF32 tensor cores);
2. training throughput (samples/s) of the jitted epoch (``nn.trainer.compiled_training``: a
   ``lax.scan`` of ``train_step`` over the batches, the data resident on the device) for the
   ``susy_3x128`` and ``baldi_5x300`` networks at several batch sizes, with the FLOP rate of
   their matrix products and its fraction of the measured matmul rate (the 5x300 step at its
   largest batch: target >= 0.3 of the bf16 or TF32 rate on an H200);
3. one epoch of a SUSY-size table (5M rows x 18 features, ``--rows``; on a CPU use fewer rows
   and the time is also given scaled to 5M) with 3x128 at batch 512 (target on an H200: < 1 s);
4. scoring throughput: the jitted forward pass of the trained-model path
   (``nn.artifact.TrainedModel.score``: standardisation + network + sigmoid) in 65k-row blocks;
5. checks: no host-device transfer inside an epoch (the epoch runs under
   ``jax.transfer_guard("disallow")`` once its inputs are on the device), one compilation per
   shape (a second epoch does not compile again), and the dtypes (float32 parameters, inputs
   and logits).

FLOPs count the matrix products only: forward 2 B sum(in*out), weight gradients the same
again, input gradients for every layer but the first. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from analysis.core.config import default_config  # noqa: E402
from nn.losses import LossSpec  # noqa: E402
from nn.model import build_model, init_params  # noqa: E402
from nn.presets import apply_preset  # noqa: E402
from nn.trainer import (  # noqa: E402
    OptimizerSpec,
    Regularisation,
    TrainState,
    compiled_apply,
    compiled_training,
    set_learning_rate,
)

SUSY_ROWS, SUSY_FEATURES = 5_000_000, 18


def step_flops(widths: list[int], batch: int) -> float:
    """Matrix-multiply FLOPs of one training step of a dense network with layer ``widths``."""
    products = [a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return 2.0 * batch * (3 * sum(products) - products[0])


def timed(function, repeats: int) -> float:
    """Median seconds of ``function()`` (which blocks until its result is ready) over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rates(size: int, repeats: int, on_gpu: bool) -> dict[str, float]:
    """FLOP/s of square ``size`` matmuls: float32 (CPU), or bf16 and TF32 (GPU)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(size, size)).astype(np.float32)
    b = rng.normal(size=(size, size)).astype(np.float32)
    kinds = {"bf16": (jnp.bfloat16, None), "tf32": (jnp.float32, "tensorfloat32")} if on_gpu else {"f32": (jnp.float32, "highest")}
    rates = {}
    for name, (dtype, precision) in kinds.items():
        x, y = jax.device_put(a.astype(dtype)), jax.device_put(b.astype(dtype))
        product = jax.jit(lambda p, q, precision=precision: jnp.matmul(p, q, precision=precision))
        jax.block_until_ready(product(x, y))
        rates[name] = 2.0 * size**3 / timed(lambda x=x, y=y, product=product: jax.block_until_ready(product(x, y)), repeats)
    return rates


class EpochBench:
    """One network's jitted training epoch on ``rows`` random rows resident on the device."""

    def __init__(self, preset: str, n_inputs: int, batch: int, rows: int):
        config = apply_preset(default_config(), preset)
        model, training = config.model, config.training
        self.widths = [n_inputs, *model.hidden_layers, 1]
        self.network = build_model(model.hidden_layers, model.activation, model.dropout, 1)
        self.batch, self.rows = batch, rows
        steps = -(-rows // batch)
        self.steps = steps
        tx, self.epoch = compiled_training(self.network, LossSpec(), OptimizerSpec.from_training(training), steps, batch,
                                           model.l1 > 0, model.l2 > 0)
        params = init_params(self.network, n_inputs, jax.random.key(0))
        self.state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                opt_state=set_learning_rate(tx.init(params), training.learning_rate))
        rng = np.random.default_rng(1)
        self.x = jax.device_put(rng.normal(size=(rows, n_inputs)).astype(np.float32))
        self.target = jax.device_put((rng.random(rows) < 0.5).astype(np.int32))
        self.weight = jax.device_put(np.ones(rows, np.float32))
        self.shuffle_key, self.dropout_key = jax.random.key(2), jax.random.key(3)
        self.total = jax.device_put(np.float32(rows))
        self.hyper = Regularisation.of(model.dropout, model.l1, model.l2)

    def run(self):
        """One epoch, blocking until it is done; returns (state, loss, logits)."""
        return jax.block_until_ready(self.epoch(self.state, self.x, self.target, self.weight, self.shuffle_key, self.dropout_key,
                                                self.total, self.hyper))

    def checks(self) -> str:
        """Transfers, recompilation and dtypes of the epoch (see the module docstring)."""
        self.run()  # compiled
        before = self.epoch._cache_size()
        with jax.transfer_guard("disallow"):  # raises on any implicit host <-> device copy
            state, loss, logits = self.run()
        recompiled = self.epoch._cache_size() - before
        dtypes = {str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(state.params)}
        return (f"no host-device transfer inside the epoch; {recompiled} recompilation(s) on the second epoch; "
                f"parameters {'/'.join(sorted(dtypes))}, inputs {self.x.dtype}, logits {logits.dtype}, loss {loss.dtype}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None,
                        help=f"rows of the SUSY-size epoch (default {SUSY_ROWS:,} on a GPU, 500,000 on a CPU)")
    parser.add_argument("--throughput-rows", type=int, default=None,
                        help="rows per throughput epoch (default 2,000,000 on a GPU, 200,000 on a CPU)")
    parser.add_argument("--matmul-size", type=int, default=None, help="default 8192 on a GPU, 2048 on a CPU")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    rows = args.rows or (SUSY_ROWS if on_gpu else 500_000)
    throughput_rows = args.throughput_rows or (2_000_000 if on_gpu else 200_000)
    size = args.matmul_size or (8192 if on_gpu else 2048)
    print(f"device: {device.platform} {getattr(device, 'device_kind', '')} (jax {jax.__version__}, {jax.device_count()} device(s))")

    rates = matmul_rates(size, args.repeats, on_gpu)
    best = max(rates.values())
    print(f"== matmul rate ({size}x{size}): " + ", ".join(f"{name} {rate / 1e12:.2f} TFLOP/s" for name, rate in rates.items()))

    print(f"== training throughput ({throughput_rows:,} rows x {SUSY_FEATURES} features, jitted epoch, medians of {args.repeats})")
    batches = {"susy_3x128": (512, 4096, 32768), "baldi_5x300": (100, 1024, 8192, 32768)}
    fraction = None
    for preset, sizes in batches.items():
        for batch in sizes:
            bench = EpochBench(preset, SUSY_FEATURES, batch, max(throughput_rows, batch))
            bench.run()  # compile
            seconds = timed(bench.run, args.repeats)
            samples = bench.rows  # the last batch is padded with zero-weight rows: computed, not counted
            flops = step_flops(bench.widths, batch) * bench.steps / seconds
            fraction = flops / best if preset == "baldi_5x300" else fraction
            print(f"  {preset:12s} batch {batch:6d}: {samples / seconds:14,.0f} samples/s   "
                  f"{flops / 1e12:7.3f} TFLOP/s in matmuls ({flops / best:.2f} of the best matmul rate)")
            if preset == "susy_3x128" and batch == sizes[0]:
                check = bench.checks()
    print(f"  5x300 step at batch {batches['baldi_5x300'][-1]}: {fraction:.2f} of the measured "
          f"{'bf16/TF32' if on_gpu else 'f32'} matmul rate   (target on an H200: >= 0.3)")
    print(f"  checks (susy_3x128, batch 512): {check}")

    bench = EpochBench("susy_3x128", SUSY_FEATURES, 512, rows)
    bench.run()
    seconds = timed(bench.run, args.repeats)
    scaled = seconds * SUSY_ROWS / rows
    print(f"== one epoch of a {rows:,} x {SUSY_FEATURES} table, susy_3x128, batch 512: {seconds:.2f} s"
          + ("" if rows == SUSY_ROWS else f" ({scaled:.1f} s scaled to {SUSY_ROWS:,} rows)") + "   (target on an H200: < 1 s for 5M)")

    apply = compiled_apply(bench.network)
    block = jax.device_put(np.random.default_rng(3).normal(size=(65_536, SUSY_FEATURES)).astype(np.float32))
    jax.block_until_ready(apply(bench.state.params, block))
    device_seconds = timed(lambda: jax.block_until_ready(apply(bench.state.params, block)), args.repeats)
    host_block = np.asarray(block)
    host_seconds = timed(lambda: np.asarray(apply(bench.state.params, host_block)), args.repeats)
    print(f"== scoring (susy_3x128 forward, 65,536-row blocks): {65_536 / device_seconds:,.0f} events/s with the block on "
          f"the device, {65_536 / host_seconds:,.0f} events/s from and back to host memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
