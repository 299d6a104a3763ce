"""The fileset manifest of a generated sample set, in coffea's fileset format.

::

    {
      "WW": {
        "files": {"/abs/path/WW_0000.root": "Events", ...},
        "metadata": {"process": "WW", "is_signal": false, "xsec_pb": 6.9, "xsec_err_pb": 0.1,
                     "xsec_lo_pb": 6.9, "k_factor": 1.0, "xsec_uncertainty": 0.0,
                     "xsec_normalisation": "lo", "xsec_source": "Pythia 8 LO (sigmaGen)",
                     "nevents": 20000, "sum_genweight": 512.3, "sum_genweight2": ..., ...}
      },
      "slepton_200_40": {..., "metadata": {..., "is_signal": true, "xsec_pb": 0.0606,
                                           "xsec_lo_pb": 0.0504, "k_factor": 1.20,
                                           "xsec_uncertainty": 0.020, "xsec_normalisation": "nlo_nll",
                                           "m_slepton": 200.0, "m_neutralino": 160.0, "dm": 40.0}}
    }

Pythia's cross section of a sample combines the estimates of its jobs, each weighted by its
number of events; :func:`jobs.xsec.sample_cross_section` turns it into the normalisation
(``xsec_pb``: LO, a reference table or LO x K, times any generator filter efficiency) and
records the LO value, the K-factor and the reference's uncertainty. Event weights are then
``genWeight * xsec_pb * luminosity / sum_genweight``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .hooks import filter_efficiency, pythia_acceptance
from .samples import Sample
from .xsec import sample_cross_section


def combine_cross_sections(job_payloads: list[dict]) -> tuple[float, float]:
    """Event-count-weighted mean of the jobs' ``sigmaGen`` (pb) and its propagated error."""
    n_total = sum(p["n_events"] for p in job_payloads)
    xsec = sum(p["n_events"] * p["xsec_pb"] for p in job_payloads) / n_total
    error = math.sqrt(sum((p["n_events"] * p["xsec_err_pb"]) ** 2 for p in job_payloads)) / n_total
    return xsec, error


def sample_entry(sample: Sample, outdir: Path, job_payloads: list[dict]) -> dict:
    """The manifest entry (files + metadata) of one sample from its jobs' JSON payloads."""
    payloads = sorted(job_payloads, key=lambda p: p["job_index"])
    generated_xsec, generated_err = combine_cross_sections(payloads)
    # Pythia's sigmaGen is the cross section of the events its own vetoes kept: divide by their
    # efficiency for the LO cross section before filters (what a reference value replaces); the
    # physics cross section is then multiplied by the efficiency of every filter, including the
    # forced leptonic tau decays that Pythia does not know about.
    counts = [p.get("hooks", {}) for p in payloads]
    in_pythia = pythia_acceptance(counts)
    efficiency, efficiency_err = filter_efficiency(counts)
    metadata = sample.metadata()
    metadata.update(sample_cross_section(sample, generated_xsec / in_pythia, generated_err / in_pythia,
                                         efficiency, efficiency_err))
    metadata.update(
        nevents=sum(p["n_events"] for p in payloads),
        sum_genweight=sum(p["sum_genweight"] for p in payloads),
        sum_genweight2=sum(p["sum_genweight2"] for p in payloads),
        n_files=len(payloads),
    )
    files = {str((outdir / p["file"]).resolve()): p["tree"] for p in payloads}
    return {"files": files, "metadata": metadata}


def write_manifest(path: Path, fileset: dict) -> None:
    """Write the fileset JSON atomically (temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(fileset, indent=2, sort_keys=True))
    os.replace(tmp, path)
