"""A fast, parametrised detector model (ATLAS-like), applied to whole chunks of events.

Every number the model uses lives in :class:`DetectorParameters`; change them there.
Input is the generator's final-state particles of a chunk of events as a jagged awkward
array (fields ``pid, px, py, pz, e``) plus the b quarks of each event (for b-tagging
truth). Output is NanoAOD-style reconstructed objects. All operations are whole-array
awkward/numpy operations; jets are clustered by fastjet for the whole chunk at once.

What the model does, in order:

1. **Visible particles**: final-state particles except neutrinos and neutralinos, within
   the calorimeter acceptance |eta| < ``calorimeter_abs_eta_max``. Everything else is
   invisible and ends up in the missing transverse momentum.
2. **Leptons** (electrons and muons): within |eta| acceptance; isolated, i.e. the scalar
   pT sum of other visible particles within dR < ``isolation_cone`` (collinear photons within
   dR < ``isolation_photon_veto_cone``, i.e. FSR, not counted) is below
   ``isolation_max_relative`` x pT; reconstructed with a flat efficiency; momentum smeared
   (electrons: calorimeter energy resolution a/sqrt(E) (+) c; muons: tracker sigma(pT)/pT
   = a (+) b pT); kept above the pT threshold after smearing.
3. **Jets**: anti-kt, R = ``jet_radius``, clustered with fastjet from the visible particles
   that are not reconstructed leptons; energy smeared with a/sqrt(E) (+) c; kept above the pT
   threshold and within |eta| acceptance. With hadronisation off the "particles" clustered
   are the showered partons (a parton-level jet proxy).
4. **b-tagging**: a jet within |eta| < ``btag_abs_eta_max`` is a true b jet if a b quark with
   pT > ``btag_quark_pt_min`` lies within dR < ``jet_radius``; it is tagged with probability
   ``btag_efficiency`` (true b) or ``btag_mistag_rate`` (any other jet). With
   ``btag_veto_weights`` (truth tagging for b-veto selections) no jet is tagged and the event
   instead gets the weight P(no jet tagged) = prod_jets (1 - p_jet), returned as
   ``btag_veto_weight``: every event then counts in a b-veto selection, with its probability
   to pass it, instead of ~5% of the dileptonic ttbar events passing at random.
5. **Missing transverse momentum**: minus the vector sum of the visible particles, corrected
   by the smearing of every reconstructed lepton and jet (so object resolution propagates
   into MET), plus Gaussian noise on each component from the unclustered soft term,
   sigma = ``met_soft_resolution`` x sqrt(sum ET of soft particles).
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import fastjet
import numpy as np

INVISIBLE_PIDS = (12, 14, 16, 1000022, 1000039)
ELECTRON_MASS_GEV = 0.000511
MUON_MASS_GEV = 0.10566


@dataclass(frozen=True)
class DetectorParameters:
    """Every parameter of the fast detector model (energies in GeV)."""

    calorimeter_abs_eta_max: float = 4.9

    electron_pt_min: float = 7.0
    electron_abs_eta_max: float = 2.47
    electron_efficiency: float = 0.90
    electron_resolution_stochastic: float = 0.10  # sigma(E)/E = a / sqrt(E/GeV) (+) c
    electron_resolution_constant: float = 0.007

    muon_pt_min: float = 5.0
    muon_abs_eta_max: float = 2.5
    muon_efficiency: float = 0.95
    muon_resolution_constant: float = 0.015  # sigma(pT)/pT = a (+) b * pT/GeV
    muon_resolution_linear: float = 1.0e-4

    isolation_cone: float = 0.3
    isolation_photon_veto_cone: float = 0.1
    isolation_max_relative: float = 0.15

    jet_radius: float = 0.4
    jet_pt_min: float = 20.0
    jet_abs_eta_max: float = 4.5
    jet_resolution_stochastic: float = 0.50  # sigma(E)/E = a / sqrt(E/GeV) (+) c
    jet_resolution_constant: float = 0.03

    btag_abs_eta_max: float = 2.5
    btag_quark_pt_min: float = 5.0
    btag_efficiency: float = 0.77
    btag_mistag_rate: float = 0.01

    met_soft_resolution: float = 0.5  # GeV^(1/2): sigma(MET_x) = k * sqrt(sum ET_soft / GeV)


DEFAULT_DETECTOR = DetectorParameters()


def _pt_eta_phi(px, py, pz):
    """Transverse momentum, pseudorapidity and azimuth (eta = +-inf for pT = 0 is clipped to +-20)."""
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    return pt, np.minimum(np.maximum(eta, -20.0), 20.0), np.arctan2(py, px)


def _delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _is_in(values: ak.Array, choices: tuple[int, ...]) -> ak.Array:
    """Jagged boolean: is each element of ``values`` one of ``choices``."""
    counts = ak.num(values, axis=1)
    return ak.unflatten(np.isin(ak.to_numpy(ak.flatten(values)), choices), counts)


def _gaussian_like(array: ak.Array, rng: np.random.Generator) -> ak.Array:
    """Standard-normal draws with the jagged structure of ``array`` (one per element)."""
    counts = ak.num(array, axis=1)
    return ak.unflatten(rng.standard_normal(int(ak.sum(counts))), counts)


def _uniform_like(array: ak.Array, rng: np.random.Generator) -> ak.Array:
    """Uniform [0, 1) draws with the jagged structure of ``array``."""
    counts = ak.num(array, axis=1)
    return ak.unflatten(rng.random(int(ak.sum(counts))), counts)


def _isolation_sum(candidates: ak.Array, visible: ak.Array, params: DetectorParameters) -> ak.Array:
    """Scalar pT sum of other visible particles in the isolation cone of each candidate."""
    pairs = ak.cartesian({"lep": candidates, "other": visible}, axis=1, nested=True)
    lep, other = pairs.lep, pairs.other
    dr = _delta_r(lep.eta, lep.phi, other.eta, other.phi)
    is_fsr_photon = (other.pid == 22) & (dr < params.isolation_photon_veto_cone)
    in_cone = (dr < params.isolation_cone) & (lep.index != other.index) & ~is_fsr_photon
    return ak.sum(ak.where(in_cone, other.pt, 0.0), axis=2)


def _reconstruct_leptons(visible: ak.Array, flavour: int, rng: np.random.Generator, params: DetectorParameters):
    """Isolated, efficient, smeared electrons (flavour 11) or muons (13), pT-ordered."""
    if flavour == 11:
        abs_eta_max, pt_min, efficiency = params.electron_abs_eta_max, params.electron_pt_min, params.electron_efficiency
    else:
        abs_eta_max, pt_min, efficiency = params.muon_abs_eta_max, params.muon_pt_min, params.muon_efficiency
    candidates = visible[(abs(visible.pid) == flavour) & (abs(visible.eta) < abs_eta_max)]
    isolated = _isolation_sum(candidates, visible, params) < params.isolation_max_relative * candidates.pt
    found = _uniform_like(candidates, rng) < efficiency
    candidates = candidates[isolated & found]

    if flavour == 11:
        energy = candidates.pt * np.cosh(candidates.eta)
        relative_sigma = np.hypot(
            params.electron_resolution_stochastic / np.sqrt(np.maximum(energy, 1e-9)),
            params.electron_resolution_constant,
        )
    else:
        relative_sigma = np.hypot(params.muon_resolution_constant, params.muon_resolution_linear * candidates.pt)
    scale = np.maximum(1.0 + relative_sigma * _gaussian_like(candidates, rng), 0.0)
    leptons = ak.with_field(candidates, candidates.pt * scale, "pt_smeared")
    leptons = leptons[leptons.pt_smeared > pt_min]
    return leptons[ak.argsort(leptons.pt_smeared, axis=1, ascending=False)]


def _cluster_jets(visible: ak.Array, lepton_indices: ak.Array, params: DetectorParameters) -> ak.Array:
    """Anti-kt jets (fastjet) from visible particles that are not reconstructed leptons."""
    is_lepton = ak.any(visible.index[:, :, None] == lepton_indices[:, None, :], axis=2)
    inputs = visible[~is_lepton]
    four_momenta = ak.zip({"px": inputs.px, "py": inputs.py, "pz": inputs.pz, "E": inputs.e}, with_name="Momentum4D")
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, params.jet_radius)
    jets = fastjet.ClusterSequence(four_momenta, definition).inclusive_jets(min_pt=1.0)
    pt, eta, phi = _pt_eta_phi(jets.px, jets.py, jets.pz)
    mass = np.sqrt(np.maximum(jets.E**2 - jets.px**2 - jets.py**2 - jets.pz**2, 0.0))
    return ak.zip({"px": jets.px, "py": jets.py, "pt": pt, "eta": eta, "phi": phi, "mass": mass, "e": jets.E})


def _btag_probability(jets: ak.Array, b_quarks: ak.Array, params: DetectorParameters) -> ak.Array:
    """Per-jet b-tag probability from truth matching to b quarks, efficiency and mistag rate."""
    pairs = ak.cartesian({"jet": jets, "b": b_quarks}, axis=1, nested=True)
    dr = _delta_r(pairs.jet.eta, pairs.jet.phi, pairs.b.eta, pairs.b.phi)
    is_true_b = ak.any(dr < params.jet_radius, axis=2)
    probability = ak.where(is_true_b, params.btag_efficiency, params.btag_mistag_rate)
    return ak.where(abs(jets.eta) < params.btag_abs_eta_max, probability, 0.0)


def _with_kinematics(particles: ak.Array) -> ak.Array:
    pt, eta, phi = _pt_eta_phi(particles.px, particles.py, particles.pz)
    particles = ak.with_field(particles, pt, "pt")
    particles = ak.with_field(particles, eta, "eta")
    particles = ak.with_field(particles, phi, "phi")
    return ak.with_field(particles, ak.local_index(particles.pid, axis=1), "index")


def reconstruct_events(
    particles: ak.Array,
    b_quarks: ak.Array,
    rng: np.random.Generator,
    params: DetectorParameters = DEFAULT_DETECTOR,
    btag_veto_weights: bool = False,
) -> dict[str, ak.Array]:
    """Apply the detector model to a chunk of events.

    ``particles``: jagged records ``pid, px, py, pz, e`` of final-state particles.
    ``b_quarks``: jagged records ``px, py, pz`` of the b quarks of each event.
    Returns NanoAOD-style collections ``Electron``, ``Muon``, ``Jet`` (records, pT-ordered)
    and flat ``MET_pt``, ``MET_phi``, ``btag_veto_weight`` (ones unless ``btag_veto_weights``:
    then no jet is tagged and it is P(no jet tagged)). Draws from ``rng`` in a fixed order (the
    same draws in both b-tag modes), so the same input and generator state give the same output.
    """
    particles = _with_kinematics(particles)
    is_invisible = _is_in(abs(particles.pid), INVISIBLE_PIDS)
    visible = particles[~is_invisible & (abs(particles.eta) < params.calorimeter_abs_eta_max)]

    electrons = _reconstruct_leptons(visible, 11, rng, params)
    muons = _reconstruct_leptons(visible, 13, rng, params)
    lepton_indices = ak.concatenate([electrons.index, muons.index], axis=1)

    all_jets = _cluster_jets(visible, lepton_indices, params)
    jet_scale = np.maximum(
        1.0
        + np.hypot(
            params.jet_resolution_stochastic / np.sqrt(np.maximum(all_jets.e, 1e-9)), params.jet_resolution_constant
        )
        * _gaussian_like(all_jets, rng),
        0.0,
    )
    b_pt, b_eta, b_phi = _pt_eta_phi(b_quarks.px, b_quarks.py, b_quarks.pz)
    b_quarks = ak.zip({"pt": b_pt, "eta": b_eta, "phi": b_phi})
    b_quarks = b_quarks[b_quarks.pt > params.btag_quark_pt_min]

    # Missing transverse momentum: -(visible sum) - (smearing shifts of every object) + soft-term noise.
    met_x = -ak.sum(visible.px, axis=1)
    met_y = -ak.sum(visible.py, axis=1)
    soft_sum_et = ak.sum(visible.pt, axis=1) - ak.sum(all_jets.pt, axis=1)
    for leptons in (electrons, muons):
        shift = leptons.pt_smeared / leptons.pt - 1.0
        met_x = met_x - ak.sum(shift * leptons.px, axis=1)
        met_y = met_y - ak.sum(shift * leptons.py, axis=1)
        soft_sum_et = soft_sum_et - ak.sum(leptons.pt, axis=1)
    met_x = met_x - ak.sum((jet_scale - 1.0) * all_jets.px, axis=1)
    met_y = met_y - ak.sum((jet_scale - 1.0) * all_jets.py, axis=1)
    sigma_soft = params.met_soft_resolution * np.sqrt(np.maximum(ak.to_numpy(soft_sum_et), 0.0))
    noise = rng.standard_normal((2, len(sigma_soft))) * sigma_soft
    met_x = ak.to_numpy(met_x) + noise[0]
    met_y = ak.to_numpy(met_y) + noise[1]

    jets = ak.zip(
        {"pt": all_jets.pt * jet_scale, "eta": all_jets.eta, "phi": all_jets.phi, "mass": all_jets.mass * jet_scale}
    )
    probability = _btag_probability(jets, b_quarks, params)
    tagged = _uniform_like(jets, rng) < probability
    jets = ak.with_field(jets, ak.zeros_like(tagged, dtype=bool) if btag_veto_weights else tagged, "btag")
    kept = (jets.pt > params.jet_pt_min) & (abs(jets.eta) < params.jet_abs_eta_max)
    veto_weight = np.ones(len(jets))
    if btag_veto_weights:
        veto_weight = ak.to_numpy(ak.prod(1.0 - probability[kept], axis=1)).astype(np.float64)
    jets = jets[kept]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]

    return {
        "Electron": _lepton_record(electrons, ELECTRON_MASS_GEV),
        "Muon": _lepton_record(muons, MUON_MASS_GEV),
        "Jet": jets,
        "MET_pt": np.hypot(met_x, met_y),
        "MET_phi": np.arctan2(met_y, met_x),
        "btag_veto_weight": veto_weight,
    }


def _lepton_record(leptons: ak.Array, mass: float) -> ak.Array:
    """NanoAOD-style lepton collection: pt (smeared), eta, phi, mass, charge = -sign(pid)."""
    return ak.zip(
        {
            "pt": leptons.pt_smeared,
            "eta": leptons.eta,
            "phi": leptons.phi,
            "mass": ak.ones_like(leptons.pt) * mass,
            "charge": -np.sign(leptons.pid),
        }
    )
