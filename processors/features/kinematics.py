"""Kinematic building blocks: angles, masses, four-momenta (``vector``) and object access.

Four-momenta are ``vector`` arrays (numpy backend, Cartesian ``px, py, pz, E``), built once
per lepton by :func:`momenta`; sums, invariant masses, boosts and angles between them are
``vector``'s.  :func:`delta_phi` and :func:`delta_r` are the same formulas as ``vector``'s
``deltaphi`` and ``deltaR`` written for bare (eta, phi) arrays, so that they also act on
jagged awkward arrays and broadcast a per-event value into them (jet-lepton pairs, jets
against MET) without building vectors.
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numpy as np
import vector

from .names import LEPTON_FIELDS

NEGLIGIBLE = 1e-12
"""Relative size below which a vector counts as zero (rounding noise), and 1 - max beta."""


def as_flat_float(values, name: str) -> np.ndarray:
    """``values`` (numpy, awkward or list; one number per event) as a flat float64 array."""
    if isinstance(values, ak.Array):
        if values.ndim != 1:
            raise ValueError(f"{name} must be flat (one value per event), got {values.type}")
        values = ak.to_numpy(values)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional array, got shape {array.shape}")
    return array


def safe_divide(numerator, denominator, where_zero: float = 0.0) -> np.ndarray:
    """numerator / denominator, and ``where_zero`` wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, where_zero, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def sqrt_clipped(value) -> np.ndarray:
    """sqrt(max(value, 0)): square root of a quantity that is >= 0 up to rounding."""
    return np.sqrt(np.maximum(value, 0.0))


def momenta(pt, eta, phi, mass) -> vector.MomentumNumpy4D:
    """Four-momenta of objects given as (pT, eta, phi, m) arrays, in Cartesian coordinates.

    px = pT cos(phi), py = pT sin(phi), pz = pT sinh(eta), E = sqrt(|p|^2 + m^2).
    """
    coordinates = {"pt": pt, "eta": eta, "phi": phi, "mass": np.broadcast_to(mass, np.shape(pt))}
    return vector.array({name: np.asarray(values, dtype=np.float64) for name, values in coordinates.items()}).to_xyzt()


def massless(p4) -> vector.MomentumNumpy4D:
    """The same three-momenta with E = |p| (the objects taken massless)."""
    return vector.array({"px": p4.px, "py": p4.py, "pz": p4.pz, "E": p4.p})


def transverse(pt, phi) -> vector.VectorNumpy2D:
    """Transverse 2D ``vector``s (x = pT cos phi, y = pT sin phi) from (pT, phi) arrays."""
    return vector.array({"rho": np.asarray(pt, dtype=np.float64), "phi": np.asarray(phi, dtype=np.float64)})


def mass(p4) -> np.ndarray:
    """Invariant mass of ``vector`` four-momenta, 0 where rounding makes m^2 slightly negative."""
    return np.maximum(np.asarray(p4.mass, dtype=np.float64), 0.0)


def delta_phi(phi1, phi2):
    """Signed azimuthal difference phi1 - phi2 wrapped into [-pi, pi).

    dphi = ((phi1 - phi2 + pi) mod 2 pi) - pi.  Works on numpy and awkward arrays (a
    flat per-event array broadcasts against a jagged per-object one); take ``abs`` for
    the separation in [0, pi].
    """
    return (phi1 - phi2 + np.pi) % (2.0 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """Angular distance dR = sqrt(deta^2 + dphi^2), with dphi from :func:`delta_phi`."""
    return np.sqrt((eta1 - eta2) ** 2 + delta_phi(phi1, phi2) ** 2)


def transverse_mass(pt, phi, met_pt, met_phi):
    """Transverse mass of a (massless) visible object and the missing momentum.

    mT = sqrt(2 pT MET (1 - cos dphi)), dphi = phi - phi_MET.  A lepton back-to-back
    with the MET gives mT = 2 sqrt(pT MET); one parallel to it gives 0.
    """
    mt_squared = 2.0 * pt * met_pt * (1.0 - np.cos(delta_phi(phi, met_phi)))
    return np.sqrt(np.maximum(mt_squared, 0.0))


def invariant_mass(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2):
    """Invariant mass of two objects given as (pT, eta, phi, m): ``vector``'s (p1 + p2).mass.

    m^2 = (E1 + E2)^2 - |p1 + p2|^2, clipped at 0 against rounding.  Two massless
    back-to-back objects of energy E give m = 2E.
    """
    return mass(momenta(pt1, eta1, phi1, m1) + momenta(pt2, eta2, phi2, m2))


# --------------------------------------------------------------------------------------
# Access to the objects of the event
# --------------------------------------------------------------------------------------


class Lepton(NamedTuple):
    """One lepton per event (the i-th leading): flat float64 arrays and its four-momentum."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    charge: np.ndarray
    flavour: np.ndarray
    p4: vector.MomentumNumpy4D


def require_fields(collection, name: str, fields: tuple[str, ...]) -> None:
    """Raise a ValueError naming the fields that ``collection`` lacks."""
    present = set(ak.fields(collection))
    missing = [field for field in fields if field not in present]
    if missing:
        raise ValueError(f"{name} lacks the field(s) {missing}; it has {sorted(present)}")


def _materialised(buffer) -> np.ndarray:
    """A layout buffer as a numpy array (a virtual buffer is read first)."""
    return buffer if isinstance(buffer, np.ndarray) else np.asarray(buffer.materialize())


def flat_field(values, field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The per-event offsets (n_events + 1, from 0) and the flat numpy contents of a jagged
    array of numbers (one list per event), or of the ``field`` of a jagged record array.

    Straight from the layout when it is a list of numbers or records (what the object building
    gives, and uproot reads), else through ``ak.num`` / ``ak.flatten``.
    """
    layout = values.layout if isinstance(values, ak.Array) else ak.to_layout(values)
    if isinstance(layout, ak.contents.ListOffsetArray):
        content = layout.content
        if field is not None and isinstance(content, ak.contents.RecordArray) and content.has_field(field):
            content = content.content(field)
        if isinstance(content, ak.contents.NumpyArray) and (field is None or content is not layout.content):
            offsets = _materialised(layout.offsets.data).astype(np.int64, copy=False)
            data = _materialised(content.data)
            if offsets[0] != 0 or len(data) != offsets[-1]:
                data, offsets = data[offsets[0]:offsets[-1]], offsets - offsets[0]
            return offsets, data
    if field is not None:
        values = values[field]
    counts = ak.to_numpy(ak.num(values, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(values, axis=1))


def nth_object_fields(collection, index: int, fields, fill: float = 0.0) -> dict[str, np.ndarray]:
    """``{field: collection[field]}`` of the ``index``-th object of each event; ``fill`` where absent.

    Read from the flat contents and the per-event offsets (:func:`flat_field`).
    """
    values = {}
    for field in fields:
        offsets, flat = flat_field(collection, field)
        counts = np.diff(offsets)
        present = counts > index
        column = np.full(len(counts), fill, dtype=np.float64)
        column[present] = flat[offsets[:-1][present] + index]
        values[field] = column
    return values


def leading_leptons(leptons) -> tuple[Lepton, Lepton]:
    """The two leading leptons of each event; a zero four-vector where there is none."""
    pair = []
    for index in (0, 1):
        fields = nth_object_fields(leptons, index, LEPTON_FIELDS)
        p4 = momenta(fields["pt"], fields["eta"], fields["phi"], fields["mass"])
        pair.append(Lepton(**fields, p4=p4))
    return pair[0], pair[1]


def per_event(values: np.ndarray) -> ak.Array:
    """A flat per-event array as awkward, so that it broadcasts into jagged collections."""
    return ak.Array(np.asarray(values, dtype=np.float64))
