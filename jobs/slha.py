"""SLHA spectra for the simplified slepton model.

The model: left- and right-handed selectrons and smuons, all of mass ``m_slepton``, each
decaying 100% to its lepton partner and a pure-bino lightest neutralino of mass
``m_slepton - dm``. Every other sparticle is decoupled at 5 TeV (and cannot be produced at
13 TeV); staus and sneutrinos are decoupled too, so only ~e_L, ~e_R, ~mu_L, ~mu_R pairs are
produced (Pythia's ``SUSY:qqbar2sleptonantislepton`` through s-channel gamma*/Z).

Mixing is written out in SLHA2 form as well as SLHA1: ``SELMIX`` and ``SNUMIX`` are the
identity (mass eigenstates 1000011, 1000013, 1000015, 2000011, 2000013, 2000015 are e_L, mu_L,
tau_L, e_R, mu_R, tau_R), ``STAUMIX`` too, and ``NMIX`` makes chi_1^0 a pure bino.

The slepton widths are the physical ones of the only open decay, slepton -> lepton + bino
(:func:`bino_decay_width`: 0.005-0.44 GeV on the thesis grid). They were 1 GeV before: Pythia
samples a Breit-Wigner truncated at +-5 widths when the width exceeds
``PhaseSpace:minWidthBreitWigners`` (0.01 GeV) and loses the tails, 12.8% of the pair cross
section (measured). The signal is generated in the narrow-width approximation
(``PhaseSpace:useBreitWigners = off``, ``jobs/samples.py``), as the reference cross sections are.
"""

from __future__ import annotations

DECOUPLED_MASS_GEV = 5000.0
LIGHT_HIGGS_MASS_GEV = 125.0
ALPHA_EM_MZ = 1.0 / 127.9
W_MASS_GEV, Z_MASS_GEV = 80.385, 91.1876  # Pythia 8.317's pole masses (on-shell cos^2 theta_W)

#: Weak hypercharge (Q = T3 + Y) of the lepton partner of each slepton: e_L, mu_L -1/2; e_R, mu_R -1.
SLEPTON_HYPERCHARGE = {1000011: -0.5, 1000013: -0.5, 2000011: -1.0, 2000013: -1.0}

#: The produced sleptons and the lepton each decays to.
SLEPTON_TO_LEPTON = {1000011: 11, 2000011: 11, 1000013: 13, 2000013: 13}
NEUTRALINO1 = 1000022

_DECOUPLED = (
    1000001, 1000002, 1000003, 1000004, 1000005, 1000006,
    2000001, 2000002, 2000003, 2000004, 2000005, 2000006,
    1000012, 1000014, 1000015, 1000016, 2000015,
    1000021, 1000023, 1000024, 1000025, 1000035, 1000037,
    35, 36, 37,
)  # fmt: skip

# Standard-model inputs (PDG values) and trivial mixing: a pure bino chi_1^0, unmixed
# sfermions, tan(beta) = 10.
_FIXED_BLOCKS = """\
BLOCK MODSEL
    1    0   # general MSSM
BLOCK SMINPUTS
    1  1.279340e+02   # 1/alpha_em(MZ)
    2  1.166370e-05   # G_Fermi
    3  1.180000e-01   # alpha_s(MZ)
    4  9.118760e+01   # MZ pole
    5  4.180000e+00   # mb(mb)
    6  1.725000e+02   # mt pole
    7  1.776860e+00   # mtau pole
BLOCK MINPAR
    3  1.000000e+01   # tan(beta)
BLOCK NMIX   # neutralino mixing: chi_1^0 is a pure bino
  1 1  1.0
  2 2  1.0
  3 3  7.071068e-01
  3 4 -7.071068e-01
  4 3  7.071068e-01
  4 4  7.071068e-01
BLOCK UMIX
  1 1  1.0
  2 2  1.0
BLOCK VMIX
  1 1  1.0
  2 2  1.0
BLOCK STOPMIX
  1 1  1.0
  2 2  1.0
BLOCK SBOTMIX
  1 1  1.0
  2 2  1.0
BLOCK STAUMIX
  1 1  1.0
  2 2  1.0
BLOCK SELMIX   # SLHA2: (~e_L, ~mu_L, ~tau_L, ~e_R, ~mu_R, ~tau_R) unmixed
  1 1  1.0
  2 2  1.0
  3 3  1.0
  4 4  1.0
  5 5  1.0
  6 6  1.0
BLOCK SNUMIX
  1 1  1.0
  2 2  1.0
  3 3  1.0
BLOCK ALPHA
  -1.000000e-01
BLOCK HMIX Q= 1.000000e+03
  1  5.000000e+03   # mu
  2  1.000000e+01   # tan(beta)
"""


def bino_decay_width(slepton: int, m_slepton: float, m_neutralino: float) -> float:
    """Width (GeV) of slepton -> lepton + pure bino, massless lepton, at tree level:

    Gamma = alpha Y^2 m (1 - m_chi^2 / m^2)^2 / (2 cos^2 theta_W), Y the lepton's hypercharge.

    >>> round(bino_decay_width(2000011, 200.0, 160.0), 4)
    0.1304
    """
    cos2_w = (W_MASS_GEV / Z_MASS_GEV) ** 2
    hypercharge = SLEPTON_HYPERCHARGE[slepton]
    return ALPHA_EM_MZ * hypercharge**2 * m_slepton * (1.0 - (m_neutralino / m_slepton) ** 2) ** 2 / (2.0 * cos2_w)


def slepton_spectrum(m_slepton: float, m_neutralino: float) -> str:
    """The SLHA text for one grid point of the simplified slepton model.

    Raises ``ValueError`` if the point is unphysical (a non-positive mass, or a neutralino
    not lighter than the slepton, which would forbid the two-body decay).
    """
    if m_neutralino <= 0 or m_slepton <= 0:
        raise ValueError(f"unphysical slepton grid point: m_slepton={m_slepton}, m_neutralino={m_neutralino}")
    if m_neutralino >= m_slepton:
        raise ValueError(
            f"unphysical slepton grid point: m_neutralino={m_neutralino} >= m_slepton={m_slepton} (dm must be > 0)"
        )
    masses = {pid: DECOUPLED_MASS_GEV for pid in _DECOUPLED}
    masses[25] = LIGHT_HIGGS_MASS_GEV
    masses.update({pid: m_slepton for pid in SLEPTON_TO_LEPTON})
    masses[NEUTRALINO1] = m_neutralino

    lines = [f"# bsmscan simplified slepton model: m(slepton) = {m_slepton:g} GeV, m(chi1) = {m_neutralino:g} GeV"]
    lines.append(_FIXED_BLOCKS.rstrip("\n"))
    lines.append("BLOCK MASS")
    lines += [f"  {pid:8d}  {mass:.6e}" for pid, mass in sorted(masses.items())]
    for slepton, lepton in SLEPTON_TO_LEPTON.items():
        lines.append(f"DECAY {slepton} {bino_decay_width(slepton, m_slepton, m_neutralino):.6e}")
        lines.append(f"   1.000000e+00   2   {NEUTRALINO1}   {lepton}   # BR(slepton -> chi1 lepton) = 1")
    lines.append(f"DECAY {NEUTRALINO1} 0.000000e+00   # stable, invisible")
    return "\n".join(lines) + "\n"
