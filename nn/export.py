"""ONNX export of a trained classifier: ``python -m nn.export --model DIR --out model.onnx``.

The exported graph takes the raw (unstandardised) inputs and returns the signal probability,
so that C++ frameworks (ONNX Runtime in CMSSW or Athena, ROOT's SOFIE) run it as is:

- input ``inputs``: float32 ``(batch, n_inputs)``, the columns in the order of the model's
  ``input_names`` (the features, then ``m_slepton`` and ``dm`` for a parametrised network:
  the grid point to evaluate at, one value per row);
- output ``signal_probability``: float32 ``(batch,)`` (sigmoid of the logit for a binary
  network, the softmax probability of the signal class for a multiclass one);
- the standardisation of the training split, ``(x - mean) / std``, is folded into the graph;
- an ensemble (``model.ensemble_members``) is one graph: its members one after the other,
  then the mean probability.

The conversion is done by ``jax2onnx`` from the same jitted forward function that bsmscan
scores with; the input names, the scaler and the classes are also written into the ONNX
file's metadata (``metadata_props``). A model folder of one network per grid point
(``training.per_point``) is exported as one ONNX file per point (``<out stem>_<point>.onnx``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from analysis.core.cli import run_command
from analysis.core.errors import UserError
from nn.artifact import ModelSet, TrainedModel, load_model
from nn.folds import FoldSet
from nn.model import apply_unrolled, signal_probability

log = logging.getLogger(__name__)

#: Name of the graph's input and output.
INPUT_NAME, OUTPUT_NAME = "inputs", "signal_probability"
#: ONNX opset of the exported graphs (ONNX Runtime >= 1.20 runs it).
OPSET = 17


class ExportError(UserError):
    """The model cannot be exported (an operator the exporter cannot express, a bad output path)."""


def _forward(model: TrainedModel):
    """Raw inputs (features, then grid-point parameters) -> P(signal), with the scaler folded in."""
    mean = jnp.asarray(model.scaler.mean, jnp.float32)
    inverse_std = jnp.asarray(1.0 / model.scaler.std, jnp.float32)
    network, params = model.network, model.params

    def forward(x):
        logits = apply_unrolled(network, params, (x - mean) * inverse_std)
        return signal_probability(logits)

    return forward


def export_model(model: TrainedModel, out: str | Path) -> Path:
    """Write ``model`` as an ONNX file to ``out``; returns the path.

    Raises :class:`ExportError` when jax2onnx cannot express an operator of the network.
    """
    if getattr(model, "input_transform", None) is not None:  # a table model (nn/table_transform.py)
        raise ExportError(f"the model {model.directory} maps its inputs through a {model.input_transform.kind} "
                          f"transform that the ONNX graph would leave out; export a model trained with "
                          f"--input-transform none")
    # optional dependency (the `onnx` extra): only needed when exporting
    from jax2onnx import to_onnx  # optional: pip install -e ".[onnx]"

    out = Path(out)
    n_inputs = len(model.input_names)
    try:
        proto = to_onnx(_forward(model), inputs=[("B", n_inputs)], model_name="bsmscan_classifier", opset=OPSET,
                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    except (NotImplementedError, ValueError, TypeError, KeyError) as error:
        raise ExportError(f"jax2onnx cannot export the network of {model.directory} "
                          f"({model.network.activation}, {len(model.network.hidden_layers)} hidden layers): {error}") from error
    metadata = {
        "bsmscan_input_names": json.dumps(list(model.input_names)),
        "bsmscan_classes": json.dumps(list(model.classes)),
        "bsmscan_parametrised": json.dumps(model.parametrised),
        "bsmscan_signal_points": json.dumps(model.signal_points),
        "bsmscan_scaler_mean": json.dumps(np.asarray(model.scaler.mean).tolist()),
        "bsmscan_scaler_std": json.dumps(np.asarray(model.scaler.std).tolist()),
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(proto.SerializeToString())
    log.info("wrote %s: %d inputs %s -> %s", out, n_inputs, list(model.input_names), OUTPUT_NAME)
    return out


def export(model_dir: str | Path, out: str | Path) -> list[Path]:
    """Export the model folder ``model_dir`` (one network, or one per grid point or per
    cross-training fold: ``<stem>_<point>.onnx``, ``<stem>_fold_<j>.onnx``); returns the files."""
    model = load_model(model_dir)
    out = Path(out)
    if isinstance(model, (ModelSet, FoldSet)):
        return [export_model(member, out.with_name(f"{out.stem}_{name}{out.suffix or '.onnx'}"))
                for name, member in sorted(model.models.items())]
    return [export_model(model, out)]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a clear, named failure)."""
    parser = argparse.ArgumentParser(prog="python -m nn.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the model folder (python -m nn.train --out)")
    parser.add_argument("--out", type=Path, required=True, help="the ONNX file to write")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    def body() -> int:
        for path in export(args.model, args.out):
            print(path)
        return 0

    return run_command(body, verbose=args.verbose, name="nn.export")


if __name__ == "__main__":
    sys.exit(main())
