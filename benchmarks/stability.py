"""Stability of the default analysis under a change of the global seed (``python benchmarks/stability.py``).

Runs ``python -m analysis.run --executor dask`` twice, cold (an empty sample cache each time,
so new samples), with the default config and global seeds ``--seeds`` (default 12345 and
12346: new samples, new train/validation/test splits, new training), and prints per grid point
the best Z of both runs with its MC spread, the ratio, the Z at the standard threshold and the
background's effective sample size above the best threshold;
then whether every point with Z >= 1 in either run agrees within 20% (the target of issue 11),
and the wall time of each run.

``--config`` runs another analysis (e.g. a smaller one for a quick check); ``--keep`` keeps the
two results directories.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.core.config import default_config_text


def run_once(config_text: str, seed: int, workdir: Path) -> tuple[dict, float]:
    """One cold run with ``seed``: its scan.json and wall seconds."""
    data = yaml.safe_load(config_text)
    data["seed"] = seed
    data.setdefault("samples", {})["cache_dir"] = str(workdir / "samples")
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))  # the cuts keep their order
    outdir = workdir / "results"
    command = [sys.executable, "-m", "analysis.run", "--config", str(config_path), "--executor", "dask",
               "--outdir", str(outdir), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   stdout=subprocess.DEVNULL)
    return json.loads((outdir / "scan.json").read_text()), time.perf_counter() - start


def _fmt(value: float, spec: str = ".2f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def compare(first: dict, second: dict, seeds: tuple[int, int]) -> bool:
    """Print the table; True if every point with Z >= 1 agrees within 20%."""
    a = {p["label"]: p for p in first["points"]}
    b = {p["label"]: p for p in second["points"]}
    print(f"{'grid point':<18} {'Z seed ' + str(seeds[0]):>16} {'Z seed ' + str(seeds[1]):>16} {'ratio':>7} "
          f"{'Z(std) 1':>9} {'Z(std) 2':>9} {'b ESS 1':>8} {'b ESS 2':>8}")
    stable = True
    for label, point in a.items():
        other = b.get(label, {})
        za, zb = point["best_z"], other.get("best_z", float("nan"))
        ea, eb = point.get("best_z_mc_error", float("nan")), other.get("best_z_mc_error", float("nan"))
        ratio = za / zb if math.isfinite(za) and math.isfinite(zb) and zb > 0 else float("nan")
        if max(_finite(za), _finite(zb)) >= 1 and not (math.isfinite(ratio) and abs(ratio - 1) <= 0.2):
            stable = False
        print(f"{label:<18} {_fmt(za):>7} +- {_fmt(ea):<5} {_fmt(zb):>7} +- {_fmt(eb):<5} {_fmt(ratio):>7} "
              f"{_fmt(point['z_at_standard']):>9} {_fmt(other.get('z_at_standard', float('nan'))):>9} "
              f"{_fmt(point.get('background_ess_at_best', float('nan')), '.1f'):>8} "
              f"{_fmt(other.get('background_ess_at_best', float('nan')), '.1f'):>8}")
    return stable


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="analysis config YAML (default: the built-in analysis)")
    parser.add_argument("--seeds", type=int, nargs=2, default=(12345, 12346))
    parser.add_argument("--keep", action="store_true", help="keep the two work directories")
    args = parser.parse_args()
    text = args.config.read_text() if args.config else default_config_text()
    scans, times = [], []
    for seed in args.seeds:
        workdir = Path(tempfile.mkdtemp(prefix=f"bsmscan-stability-{seed}-"))
        scan, seconds = run_once(text, seed, workdir)
        scans.append(scan)
        times.append(seconds)
        print(f"seed {seed}: cold run {seconds:.0f} s ({workdir if args.keep else 'removed'})", flush=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    stable = compare(*scans, tuple(args.seeds))
    print(f"every point with Z >= 1 within 20%: {'yes' if stable else 'no'}")


if __name__ == "__main__":
    main()
