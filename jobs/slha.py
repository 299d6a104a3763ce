"""SLHA spectra for the simplified slepton model.

The model: left- and right-handed selectrons and smuons, all of mass ``m_slepton``, each
decaying 100% to its lepton partner and a pure-bino lightest neutralino of mass
``m_slepton - dm``. Every other sparticle is decoupled at 5 TeV (and cannot be produced at
13 TeV); staus and sneutrinos are decoupled too, so only ~e_L, ~e_R, ~mu_L, ~mu_R pairs are
produced (Pythia's ``SUSY:qqbar2sleptonantislepton`` through s-channel gamma*/Z).
"""

from __future__ import annotations

DECOUPLED_MASS_GEV = 5000.0
LIGHT_HIGGS_MASS_GEV = 125.0

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
BLOCK ALPHA
  -1.000000e-01
BLOCK HMIX Q= 1.000000e+03
  1  5.000000e+03   # mu
  2  1.000000e+01   # tan(beta)
"""


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
        # The width only sets the Breit-Wigner line shape; 1 GeV is narrow against all masses here.
        lines.append(f"DECAY {slepton} 1.000000e+00")
        lines.append(f"   1.000000e+00   2   {NEUTRALINO1}   {lepton}   # BR(slepton -> chi1 lepton) = 1")
    lines.append(f"DECAY {NEUTRALINO1} 0.000000e+00   # stable, invisible")
    return "\n".join(lines) + "\n"
