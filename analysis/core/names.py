"""The one name of a signal grid point, used for samples, histogram axes and model outputs."""

from __future__ import annotations


def point_name(m_slepton: float, dm: float) -> str:
    """Name of the grid point (m(slepton), dm) in GeV.

    >>> point_name(200, 40)
    'slepton_200_40'
    >>> point_name(150.5, 10)
    'slepton_150p5_10'
    """
    return f"slepton_{m_slepton:g}_{dm:g}".replace(".", "p")
