"""Sample production with Pythia 8: physics known answers on small samples, reproducibility,
the manifest's normalisation, the cache and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import ConfigError, config_from_dict, default_config
from analysis.core.fileset import load_fileset as read_manifest
from jobs.generate import generate_samples, output_directory
from jobs.pythia_job import BRANCHES, make_pythia, run_generation_job
from jobs.samples import GenerationJob, job_seed, jobs_from_config
from jobs.slha import slepton_spectrum
from processors.weights import event_weights

from .conftest import small_config

Z_MASS_GEV = 91.19


def _read(manifest: Path, sample: str) -> ak.Array:
    files = read_manifest(manifest)[sample]["files"]
    return ak.concatenate([uproot.open(path)[tree].arrays() for path, tree in files.items()])


def _sfos_pair_mass(events: ak.Array) -> np.ndarray:
    """Invariant mass of the leading same-flavour opposite-sign lepton pair, per event that has one."""
    masses = []
    for flavour in ("Electron", "Muon"):
        leptons = ak.zip(
            {k: events[f"{flavour}_{k}"] for k in ("pt", "eta", "phi", "mass", "charge")}, with_name="Momentum4D"
        )
        pairs = ak.combinations(leptons, 2)
        pairs = pairs[pairs["0"].charge * pairs["1"].charge < 0]
        first = ak.firsts(pairs)
        l1, l2 = first["0"], first["1"]
        px = l1.pt * np.cos(l1.phi) + l2.pt * np.cos(l2.phi)
        py = l1.pt * np.sin(l1.phi) + l2.pt * np.sin(l2.phi)
        pz = l1.pt * np.sinh(l1.eta) + l2.pt * np.sinh(l2.eta)
        energy = np.sqrt((l1.pt * np.cosh(l1.eta)) ** 2 + l1.mass**2) + np.sqrt((l2.pt * np.cosh(l2.eta)) ** 2 + l2.mass**2)
        mass = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0))
        masses.append(ak.to_numpy(ak.drop_none(mass)))
    return np.concatenate(masses)


@pytest.mark.slow
@pytest.mark.parametrize("process", ["ZZ", "WZ"])
def test_sfos_dilepton_mass_peaks_at_the_z_mass(small_samples, process):
    _, manifest = small_samples
    mass = _sfos_pair_mass(_read(manifest, process))
    assert len(mass) > 150
    counts, edges = np.histogram(mass, bins=np.arange(40.0, 142.0, 3.0))
    peak = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
    assert abs(peak - Z_MASS_GEV) <= 3.0, f"{process}: SFOS mass peaks at {peak} GeV"


@pytest.mark.slow
def test_slepton_decay_lepton_momentum_is_the_two_body_value(tmp_path):
    """In the slepton rest frame the lepton carries p* = (m_sl^2 - m_chi^2) / (2 m_sl)."""
    import pythia8mc

    config = small_config(tmp_path)
    job = next(j for j in jobs_from_config(config) if j.sample.name == "slepton_200_75")
    pythia = make_pythia(job, tmp_path)
    momenta = []
    for _ in range(200):
        assert pythia.next()
        record = pythia.process
        for particle in record:
            mother = record[particle.mother1()]
            if particle.idAbs() in (11, 13) and abs(mother.id()) in (1000011, 2000011, 1000013, 2000013):
                lepton = pythia8mc.Vec4(particle.p())
                lepton.bstback(mother.p())
                momenta.append(lepton.pAbs())
    m_sl, m_chi = 200.0, 125.0
    expected = (m_sl**2 - m_chi**2) / (2 * m_sl)  # 60.9375 GeV
    assert len(momenta) == 400  # two sleptons per event, each to a lepton
    # Narrow-width sleptons: p* is the two-body value up to the tiny recoil of the decay record.
    assert np.median(momenta) == pytest.approx(expected, rel=0.01)


@pytest.mark.slow
def test_signal_lepton_pt_hardens_with_mass_splitting(small_samples):
    _, manifest = small_samples
    medians = {}
    for name in ("slepton_200_10", "slepton_200_75"):
        events = _read(manifest, name)
        leptons_pt = ak.concatenate([events.Electron_pt, events.Muon_pt], axis=1)
        medians[name] = float(np.median(ak.to_numpy(ak.flatten(leptons_pt))))
    # p* = 9.75 GeV (dm = 10) vs 60.9 GeV (dm = 75): the spectrum is far harder for large dm.
    assert medians["slepton_200_75"] > 2.0 * medians["slepton_200_10"], medians


@pytest.mark.slow
def test_files_have_nanoaod_style_branches_and_event_numbers(small_samples):
    _, manifest = small_samples
    fileset = read_manifest(manifest)
    path, tree = next(iter(fileset["WW"]["files"].items()))
    with uproot.open(path) as file:
        # The NanoAOD-style branches, plus the generator filter's diagnostics of a filtered sample.
        assert set(file[tree].keys()) - {"GenFilter_metBound", "GenFilter_pass"} == set(BRANCHES)
    events = _read(manifest, "WW")
    assert len(events) == 1600
    assert np.array_equal(np.sort(ak.to_numpy(events.event)), np.arange(1600))  # unique per sample
    assert ak.all(events.Jet_pt[:, :-1] >= events.Jet_pt[:, 1:])  # pT-ordered
    assert ak.all(abs(events.Muon_charge) == 1)
    assert np.all(np.isfinite(ak.to_numpy(events.MET_pt)))


@pytest.mark.slow
def test_manifest_weights_sum_to_cross_section_times_luminosity(small_samples):
    config, manifest = small_samples
    fileset = read_manifest(manifest)
    for name, entry in fileset.items():
        meta = entry["metadata"]
        total = 0.0
        for path, tree in entry["files"].items():
            gen_weight = uproot.open(path)[tree]["genWeight"].array(library="np")
            total += event_weights(gen_weight, meta["xsec_pb"], config.luminosity_fb, meta["sum_genweight"]).sum()
        expected = meta["xsec_pb"] * 1000.0 * config.luminosity_fb
        assert total == pytest.approx(expected, rel=1e-9), name
        assert meta["nevents"] == (1200 if meta["is_signal"] else 1600)
        assert meta["xsec_err_pb"] < 0.1 * meta["xsec_pb"]
    signal = fileset["slepton_200_75"]["metadata"]
    assert (signal["m_slepton"], signal["m_neutralino"], signal["dm"]) == (200.0, 125.0, 75.0)
    # Normalised to the NLO+NLL table: 2 x (21.94 + 8.37) fb for ~e_L,R + ~mu_L,R pairs at 200 GeV;
    # Pythia's colour-corrected LO is 50 fb (K = 1.21).
    assert signal["xsec_pb"] == pytest.approx(0.0606267, rel=1e-5)
    assert signal["xsec_normalisation"] == "nlo_nll"
    assert 1.15 < signal["k_factor"] < 1.30
    assert signal["xsec_lo_pb"] == pytest.approx(signal["xsec_pb"] / signal["k_factor"])
    assert fileset["WW"]["metadata"]["k_factor"] == 1.0  # backgrounds stay at Pythia's LO


def _first_job(config, sample="WW", n_events=150) -> GenerationJob:
    job = next(j for j in jobs_from_config(config) if j.sample.name == sample)
    return GenerationJob(job.sample, job.index, n_events, job.first_event, job.seed, job.common_settings)


def _tree_arrays(path: Path) -> dict:
    return uproot.open(path)["Events"].arrays(library="np")


@pytest.mark.slow
def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    config = small_config(tmp_path)
    job = _first_job(config)
    run_generation_job(job, tmp_path / "a")
    run_generation_job(job, tmp_path / "b")
    other_seed = _first_job(config.model_copy(update={"seed": config.seed + 1}))
    assert other_seed.seed != job.seed
    run_generation_job(other_seed, tmp_path / "c")

    a, b = (_tree_arrays(tmp_path / d / f"{job.stem}.root") for d in "ab")
    c = _tree_arrays(tmp_path / "c" / f"{other_seed.stem}.root")
    for branch in BRANCHES:
        assert all(np.array_equal(x, y) for x, y in zip(a[branch], b[branch])), branch
    assert not np.array_equal(a["MET_pt"], c["MET_pt"])
    meta_a, meta_b = (json.loads((tmp_path / d / f"{job.stem}.json").read_text()) for d in "ab")
    meta_a.pop("seconds"), meta_b.pop("seconds")
    assert meta_a == meta_b


def test_job_seeds_differ_between_samples_jobs_and_global_seeds():
    seeds = {job_seed(s, i, g) for s in ("WW", "ZZ") for i in range(50) for g in (1, 2)}
    assert len(seeds) == 200
    assert all(1 <= s <= 900_000_000 for s in seeds)


@pytest.mark.slow
def test_interrupted_job_is_rerun_and_finished_jobs_are_reused(tmp_path):
    config = small_config(tmp_path, signal_grid=[], backgrounds=["WW"], background_events=300, events_per_job=150)
    manifest = generate_samples(config, workers=1, show_progress=False)
    outdir = output_directory(config)
    first, second = jobs_from_config(config)
    done, interrupted = outdir / first.stem, outdir / second.stem
    done_mtime = done.with_suffix(".root").stat().st_mtime_ns
    # Simulate a job killed while writing: its JSON (the completion marker) is missing and a
    # half-written temporary file is left behind.
    interrupted.with_suffix(".json").unlink()
    interrupted.with_suffix(".root").unlink()
    (outdir / f".{second.stem}.root.tmp-999").write_bytes(b"half a file")
    manifest = generate_samples(config, workers=1, show_progress=False)
    assert done.with_suffix(".root").stat().st_mtime_ns == done_mtime  # reused, not regenerated
    assert interrupted.with_suffix(".json").exists()
    fileset = read_manifest(manifest)
    assert fileset["WW"]["metadata"]["nevents"] == 300
    assert all(".tmp" not in path for path in fileset["WW"]["files"])


def test_unphysical_points_and_unknown_processes_fail_before_generation(tmp_path):
    base = default_config().model_dump(mode="json")
    base["samples"]["cache_dir"] = str(tmp_path)
    for bad_samples, message in [
        ({"signal_grid": [{"m_slepton": 200, "dm": -5}]}, "dm must be > 0"),
        ({"signal_grid": [{"m_slepton": 40, "dm": 60}]}, "neutralino mass must be > 0"),
        ({"backgrounds": ["WW", "Wjets"]}, "unknown background process"),
    ]:
        data = json.loads(json.dumps(base))
        data["samples"].update(bad_samples)
        with pytest.raises(ConfigError, match=message):
            config_from_dict(data)
    assert list(tmp_path.iterdir()) == []  # nothing was generated
    with pytest.raises(ValueError, match="unphysical"):
        slepton_spectrum(100.0, 120.0)


@pytest.mark.slow
def test_dask_cluster_and_local_processes_write_identical_samples(tmp_path):
    from distributed import Client, LocalCluster

    config = small_config(tmp_path / "local", signal_grid=[{"m_slepton": 100, "dm": 40}], backgrounds=["ZZ"],
                          signal_events=200, background_events=200, events_per_job=100)
    local_manifest = generate_samples(config, workers=2, show_progress=False)
    dask_config = config.model_copy(update={"samples": config.samples.model_copy(update={"cache_dir": tmp_path / "dask"})})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        dask_manifest = generate_samples(dask_config, client=client, show_progress=False)
    local, remote = read_manifest(local_manifest), read_manifest(dask_manifest)
    assert local.keys() == remote.keys()
    for name in local:
        assert local[name]["metadata"] == remote[name]["metadata"]
        for path_a, path_b in zip(sorted(local[name]["files"]), sorted(remote[name]["files"])):
            a, b = _tree_arrays(Path(path_a)), _tree_arrays(Path(path_b))
            assert all(np.array_equal(np.concatenate(a[k]) if a[k].dtype == object else a[k],
                                      np.concatenate(b[k]) if b[k].dtype == object else b[k]) for k in BRANCHES)
    assert os.path.basename(path_a) == os.path.basename(path_b)


@pytest.mark.slow
def test_jobs_shared_with_another_config_are_reused_not_regenerated(tmp_path):
    base = small_config(tmp_path, signal_grid=[], backgrounds=["ZZ"], background_events=200, events_per_job=100)
    generate_samples(base, workers=1, show_progress=False)
    with_signal = small_config(tmp_path, signal_grid=[{"m_slepton": 150, "dm": 30}], backgrounds=["ZZ"],
                               signal_events=100, background_events=200, events_per_job=100)
    assert output_directory(with_signal) != output_directory(base)
    manifest = generate_samples(with_signal, workers=1, show_progress=False)
    for job in jobs_from_config(base):  # the ZZ files are the same inodes (hard links), not regenerated
        assert (output_directory(with_signal) / f"{job.stem}.root").samefile(output_directory(base) / f"{job.stem}.root")
    assert read_manifest(manifest)["slepton_150_30"]["metadata"]["nevents"] == 100
