"""Run one (sample x chunk) generation job: Pythia 8 -> fast detector -> ROOT ntuple.

The job writes two files into its output folder, each to a temporary name first and renamed
when complete, so an interrupted job never leaves a file that looks finished:

- ``<stem>.root``: TTree ``Events`` with NanoAOD-style branches (see :data:`BRANCHES`);
- ``<stem>.json``: the job's bookkeeping: events, sum of generator weights, Pythia's cross
  section estimate ``sigmaGen`` and its error (pb), the seed. Written last: the job counts
  as done when its JSON exists.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from .detector import DEFAULT_DETECTOR, DetectorParameters, reconstruct_events
from .samples import GenerationJob

MB_TO_PB = 1.0e9
MAX_FAILED_EVENTS = 1000

#: The branches of every generated file (NanoAOD names; ``n<Collection>`` counts).
BRANCHES = (
    "nElectron", "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge",
    "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge",
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btag",
    "MET_pt", "MET_phi", "genWeight", "event",
)  # fmt: skip


def make_pythia(job: GenerationJob, workdir: Path):
    """A configured and initialised ``pythia8mc.Pythia`` for ``job``.

    Signal samples get their SLHA spectrum written into ``workdir``. A setting Pythia does not
    accept, or a failed initialisation, raises ``RuntimeError`` naming the sample.
    """
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    settings = list(job.common_settings) + list(job.sample.settings)
    if job.sample.slha is not None:
        slha_path = workdir / f"{job.sample.name}.slha"
        slha_path.write_text(job.sample.slha)
        settings.append(f"SLHA:file = {slha_path}")
    settings += ["Random:setSeed = on", f"Random:seed = {job.seed}", "Next:numberCount = 0"]
    for setting in settings:
        if not pythia.readString(setting):
            raise RuntimeError(f"Pythia rejected setting {setting!r} of sample {job.sample.name}")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise sample {job.sample.name} (settings: {settings})")
    return pythia


def generate_particles(pythia, n_events: int) -> tuple[ak.Array, ak.Array, np.ndarray]:
    """Generate ``n_events`` events; return final-state particles, b quarks and event weights.

    The loop over events is Pythia's own (one ``next()`` per event); particles are copied
    into flat lists once and turned into jagged awkward arrays for the whole chunk.
    """
    columns = {"pid": [], "px": [], "py": [], "pz": [], "e": []}
    b_columns = {"px": [], "py": [], "pz": []}
    counts, b_counts, weights = [], [], []
    pid, px, py, pz, e = (columns[k].append for k in ("pid", "px", "py", "pz", "e"))
    bx, by, bz = (b_columns[k].append for k in ("px", "py", "pz"))
    info = pythia.infoPython()
    failures = 0
    while len(counts) < n_events:
        if not pythia.next():
            failures += 1
            if failures > MAX_FAILED_EVENTS:
                raise RuntimeError(f"Pythia failed {failures} times to generate an event")
            continue
        n_before, nb_before = len(columns["pid"]), len(b_columns["px"])
        for particle in pythia.event:
            if particle.isFinal():
                pid(particle.id())
                px(particle.px())
                py(particle.py())
                pz(particle.pz())
                e(particle.e())
            if particle.idAbs() == 5:
                bx(particle.px())
                by(particle.py())
                bz(particle.pz())
        counts.append(len(columns["pid"]) - n_before)
        b_counts.append(len(b_columns["px"]) - nb_before)
        weights.append(info.weight())
    particles = ak.unflatten(
        ak.zip({key: np.asarray(values, dtype=np.int32 if key == "pid" else np.float64) for key, values in columns.items()}),
        np.asarray(counts),
    )
    b_quarks = ak.unflatten(
        ak.zip({key: np.asarray(values, dtype=np.float64) for key, values in b_columns.items()}), np.asarray(b_counts)
    )
    return particles, b_quarks, np.asarray(weights, dtype=np.float64)


def _atomic_write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_events(path: Path, reco: dict, weights: np.ndarray, event_numbers: np.ndarray) -> None:
    """Write a chunk as TTree ``Events`` (uproot ``mktree`` + ``extend``), atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    branches = {
        "Electron": reco["Electron"],
        "Muon": reco["Muon"],
        "Jet": ak.zip({**{f: ak.values_astype(reco["Jet"][f], np.float32) for f in ("pt", "eta", "phi", "mass")},
                       "btag": reco["Jet"]["btag"]}),
        "MET_pt": reco["MET_pt"].astype(np.float32),
        "MET_phi": reco["MET_phi"].astype(np.float32),
        "genWeight": weights,
        "event": event_numbers.astype(np.uint64),
    }
    for name in ("Electron", "Muon"):
        record = reco[name]
        branches[name] = ak.zip(
            {**{f: ak.values_astype(record[f], np.float32) for f in ("pt", "eta", "phi", "mass")},
             "charge": ak.values_astype(record["charge"], np.int32)}
        )
    with uproot.recreate(tmp) as out:
        tree = out.mktree("Events", {name: array.type if isinstance(array, ak.Array) else array.dtype
                                     for name, array in branches.items()})
        tree.extend(branches)
    os.replace(tmp, path)


def run_generation_job(job: GenerationJob, outdir: str | Path, detector: DetectorParameters = DEFAULT_DETECTOR) -> dict:
    """Run one generation job and write ``<outdir>/<stem>.root`` and ``.json``; return the JSON payload.

    If the JSON of this job already exists the job is skipped and its payload returned
    (the cache of a previous run).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    root_path, json_path = outdir / f"{job.stem}.root", outdir / f"{job.stem}.json"
    if json_path.exists() and root_path.exists():
        return json.loads(json_path.read_text())

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bsmscan-pythia-") as workdir:
        pythia = make_pythia(job, Path(workdir))
        particles, b_quarks, weights = generate_particles(pythia, job.n_events)
        info = pythia.infoPython()
        sigma_pb, sigma_err_pb = info.sigmaGen() * MB_TO_PB, info.sigmaErr() * MB_TO_PB
    weights = weights.astype(np.float32)  # as stored, so that sums match the file exactly
    rng = np.random.default_rng([job.seed, 1])
    reco = reconstruct_events(particles, b_quarks, rng, detector)
    event_numbers = job.first_event + np.arange(job.n_events, dtype=np.uint64)
    write_events(root_path, reco, weights, event_numbers)

    payload = {
        "sample": job.sample.name,
        "job_index": job.index,
        "file": root_path.name,
        "tree": "Events",
        "seed": job.seed,
        "n_events": int(job.n_events),
        "sum_genweight": float(np.sum(weights, dtype=np.float64)),
        "sum_genweight2": float(np.sum(np.square(weights, dtype=np.float64))),
        "xsec_pb": float(sigma_pb),
        "xsec_err_pb": float(sigma_err_pb),
        "seconds": round(time.perf_counter() - start, 3),
    }
    _atomic_write_json(json_path, payload)
    return payload
