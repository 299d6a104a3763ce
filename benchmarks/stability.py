"""Stability of the default analysis under a change of the global seed (``python benchmarks/stability.py``).

Runs ``python -m analysis.run --executor dask`` twice, cold (an empty sample cache each time,
so new samples), with the default config and global seeds ``--seeds`` (default 12345 and
12346: new samples, new train/validation/test splits, new training), and prints

- per run: its stage times and, per sample, the events kept by the generator filters, the
  seconds of its generation jobs (one core each), the events selected by the whole
  preselection, their ESS and the ESS per core-second of generation;
- per grid point: the best Z of both runs with its MC spread, their ratio, the pull
  (Z1 - Z2) / sqrt(err1^2 + err2^2) (whether the runs differ by more than their MC spreads
  say they should), the Z at the standard threshold and the background's effective sample
  size above the best threshold;
- whether every point with Z >= 1 in either run agrees within 20% (the target of issue 11),
  and the wall time of each run.

``--retrain`` adds a warm third run on the second run's samples (its cached samples, so the
same events) with the first run's training seed: its ratio to the second run is the share of the
difference that the training alone (network initialisation, batches, dropout) makes.

``--config`` runs another analysis (e.g. a smaller one for a quick check); ``--keep`` keeps the
work directories.
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
NAN = float("nan")
sys.path.insert(0, str(ROOT))

from analysis.core.config import default_config_text
from analysis.core.statistics import effective_sample_size


def run_once(config_text: str, seed: int, workdir: Path, training_seed: int | None = None,
             samples_dir: Path | None = None) -> tuple[dict, float]:
    """One run with ``seed``: its scan.json and wall seconds. Cold (samples generated into
    ``workdir``) unless ``samples_dir`` holds a cache made with the same seed."""
    data = yaml.safe_load(config_text)
    data["seed"] = seed
    data.setdefault("samples", {})["cache_dir"] = str(samples_dir or workdir / "samples")
    if training_seed is not None:
        data.setdefault("training", {})["seed"] = training_seed
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))  # the cuts keep their order
    outdir = workdir / "results"
    command = [sys.executable, "-m", "analysis.run", "--config", str(config_path), "--executor", "dask",
               "--outdir", str(outdir), "--no-progress"]
    start = time.perf_counter()
    output = subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True).stdout
    seconds = time.perf_counter() - start
    (workdir / "run.log").write_text(output)
    for line in output.splitlines():
        if line.startswith("stage times"):
            print(f"seed {seed}: {line}", flush=True)
    return json.loads((outdir / "scan.json").read_text()), seconds


def production_table(workdir: Path) -> list[str]:
    """Per sample of a cold run: events kept by the generator filters, the core-seconds of its
    generation jobs (from their bookkeeping files), the events selected by the whole
    preselection, their ESS and the ESS per core-second of generation."""
    core_seconds, kept = {}, {}
    for path in (workdir / "samples").glob("*/*.json"):
        job = json.loads(path.read_text())
        if "sample" in job and "seconds" in job:
            core_seconds[job["sample"]] = core_seconds.get(job["sample"], 0.0) + job["seconds"]
            kept[job["sample"]] = kept.get(job["sample"], 0) + job["n_events"]
    cutflow = json.loads((workdir / "results" / "summary.json").read_text())["cutflow"]
    lines = [f"{'sample':<16} {'kept':>7} {'core-s':>7} {'selected':>8} {'ESS':>7} {'ESS/core-s':>10}"]
    for name, row in cutflow.items():
        ess = float(effective_sample_size(row["sumw"][-1], row["sumw2"][-1]))
        seconds = core_seconds.get(name, NAN)
        lines.append(f"{name:<16} {kept.get(name, 0):>7} {_fmt(seconds, '.1f'):>7} {row['raw'][-1]:>8} "
                     f"{ess:>7.1f} {_fmt(ess / seconds if seconds > 0 else NAN, '.2f'):>10}")
    lines.append(f"{'all':<16} {sum(kept.values()):>7} {sum(core_seconds.values()):>7.1f}")
    return lines


def _fmt(value: float, spec: str = ".2f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def compare(first: dict, second: dict, seeds: tuple[int, int], retrained: dict | None = None) -> bool:
    """Print the table; True if every point with Z >= 1 agrees within 20%."""
    a = {p["label"]: p for p in first["points"]}
    b = {p["label"]: p for p in second["points"]}
    c = {p["label"]: p for p in retrained["points"]} if retrained else {}
    print(f"{'grid point':<18} {'Z seed ' + str(seeds[0]):>16} {'Z seed ' + str(seeds[1]):>16} {'ratio':>7} "
          f"{'pull':>6} {'Z(std) 1':>9} {'Z(std) 2':>9} {'b ESS 1':>8} {'b ESS 2':>8}"
          + (f" {'Z retrained':>16} {'2/retrained':>11}" if c else ""))
    stable = True
    for label, point in a.items():
        other = b.get(label, {})
        za, zb = point["best_z"], other.get("best_z", NAN)
        ea, eb = point.get("best_z_mc_error", NAN), other.get("best_z_mc_error", NAN)
        ratio = za / zb if math.isfinite(za) and math.isfinite(zb) and zb > 0 else NAN
        pull = (za - zb) / math.hypot(ea, eb) if math.isfinite(za - zb) and math.hypot(ea, eb) > 0 else NAN
        if max(_finite(za), _finite(zb)) >= 1 and not (math.isfinite(ratio) and abs(ratio - 1) <= 0.2):
            stable = False
        line = (f"{label:<18} {_fmt(za):>7} +- {_fmt(ea):<5} {_fmt(zb):>7} +- {_fmt(eb):<5} {_fmt(ratio):>7} "
                f"{_fmt(pull, '+.1f'):>6} {_fmt(point['z_at_standard']):>9} {_fmt(other.get('z_at_standard', NAN)):>9} "
                f"{_fmt(point.get('background_ess_at_best', NAN), '.1f'):>8} "
                f"{_fmt(other.get('background_ess_at_best', NAN), '.1f'):>8}")
        if c:
            zc, ec = c.get(label, {}).get("best_z", NAN), c.get(label, {}).get("best_z_mc_error", NAN)
            line += f" {_fmt(zc):>7} +- {_fmt(ec):<5} {_fmt(zb / zc if zc > 0 else NAN):>11}"
        print(line)
    return stable


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="analysis config YAML (default: the built-in analysis)")
    parser.add_argument("--seeds", type=int, nargs=2, default=(12345, 12346))
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--retrain", action="store_true",
                        help="also rerun the second seed's samples with the first seed's training seed")
    args = parser.parse_args()
    text = args.config.read_text() if args.config else default_config_text()
    scans, workdirs = [], []
    for seed in args.seeds:
        workdir = Path(tempfile.mkdtemp(prefix=f"bsmscan-stability-{seed}-"))
        scan, seconds = run_once(text, seed, workdir)
        scans.append(scan)
        workdirs.append(workdir)
        print(f"seed {seed}: cold run {seconds:.0f} s ({workdir if args.keep else 'removed at the end'})", flush=True)
        print("\n".join(production_table(workdir)), flush=True)
    retrained = None
    if args.retrain:
        workdir = Path(tempfile.mkdtemp(prefix="bsmscan-stability-retrain-"))
        retrained, seconds = run_once(text, args.seeds[1], workdir, training_seed=args.seeds[0],
                                      samples_dir=workdirs[1] / "samples")
        workdirs.append(workdir)
        print(f"seed {args.seeds[1]}'s samples, training seed {args.seeds[0]}: warm run {seconds:.0f} s", flush=True)
    if not args.keep:
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    stable = compare(*scans, tuple(args.seeds), retrained)
    print(f"every point with Z >= 1 within 20%: {'yes' if stable else 'no'}")


if __name__ == "__main__":
    main()
