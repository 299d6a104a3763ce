"""Event weights: normalise generated events to a cross section and an integrated luminosity."""

from __future__ import annotations

import numpy as np

PB_PER_FB = 1.0e3  # 1 pb = 1000 fb


def event_weights(gen_weight, xsec_pb: float, luminosity_fb: float, sum_genweight: float, scale_factors=None):
    """Per-event weight ``genWeight x sigma x L / sum(genWeight)`` (x optional per-event scale factors).

    ``xsec_pb`` in pb, ``luminosity_fb`` in fb^-1, ``sum_genweight`` the sum of generator weights
    of the *whole* sample (all files, before any selection), so that the weights of all
    generated events add up to the expected number of events sigma x L. Negative generator
    weights stay negative (they are kept and counted, never dropped).
    """
    if not np.isfinite(sum_genweight) or sum_genweight == 0:
        raise ValueError(f"sum of generator weights must be finite and non-zero (got {sum_genweight})")
    if not np.isfinite(xsec_pb) or xsec_pb < 0:
        raise ValueError(f"cross section must be finite and >= 0 pb (got {xsec_pb})")
    if not np.isfinite(luminosity_fb) or luminosity_fb <= 0:
        raise ValueError(f"luminosity must be finite and > 0 fb^-1 (got {luminosity_fb})")
    weights = np.asarray(gen_weight, dtype=np.float64) * (xsec_pb * PB_PER_FB * luminosity_fb / sum_genweight)
    if scale_factors is not None:
        weights = weights * np.asarray(scale_factors, dtype=np.float64)
    return weights
