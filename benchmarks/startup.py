"""Benchmark of start-up: ``python -m analysis.run --stages process`` end to end (``python benchmarks/startup.py``).

Runs the command as a user does (a fresh interpreter: imports, the fileset inspection, the
Dask cluster's start and stop, the selection, the outputs), interleaved over ``--repeats``
rounds, on one 100k-event file (``--file``; default: the first file of a fileset JSON given
with ``--fileset``, e.g. the WW samples of ``benchmarks/process.py``), with

- ``--executor iterative`` (one process), and
- ``--executor dask`` (a LocalCluster of 2 single-threaded workers, started and stopped by
  the run: one cluster for every stage of the run),

and prints the median wall times and their ratio. ``executor.chunksize: auto`` cuts the file
into chunks for both workers (one 100k-event chunk would leave one idle). Target (issue 17):
dask < 2x the iterative executor's wall time. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_file_fileset(path: Path, metadata: dict, directory: Path) -> Path:
    """A fileset JSON of the single ROOT file ``path`` (tree ``Events``), as simulation."""
    fileset = {"WW": {"files": {str(path): "Events"}, "metadata": metadata}}
    target = directory / "fileset.json"
    target.write_text(json.dumps(fileset))
    return target


def run(fileset: Path, executor: str, outdir: Path) -> float:
    """Wall seconds of one ``analysis.run --stages process`` in a fresh interpreter."""
    command = [sys.executable, "-m", "analysis.run", "--stages", "process", "--fileset", str(fileset),
               "--executor", executor, "--outdir", str(outdir), "--no-progress"]
    if executor == "dask":
        command += ["--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="a 100k-event ROOT file with the generated samples' branches")
    parser.add_argument("--fileset", type=Path, help="a fileset JSON: its first file is used (default of --file)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.file is None and args.fileset is None:
        parser.error("give --file or --fileset (e.g. the WW samples of benchmarks/process.py)")
    metadata = {"xsec_pb": 1.0, "process": "WW"}
    if args.fileset is not None:
        entry = next(iter(json.loads(args.fileset.read_text()).values()))
        args.file = args.file or Path(next(iter(entry["files"])))
        metadata = {"xsec_pb": entry["metadata"]["xsec_pb"], "process": entry["metadata"].get("process", "WW")}

    import uproot

    with uproot.open(args.file) as file:
        n_events = file["Events"].num_entries
    times: dict[str, list[float]] = {"iterative": [], "dask": []}
    with tempfile.TemporaryDirectory(prefix="bsmscan-bench-startup-") as tmp:
        fileset = one_file_fileset(args.file, metadata, Path(tmp))
        run(fileset, "iterative", Path(tmp) / "warm")  # compiled kernels cached, files in the page cache
        for round_ in range(args.repeats):
            for executor in times:
                times[executor].append(run(fileset, executor, Path(tmp) / f"{executor}{round_}"))
    medians = {executor: statistics.median(values) for executor, values in times.items()}
    print(f"python -m analysis.run --stages process on one {n_events}-event file ({args.file.name}), "
          f"medians of {args.repeats} interleaved rounds, end to end:")
    for executor, value in medians.items():
        print(f"  --executor {executor:<10} {value:6.2f} s   (rounds: {', '.join(f'{t:.2f}' for t in times[executor])})")
    print(f"  dask (2 workers) / iterative wall time: {medians['dask'] / medians['iterative']:.2f}   (target < 2)")


if __name__ == "__main__":
    main()
