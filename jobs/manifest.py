"""The fileset manifest of a generated sample set, in coffea's fileset format.

::

    {
      "WW": {
        "files": {"/abs/path/WW_0000.root": "Events", ...},
        "metadata": {"process": "WW", "is_signal": false, "xsec_pb": 6.9, "xsec_err_pb": 0.1,
                     "nevents": 20000, "sum_genweight": 512.3, "sum_genweight2": ..., ...}
      },
      "slepton_200_40": {..., "metadata": {..., "is_signal": true,
                                           "m_slepton": 200.0, "m_neutralino": 160.0, "dm": 40.0}}
    }

The per-sample cross section combines the Pythia estimates of its jobs, each weighted by its
number of events; event weights are then ``genWeight * xsec * luminosity / sum_genweight``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .samples import Sample


def combine_cross_sections(job_payloads: list[dict]) -> tuple[float, float]:
    """Event-count-weighted mean of the jobs' ``sigmaGen`` (pb) and its propagated error."""
    n_total = sum(p["n_events"] for p in job_payloads)
    xsec = sum(p["n_events"] * p["xsec_pb"] for p in job_payloads) / n_total
    error = math.sqrt(sum((p["n_events"] * p["xsec_err_pb"]) ** 2 for p in job_payloads)) / n_total
    return xsec, error


def sample_entry(sample: Sample, outdir: Path, job_payloads: list[dict]) -> dict:
    """The manifest entry (files + metadata) of one sample from its jobs' JSON payloads."""
    payloads = sorted(job_payloads, key=lambda p: p["job_index"])
    xsec, xsec_err = combine_cross_sections(payloads)
    metadata = sample.metadata()
    metadata.update(
        xsec_pb=xsec,
        xsec_err_pb=xsec_err,
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
