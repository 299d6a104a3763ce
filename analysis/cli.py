"""The ``bsmscan`` command: one entry point with a subcommand per task.

::

    bsmscan run --executor dask          # the whole chain (python -m analysis.run)
    bsmscan generate                     # Pythia 8 samples (python -m jobs.generate)
    bsmscan process --store results/store
    bsmscan train --store results/store --out results/model
    bsmscan search --strategy genetic --trials 40
    bsmscan export --model results/model --out model.onnx
    bsmscan submit --dry-run             # the HTCondor DAG (python -m jobs.submit)
    bsmscan batch <step> ...             # one DAG node (python -m jobs.batch)
    bsmscan worker-script                # the Dask worker job's HTCondor submit description

Each subcommand is the ``main(argv)`` of its module, imported only when it runs (so that
``bsmscan generate`` does not start JAX); ``bsmscan <subcommand> --help`` shows its options.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> (module whose ``main(argv)`` runs it, one-line description)
SUBCOMMANDS = {
    "run": ("analysis.run", "the whole chain: generate, process, train, score, scan, report"),
    "generate": ("jobs.generate", "generate the Pythia 8 samples of a config"),
    "process": ("analysis.process", "selection, features and cutflow into a feature store"),
    "train": ("nn.train", "train the classifier on a feature store"),
    "search": ("nn.search", "hyperparameter search on the Dask cluster"),
    "regularisation": ("nn.search.regularisation", "sweep the L1/L2 constant of a fixed network (discriminants, AUC)"),
    "score": ("nn.score", "score a CSV/Parquet table with a trained model"),
    "export": ("nn.export", "write a trained network as ONNX (standardisation folded in)"),
    "submit": ("jobs.submit", "write (and submit or run locally) the HTCondor DAG"),
    "batch": ("jobs.batch", "run one node of the HTCondor DAG"),
    "worker-script": ("analysis.core.condor", "print the HTCondor submit description of a Dask worker job"),
}


def usage() -> str:
    """The top-level help text."""
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: bsmscan <subcommand> [options]   (bsmscan <subcommand> --help for its options)", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {description}" for name, (_, description) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand's ``main``; returns its exit code (2 for an unknown subcommand)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
