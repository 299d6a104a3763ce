"""The peer of ``benchmarks/process.py``: bsmscan's default selection as a coffea user writes it.

NanoEvents with ``NanoAODSchema`` (the generated files use NanoAOD branch names), the candidate
behaviours of coffea's ``nanoevents.methods`` (four-vector sums, ``delta_r``, ``delta_phi``,
``metric_table``), ``PackedSelection`` for the cuts and its weighted cutflow, ``Weights`` for
the event weights, ``hist`` for the control histograms and ``ak.to_parquet`` for the features
of the selected events: the same objects, weights, 11 cuts, cutflow, control histograms and 26
thesis features that bsmscan's selection stage computes and stores. Every cut is evaluated on
every event (``PackedSelection``'s way), with no lazy columns. Used for timing only; its
cutflow is compared with bsmscan's as a check that both do the same selection.
"""

from __future__ import annotations

import os

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection, Weights
from coffea.nanoevents import NanoAODSchema

CUTS = ("two_leptons", "met", "same_flavour", "opposite_charge", "lepton_pt", "mt", "min_dphi_jet_met",
        "dphi_jet1_met", "b_veto", "jet_veto", "dr_ll")


class GeneratedNanoAODSchema(NanoAODSchema):
    """NanoAOD schema for files without ``run`` / ``luminosityBlock`` (bsmscan's generated samples)."""

    error_missing_event_ids = False


class PeerProcessor(processor.ProcessorABC):
    """The thesis preselection, features and control histograms, coffea style (see the module docstring).

    ``outdir``: where each chunk's features go (one Parquet file per chunk), or ``None``.
    """

    def __init__(self, luminosity_fb: float, outdir: str | None):
        self.luminosity_fb = luminosity_fb
        self.outdir = outdir

    def process(self, events):
        meta = events.metadata
        weights = Weights(len(events))
        weights.add("genweight", events.genWeight * meta["xsec_pb"] * 1000.0 * self.luminosity_fb / meta["sum_genweight"])

        electrons = events.Electron[(events.Electron.pt > 10) & (abs(events.Electron.eta) < 2.47)]
        muons = events.Muon[(events.Muon.pt > 10) & (abs(events.Muon.eta) < 2.5)]
        electrons = ak.with_field(electrons, 11, "flavour")
        muons = ak.with_field(muons, 13, "flavour")
        leptons = ak.with_name(ak.concatenate([electrons, muons], axis=1), "PtEtaPhiMCandidate")
        leptons = leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]
        jets = events.Jet[(events.Jet.pt > 20) & (abs(events.Jet.eta) < 4.5)]
        jets = jets[ak.all(jets.metric_table(leptons) > 0.4, axis=2)]
        jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]
        met = events.MET

        pair = ak.pad_none(leptons, 2)
        lep1, lep2 = pair[:, 0], pair[:, 1]
        dilepton = lep1 + lep2
        mt1 = np.sqrt(2 * lep1.pt * met.pt * (1 - np.cos(lep1.delta_phi(met))))
        mt2 = np.sqrt(2 * lep2.pt * met.pt * (1 - np.cos(lep2.delta_phi(met))))
        min_dphi = ak.fill_none(ak.min(abs(jets.delta_phi(met)), axis=1), np.pi)
        jet1 = ak.firsts(jets)
        dphi_jet1 = ak.fill_none(abs(jet1.delta_phi(met)), np.pi)
        n_bjet = ak.sum(jets.btag & (jets.pt > 20), axis=1)
        n_jet30 = ak.sum(jets.pt > 30, axis=1)
        dr_ll = lep1.delta_r(lep2)

        selection = PackedSelection()
        selection.add("two_leptons", ak.num(leptons) == 2)
        selection.add("met", met.pt > 200)
        selection.add("same_flavour", ak.fill_none(lep1.flavour == lep2.flavour, False))
        selection.add("opposite_charge", ak.fill_none(lep1.charge * lep2.charge < 0, False))
        selection.add("lepton_pt", ak.fill_none(lep2.pt > 10, False))
        selection.add("mt", ak.fill_none((mt1 > 10) & (mt2 > 10), False))
        selection.add("min_dphi_jet_met", min_dphi > 0.4)
        selection.add("dphi_jet1_met", dphi_jet1 > 2.0)
        selection.add("b_veto", n_bjet == 0)
        selection.add("jet_veto", n_jet30 < 3)
        selection.add("dr_ll", ak.fill_none(dr_ll > 0.75, False))
        cutflow = selection.cutflow(*CUTS, weights=weights).result()
        selected = selection.all(*CUTS)
        weight = weights.weight()[selected]

        l1, l2, sel_met, sel_jet1 = lep1[selected], lep2[selected], met[selected], jet1[selected]
        jet1_pt = ak.fill_none(sel_jet1.pt, 0.0)
        features = {
            "met": sel_met.pt, "met_phi": sel_met.phi,
            **{f"lep{i}_{field}": getattr(lepton, field) for i, lepton in ((1, l1), (2, l2))
               for field in ("pt", "eta", "phi", "flavour", "charge")},
            "mt_lep1": mt1[selected], "mt_lep2": mt2[selected],
            "dphi_lep1_met": abs(l1.delta_phi(sel_met)), "dphi_lep2_met": abs(l2.delta_phi(sel_met)),
            "min_dphi_jet_met": min_dphi[selected], "dphi_jet1_met": dphi_jet1[selected],
            "mll": dilepton.mass[selected], "dr_ll": dr_ll[selected],
            "met_over_jet1_pt": ak.where(jet1_pt > 0, sel_met.pt / jet1_pt, -1.0),
            "n_jet": ak.num(jets[selected]), "n_bjet": n_bjet[selected], "n_lepton": ak.num(leptons[selected]),
            "jet1_pt": jet1_pt, "ptll": dilepton.pt[selected],
        }
        if self.outdir is not None and ak.sum(selected):
            table = ak.zip({name: ak.values_astype(values, np.float32) for name, values in features.items()})
            table = ak.with_field(table, weight, "weight")
            ak.to_parquet(table, os.path.join(self.outdir, f"{meta['dataset']}_{meta['entrystart']}_{meta['entrystop']}.parquet"))

        control = {
            "mll": hist.Hist.new.StrCat([], name="process", growth=True).Reg(30, 0, 300, name="mll").Weight(),
            "met": hist.Hist.new.StrCat([], name="process", growth=True).Reg(30, 200, 800, name="met").Weight(),
            "mt_lep1": hist.Hist.new.StrCat([], name="process", growth=True).Reg(30, 0, 600, name="mt_lep1").Weight(),
            "lep1_pt": hist.Hist.new.StrCat([], name="process", growth=True).Reg(30, 0, 300, name="lep1_pt").Weight(),
        }
        for name, histogram in control.items():
            histogram.fill(process=meta.get("process", meta["dataset"]), **{name: features[name]}, weight=weight)
        return {
            "cutflow": {meta["dataset"]: np.asarray(cutflow.nevcutflow)},
            "control": control,
        }

    def postprocess(self, accumulator):
        return accumulator
