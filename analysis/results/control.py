"""Control distributions at the scan's thresholds, sliced from the single-pass control histograms.

The scoring stage fills each control variable into a process x point x test x score x variable
histogram (:func:`processors.scoring.control_histogram`). This module turns it into the two
views the report shows, without scoring anything again:

- ``preselection``: every selected event (all splits, all scores);
- ``score cut``: events of the test split with a score at or above the point's threshold.
"""

from __future__ import annotations

from typing import Mapping

import hist
import numpy as np

#: The two views of a control distribution.
STEPS = ("preselection", "score cut")


def control_at_thresholds(control: Mapping[str, hist.Hist], thresholds: Mapping[str, float]) -> dict[str, hist.Hist]:
    """Step x process x point x variable histograms from the single-pass control histograms.

    ``thresholds`` maps a grid point to its score threshold (a bin edge of the score axis, as the
    scan returns); points without one have an empty ``score cut`` step.
    """
    return {name: _steps(histogram, thresholds) for name, histogram in control.items()}


def _steps(histogram: hist.Hist, thresholds: Mapping[str, float]) -> hist.Hist:
    processes = list(histogram.axes["process"])
    points = list(histogram.axes["point"])
    variable = histogram.axes[-1]
    out = hist.Hist(
        hist.axis.StrCategory(list(STEPS), name="step"),
        hist.axis.StrCategory(processes, name="process", growth=True),  # as the input: no overflow bin
        hist.axis.StrCategory(points, name="point"),
        variable,
        storage=hist.storage.Weight(),
    )
    if not processes:
        return out
    view = out.view(flow=True)
    preselection = histogram[{"test": sum, "score": sum}].view(flow=True)  # process x point x variable
    view["value"][0] = preselection["value"]
    view["variance"][0] = preselection["variance"]
    for j, point in enumerate(points):
        threshold = thresholds.get(point)
        if threshold is None or not np.isfinite(threshold):
            continue
        above = histogram[{"point": point, "test": True, "score": slice(hist.loc(threshold), None, sum)}]
        view["value"][1, :, j] = above.view(flow=True)["value"]
        view["variance"][1, :, j] = above.view(flow=True)["variance"]
    return out
