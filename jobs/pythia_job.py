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
import pythia8mc
import uproot

from .detector import DEFAULT_DETECTOR, DetectorParameters, reconstruct_events
from .hooks import install_hooks, installed_hooks
from .samples import WRITE_BATCH_EVENTS, GenerationJob

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

    Signal samples get their SLHA spectrum written into ``workdir``; the sample's hooks
    (``jobs/hooks.py``) are installed. A setting Pythia does not accept, or a failed
    initialisation, raises ``RuntimeError`` naming the sample.
    """
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
    install_hooks(pythia, job.sample.hooks)
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise sample {job.sample.name} (settings: {settings})")
    return pythia


def leptonic_tau_fraction(pythia) -> float:
    """BR(tau -> e or mu + neutrinos) from Pythia's decay table (0.3504 in Pythia 8.317)."""
    entry = pythia.particleData.particleDataEntryPtr(15)
    total = 0.0
    for i in range(entry.sizeChannels()):
        channel = entry.channel(i)
        if {abs(channel.product(k)) for k in range(channel.multiplicity())} & {11, 13}:
            total += channel.bRatio()
    return total


def generate_particles(pythia, n_events: int, extra: dict | None = None, tau_fraction: float | None = None,
                       tau_sums: dict | None = None) -> tuple[ak.Array, ak.Array, np.ndarray]:
    """Generate ``n_events`` events; return final-state particles, b quarks and event weights.

    The loop over events is Pythia's own (one ``next()`` per event); particles are copied
    into flat lists once and turned into jagged awkward arrays for the whole chunk. ``extra``,
    if given, receives per-event values of the installed hooks (e.g. ``GenFilter_metBound``
    of a recording filter) as numpy arrays. ``tau_fraction``: the tau decays are forced to
    leptons; each event's weight is multiplied by ``tau_fraction ** n`` (n hard-process taus),
    and ``tau_sums`` receives the sums that give this "filter's" efficiency
    (:func:`jobs.hooks.filter_efficiency`), continued from the values it holds (the batches of
    one job add up event by event, as one call over the whole job would).
    """
    sums = {key: (tau_sums or {}).get(key, 0.0) for key in ("sumw", "sumwf", "sumw2", "sumw2f", "sumw2f2")}
    hooks = [hook for hook in installed_hooks(pythia).values() if hasattr(hook, "event_values")]
    per_event = {}
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
        weight = info.weight()
        if tau_fraction is not None:
            factor = tau_fraction ** sum(1 for p in pythia.process if p.idAbs() == 15 and p.isFinal())
            sums["sumw"] += weight
            sums["sumwf"] += weight * factor
            sums["sumw2"] += weight * weight
            sums["sumw2f"] += weight * weight * factor
            sums["sumw2f2"] += (weight * factor) ** 2
            weight *= factor
        weights.append(weight)
        for hook in hooks:
            for key, value in hook.event_values().items():
                per_event.setdefault(key, []).append(value)
    if extra is not None:
        extra.update({key: np.asarray(values, dtype=np.float32) for key, values in per_event.items()})
    if tau_sums is not None and tau_fraction is not None:
        tau_sums.update(sums, tau_fraction=tau_fraction)
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


def event_branches(reco: dict, weights: np.ndarray, event_numbers: np.ndarray, extra: dict | None = None) -> dict:
    """The branches of :data:`BRANCHES` (plus ``extra``: more flat per-event branches, the
    generator-level diagnostics of a reference sample) of reconstructed events, as written."""
    branches = {
        "Electron": reco["Electron"],
        "Muon": reco["Muon"],
        "Jet": ak.zip({**{f: ak.values_astype(reco["Jet"][f], np.float32) for f in ("pt", "eta", "phi", "mass")},
                       "btag": reco["Jet"]["btag"]}),
        "MET_pt": reco["MET_pt"].astype(np.float32),
        "MET_phi": reco["MET_phi"].astype(np.float32),
        "genWeight": weights,
        "event": event_numbers.astype(np.uint64),
        **(extra or {}),
    }
    for name in ("Electron", "Muon"):
        record = reco[name]
        branches[name] = ak.zip(
            {**{f: ak.values_astype(record[f], np.float32) for f in ("pt", "eta", "phi", "mass")},
             "charge": ak.values_astype(record["charge"], np.int32)}
        )
    return branches


class EventWriter:
    """TTree ``Events`` written batch by batch (uproot ``mktree``, then one ``extend`` per batch)
    into a temporary file that becomes ``path`` when the writer closes without an error."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._file = None
        self._tree = None

    def __enter__(self) -> EventWriter:
        self._file = uproot.recreate(self.tmp)
        return self

    def write(self, reco: dict, weights: np.ndarray, event_numbers: np.ndarray, extra: dict | None = None) -> None:
        """Append a batch of reconstructed events (:func:`event_branches`)."""
        branches = event_branches(reco, weights, event_numbers, extra)
        if self._tree is None:
            self._tree = self._file.mktree("Events", {name: array.type if isinstance(array, ak.Array) else array.dtype
                                                      for name, array in branches.items()})
        self._tree.extend(branches)

    def __exit__(self, kind, error, traceback) -> None:
        self._file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_events(path: Path, reco: dict, weights: np.ndarray, event_numbers: np.ndarray, extra: dict | None = None) -> None:
    """Write a chunk as TTree ``Events`` (uproot ``mktree`` + ``extend``), atomically; ``extra``:
    more flat per-event branches (the generator-level diagnostics of a reference sample)."""
    with EventWriter(path) as writer:
        writer.write(reco, weights, event_numbers, extra)


def job_is_done(outdir: str | Path, stem: str) -> bool:
    """Whether the job ``stem`` finished in ``outdir``: its ROOT file and, written last, its JSON."""
    outdir = Path(outdir)
    return (outdir / f"{stem}.json").exists() and (outdir / f"{stem}.root").exists()


def run_generation_job(job: GenerationJob, outdir: str | Path, detector: DetectorParameters = DEFAULT_DETECTOR) -> dict:
    """Run one generation job and write ``<outdir>/<stem>.root`` and ``.json``; return the JSON payload.

    If the JSON of this job already exists the job is skipped and its payload returned
    (the cache of a previous run).
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    root_path, json_path = outdir / f"{job.stem}.root", outdir / f"{job.stem}.json"
    if job_is_done(outdir, job.stem):
        return json.loads(json_path.read_text())

    start = time.perf_counter()
    rng = np.random.default_rng([job.seed, 1])
    tau_sums, stored, generated, factors = {}, [], [], []
    with tempfile.TemporaryDirectory(prefix="bsmscan-pythia-") as workdir, EventWriter(root_path) as writer:
        pythia = make_pythia(job, Path(workdir))
        tau_fraction = leptonic_tau_fraction(pythia) if job.sample.leptonic_taus else None
        # batches of WRITE_BATCH_EVENTS: generated, reconstructed and written before the next
        # starts, so memory does not grow with events_per_job (the per-event weights alone are kept)
        for first in range(0, max(job.n_events, 1), WRITE_BATCH_EVENTS):  # (an empty job writes an empty tree)
            n_batch = min(WRITE_BATCH_EVENTS, job.n_events - first)
            extra = {}
            particles, b_quarks, weights = generate_particles(pythia, n_batch, extra, tau_fraction, tau_sums)
            reco = reconstruct_events(particles, b_quarks, rng, detector, btag_veto_weights=job.sample.btag_veto_weights)
            del particles, b_quarks
            generated.append(weights)
            if job.sample.btag_veto_weights:
                factors.append(reco["btag_veto_weight"])
                weights = weights * reco["btag_veto_weight"]
            weights = weights.astype(np.float32)  # as stored, so that sums match the file exactly
            stored.append(weights)
            writer.write(reco, weights, job.first_event + first + np.arange(n_batch, dtype=np.uint64), extra)
            del reco
        info = pythia.infoPython()
        sigma_pb, sigma_err_pb = info.sigmaGen() * MB_TO_PB, info.sigmaErr() * MB_TO_PB
        hook_counts = {name: hook.counts() for name, hook in installed_hooks(pythia).items()}
    if job.sample.btag_veto_weights:
        weights, factor = np.concatenate(generated), np.concatenate(factors)
        btag_sums = {"sumw": float(np.sum(weights)), "sumwf": float(np.sum(weights * factor)),
                     "sumw2": float(np.sum(weights**2)), "sumw2f": float(np.sum(weights**2 * factor)),
                     "sumw2f2": float(np.sum((weights * factor) ** 2))}
    weights = np.concatenate(stored) if stored else np.zeros(0, dtype=np.float32)

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
    if tau_sums:
        hook_counts["leptonic_taus"] = tau_sums
    if job.sample.btag_veto_weights:
        hook_counts["btag_veto"] = btag_sums
    if hook_counts:
        payload["hooks"] = hook_counts
    _atomic_write_json(json_path, payload)
    return payload
