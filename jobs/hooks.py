"""Pythia 8 user hooks, written in Python (``pythia8mc`` lets Python subclass ``UserHooks``).

A sample names its hooks in :attr:`jobs.samples.Sample.hooks` as spec strings, ``name`` or
``name:key=value:key=value`` (they enter the job's cache key); :func:`install_hooks` builds
and installs them. A vetoed event is dropped and Pythia's ``sigmaGen`` is reduced by its
share (Pythia counts only accepted events), so ``sigmaGen`` stays the cross section of the
events that are kept.

- ``same_flavour_qqbar`` (process level): keeps only q qbar -> slepton pairs whose incoming
  quarks are the same flavour. Pythia 8.317's ``Sigma2qqbar2sleptonantislepton`` adds its
  Z-exchange term for every q_i qbar_j pair of equal isospin (u cbar, d sbar, s bbar, ...),
  i.e. flavour-changing neutral currents that do not exist in the model; measured, 20% (~l_L)
  and 32% (~l_R) of its events at m = 200 GeV come from them (README, "Signal normalisation").
  A correction, not a filter: its vetoes are part of the physics cross section.
- ``truth_met`` (``min``, ``scale``, ``lep``, ``record``): a generator-level filter on the missing
  transverse momentum the event can still have, decided once the shower has evolved down to
  ``scale`` GeV (all harder ISR/FSR emissions done; :meth:`TruthMetFilter.bound`): the hard
  process's invisible particles (neutrinos, neutralinos) and taus, boosted with the recoil of
  their hard-process ancestor (the W, Z, top or slepton, as it moves after the emissions so
  far), give B = max over subsets S of the taus of |sum pT(invisible) + sum_S pT(tau)|, an
  upper bound on the final truth MET (a tau's invisible share lies between none and all of it)
  up to the softer emissions still to come. With ``lep`` > 0 the event must also have an
  opposite-charge pair of hard-process leptons (e, mu, or tau standing for either), boosted the
  same way, each with pT >= ``lep`` and |eta| <= 2.7, that can be same-flavour (a tau can become an e or a mu):
  e mu pairs, and leptons too soft to pass a dilepton selection, are dropped (the decay leptons
  only lose momentum afterwards, to photons and tau neutrinos). Events failing either are vetoed
  before the rest of the shower, the hadron-level decays, the particle copy and the detector. Its
  efficiency (weighted with the event weight) is recorded, so that a reference cross section
  can be multiplied by it. B is written per event (branch ``GenFilter_metBound``, and
  ``GenFilter_pass``), so the loss of a tighter filter can be measured on a sample made with a
  looser one; with ``record=1`` nothing is vetoed: the reference sample.

The hook objects must outlive the ``Pythia`` instance's use: ``pythia8mc`` drops a Python
override whose object is garbage-collected (the base class's "no veto" is then called), so
:func:`install_hooks` keeps a reference until the ``Pythia`` object itself is collected.
"""

from __future__ import annotations

import math
import weakref

import pythia8mc

#: Particles that leave no trace in the detector (neutrinos, neutralino, gravitino).
INVISIBLE_PIDS = frozenset((12, 14, 16, 1000022, 1000039))
TAU = 15
CHARGED_LEPTONS = frozenset((11, 13, TAU))
#: The lepton condition's |eta| limit: the detector's 2.5 plus a margin for the softer emissions to come.
LEPTON_ABS_ETA_MAX = 2.7

# Python objects that Pythia instances call back into, kept alive per instance (see above).
_KEEP_ALIVE: dict[int, dict] = {}


class HookError(ValueError):
    """An unknown hook name or a bad hook parameter; the message names the spec."""


class SameFlavourQuarks(pythia8mc.UserHooks):
    """Process-level veto of hard processes whose two incoming partons differ in flavour."""

    def __init__(self, info=None):
        pythia8mc.UserHooks.__init__(self)
        self.n_seen = 0
        self.n_vetoed = 0

    def canVetoProcessLevel(self):  # camelCase: the UserHooks methods Pythia calls
        return True

    def doVetoProcessLevel(self, process):
        # Entries 3 and 4 of the process record are the incoming partons of the hard process.
        self.n_seen += 1
        if abs(process[3].id()) != abs(process[4].id()):
            self.n_vetoed += 1
            return True
        return False

    def counts(self) -> dict:
        """Hard processes seen and vetoed so far."""
        return {"seen": self.n_seen, "vetoed": self.n_vetoed}


class TruthMetFilter(pythia8mc.UserHooks):
    """Generator-level filter on the reachable truth MET, decided at the shower scale ``scale``.

    ``info``: the Pythia instance's ``infoPython()`` (for the event weight of biased samples).
    """

    def __init__(self, info=None, min: float = 150.0, scale: float = 30.0, lep: float = 0.0,
                 record: float = 0.0):
        pythia8mc.UserHooks.__init__(self)
        if not (math.isfinite(min) and min >= 0):
            raise HookError(f"truth_met: min must be a finite number >= 0 GeV (got {min})")
        if not (math.isfinite(scale) and scale > 0):
            raise HookError(f"truth_met: scale must be > 0 GeV (got {scale})")
        if not (math.isfinite(lep) and lep >= 0):
            raise HookError(f"truth_met: lep must be a finite number >= 0 GeV (got {lep})")
        self.min_gev, self.scale_gev, self.record_only = float(min), float(scale), bool(record)
        self.lepton_pt_gev = float(lep)
        self.last_dilepton = True
        self.info = info
        self.seen = self.kept = 0
        self.seen_sumw = self.kept_sumw = self.seen_sumw2 = self.kept_sumw2 = 0.0
        self.last_bound = math.nan
        self._invisible, self._taus, self._leptons, self._ancestors = [], [], [], {}
        self._decided = True

    # -- process level: remember where the invisible particles and taus come from
    def canVetoProcessLevel(self):
        return True

    def doVetoProcessLevel(self, process):
        # Sum the invisible particles per hard-process ancestor (a boost is linear: boosting the
        # sum is the sum of the boosts), keep taus and charged leptons one by one.
        invisible, taus, leptons = {}, [], []
        for index in range(5, process.size()):  # 0-4: system, beams, incoming partons
            particle = process[index]
            if not particle.isFinal():
                continue
            pid = particle.idAbs()
            if pid in INVISIBLE_PIDS or pid in CHARGED_LEPTONS:
                ancestor, mother = index, particle.mother1()
                while mother > 0:  # up the resonance chain (status -22) to the hard-process particle
                    parent = process[mother]
                    if parent.status() != -22:
                        break
                    ancestor, mother = mother, parent.mother1()
                if pid in INVISIBLE_PIDS:
                    invisible[ancestor] = particle.p() + invisible[ancestor] if ancestor in invisible else particle.p()
                else:
                    if pid == TAU:
                        taus.append((ancestor, particle.p()))
                    leptons.append((ancestor, particle.p(), pid, particle.charge()))
        self._invisible, self._taus, self._leptons = list(invisible.items()), taus, leptons
        ancestors = set(invisible) | {ancestor for ancestor, _ in taus} | {ancestor for ancestor, *_ in leptons}
        self._ancestors = {ancestor: process[ancestor].p() for ancestor in ancestors}
        self._decided = False
        self.last_bound = math.nan
        self.last_dilepton = True
        if self.lepton_pt_gev > 0 and not self.record_only and not _sfos_candidate(
                [(pid, charge) for _, _, pid, charge in leptons]):
            # No opposite-charge pair that can be same-flavour (e.g. W W -> e mu): no boost changes
            # that, so veto before the shower. Counted as seen and rejected, like the others.
            self._decided = True
            self.last_dilepton = False
            self._count(False)
            return True
        return False

    def canVetoPT(self):
        return True

    def scaleVetoPT(self):
        return self.scale_gev

    def _boosts(self, event) -> dict:
        boosts = {}
        for ancestor, original in self._ancestors.items():
            current = event[ancestor].iBotCopy()
            boosts[ancestor] = None if current == ancestor else (original, event[current].p())
        return boosts

    @staticmethod
    def _transverse(boosts, ancestor, momentum) -> tuple[float, float]:
        """(px, py) of a hard-process decay product, boosted with its ancestor's recoil."""
        boost = boosts[ancestor]
        if boost is None:
            return momentum.px(), momentum.py()
        moved = pythia8mc.Vec4(momentum)
        moved.bstback(boost[0])
        moved.bst(boost[1])
        return moved.px(), moved.py()

    def dilepton_possible(self, event, boosts=None) -> bool:
        """Whether two opposite-charge hard-process leptons with pT >= ``lep`` and
        |eta| <= :data:`LEPTON_ABS_ETA_MAX` can be same-flavour."""
        boosts = self._boosts(event) if boosts is None else boosts
        hard = []
        for ancestor, momentum, pid, charge in self._leptons:
            boost = boosts[ancestor]
            moved = pythia8mc.Vec4(momentum)
            if boost is not None:
                moved.bstback(boost[0])
                moved.bst(boost[1])
            if moved.pT() >= self.lepton_pt_gev and abs(moved.eta()) <= LEPTON_ABS_ETA_MAX:
                hard.append((pid, charge))
        return _sfos_candidate(hard)

    def bound(self, event, boosts=None) -> float:
        """B: the largest |sum pT| of the invisible particles plus any subset of the taus, each
        boosted from its ancestor's hard-process momentum to the ancestor's current copy."""
        boosts = self._boosts(event) if boosts is None else boosts

        def transverse(ancestor, momentum):
            return self._transverse(boosts, ancestor, momentum)

        x = y = 0.0
        for ancestor, momentum in self._invisible:
            dx, dy = transverse(ancestor, momentum)
            x, y = x + dx, y + dy
        best = math.hypot(x, y)
        taus = [transverse(ancestor, momentum) for ancestor, momentum in self._taus]
        for mask in range(1, 1 << len(taus)):  # at most a few taus: 2^n corners of the box
            sx, sy = x, y
            for k, (tx, ty) in enumerate(taus):
                if mask >> k & 1:
                    sx, sy = sx + tx, sy + ty
            best = max(best, math.hypot(sx, sy))
        return best

    def doVetoPT(self, iPos, event):
        if self._decided or iPos >= 5:  # once per event, in the main evolution (not resonance showers)
            return False
        self._decided = True
        boosts = self._boosts(event)
        self.last_bound = self.bound(event, boosts)
        met_ok = self.last_bound >= self.min_gev
        if self.lepton_pt_gev > 0 and (met_ok or self.record_only):  # (only when it can matter)
            self.last_dilepton = self.dilepton_possible(event, boosts)
        keep = met_ok and self.last_dilepton
        self._count(keep)
        return not (keep or self.record_only)

    def _count(self, keep: bool) -> None:
        weight = self.info.weight() if self.info is not None else 1.0
        self.seen += 1
        self.seen_sumw += weight
        self.seen_sumw2 += weight * weight
        if keep or self.record_only:
            self.kept += 1
            self.kept_sumw += weight
            self.kept_sumw2 += weight * weight

    def counts(self) -> dict:
        """Events seen and kept, and their sums of weights and squared weights."""
        return {"seen": self.seen, "kept": self.kept, "seen_sumw": self.seen_sumw, "kept_sumw": self.kept_sumw,
                "seen_sumw2": self.seen_sumw2, "kept_sumw2": self.kept_sumw2, "min_gev": self.min_gev,
                "scale_gev": self.scale_gev, "lepton_pt_gev": self.lepton_pt_gev, "record_only": self.record_only}

    def event_values(self) -> dict[str, float]:
        """Per-event values written as branches: the MET bound B (so that the loss of a tighter
        filter can be measured on any sample with a looser one) and whether the event passes
        (always 1 unless ``record``)."""
        passes = self.last_bound >= self.min_gev and self.last_dilepton
        return {"GenFilter_metBound": self.last_bound, "GenFilter_pass": float(passes)}


def _sfos_candidate(leptons: list[tuple[int, float]]) -> bool:
    """Whether some opposite-charge pair of (|pid|, charge) can be same-flavour (a tau can be e or mu)."""
    return any(q1 * q2 < 0 and (p1 == p2 or TAU in (p1, p2))
               for i, (p1, q1) in enumerate(leptons) for p2, q2 in leptons[i + 1:])


HOOKS = {"same_flavour_qqbar": SameFlavourQuarks, "truth_met": TruthMetFilter}
_PARAMETERS = {"same_flavour_qqbar": (), "truth_met": ("min", "scale", "lep", "record")}
#: Hooks that are generator-level filters (Pythia vetoes: sigmaGen contains their efficiency).
FILTERS = ("truth_met",)
#: Every filter whose efficiency multiplies the physics cross section: the hooks, the forced
#: leptonic tau decays and the truth-tagging b-veto weights (``jobs/pythia_job.py``; their
#: bookkeeping is kept under these names in a job's "hooks").
ALL_FILTERS = (*FILTERS, "leptonic_taus", "btag_veto")


def parse_hook_spec(spec: str) -> tuple[str, dict[str, float]]:
    """``"truth_met:min=150:scale=30"`` -> ``("truth_met", {"min": 150.0, "scale": 30.0})``."""
    name, *items = spec.split(":")
    if name not in HOOKS:
        raise HookError(f"unknown Pythia hook {name!r} in {spec!r}; known: {sorted(HOOKS)}")
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in _PARAMETERS[name]:
            raise HookError(f"hook {spec!r}: unknown parameter {key!r}; {name} takes {list(_PARAMETERS[name]) or 'none'}")
        try:
            params[key] = float(value)
        except ValueError:
            raise HookError(f"hook {spec!r}: {key} must be a number (got {value!r})") from None
    return name, params


def truth_met_spec(min_gev: float, scale_gev: float, lepton_pt_gev: float = 0.0, record: bool = False) -> str:
    """The spec string of a truth-MET filter."""
    spec = f"truth_met:min={min_gev:g}:scale={scale_gev:g}"
    if lepton_pt_gev > 0:
        spec += f":lep={lepton_pt_gev:g}"
    return spec + (":record=1" if record else "")


def validate_hook_names(specs) -> None:
    """Raise :class:`HookError` for a spec that does not parse or whose parameters are bad."""
    for spec in specs:
        name, params = parse_hook_spec(spec)
        if name == "truth_met":
            TruthMetFilter(None, **params)  # checks the values


def install_hooks(pythia, specs) -> dict[str, object]:
    """Build the hooks ``specs`` and install them on ``pythia`` (before ``init()``).

    Several hooks are combined with Pythia's ``addUserHooksPtr``. Returns the hook objects by
    name (their counters are read after the run).
    """
    hooks = {}
    for spec in specs:
        name, params = parse_hook_spec(spec)
        hooks[name] = HOOKS[name](pythia.infoPython(), **params)
    for hook in hooks.values():
        pythia.addUserHooksPtr(hook)
    if hooks:
        _KEEP_ALIVE[id(pythia)] = hooks
        weakref.finalize(pythia, _KEEP_ALIVE.pop, id(pythia), None)
    return hooks


def installed_hooks(pythia) -> dict[str, object]:
    """The hooks :func:`install_hooks` installed on ``pythia``, by name (empty if none)."""
    return _KEEP_ALIVE.get(id(pythia), {})


def pythia_acceptance(hook_counts: list[dict]) -> float:
    """The fraction of events Pythia's own filters (:data:`FILTERS`) let through, *counted*
    (unweighted): Pythia's ``sigmaGen`` after vetoes is the cross section before them times
    this fraction, also for biased (weighted) generation (measured: W W with pT-hat bias power
    2, sigmaGen / kept-fraction = 6.79 pb = the unfiltered 6.77 pb, whereas the weighted
    efficiency would give 36.9 pb). 1 without a filter."""
    acceptance = 1.0
    for name in FILTERS:
        rows = [counts[name] for counts in hook_counts if name in counts]
        seen = sum(row["seen"] for row in rows)
        if seen:
            acceptance *= sum(row["kept"] for row in rows) / seen
    return acceptance


def filter_efficiency(hook_counts: list[dict], names=None) -> tuple[float, float]:
    """Weighted efficiency of the generator filters ``names`` (default: all, :data:`ALL_FILTERS`)
    over jobs (``payload["hooks"]`` dicts) and its statistical error; (1, 0) without a filter.
    This is the factor that multiplies the physics cross section (:func:`pythia_acceptance` is
    what Pythia's ``sigmaGen`` already contains).

    Every filter keeps a fraction f of each event (0 or 1 for the truth-MET filter; the
    probability BR^n that all n taus decay to leptons for forced leptonic taus). With generator
    weights w: eff = sum w f / sum w, var = sum w^2 (f - eff)^2 / (sum w)^2 (the ratio estimator;
    binomial for w = 1, f in {0, 1}). Efficiencies of several filters multiply.
    """
    efficiency, relative_variance = 1.0, 0.0
    for name in ALL_FILTERS if names is None else names:
        rows = [_filter_sums(name, counts[name]) for counts in hook_counts if name in counts]
        if not rows:
            continue
        sumw, sumwf, sumw2, sumw2f, sumw2f2 = (sum(row[i] for row in rows) for i in range(5))
        if sumw <= 0 or sumwf <= 0:
            continue
        eff = sumwf / sumw
        variance = max(sumw2f2 - 2 * eff * sumw2f + eff**2 * sumw2, 0.0) / sumw**2
        efficiency *= eff
        relative_variance += variance / eff**2
    return efficiency, efficiency * math.sqrt(relative_variance)


def _filter_sums(name: str, counts: dict) -> tuple[float, float, float, float, float]:
    """(sum w, sum w f, sum w^2, sum w^2 f, sum w^2 f^2) of one job's filter bookkeeping."""
    if name in ("leptonic_taus", "btag_veto"):
        return counts["sumw"], counts["sumwf"], counts["sumw2"], counts["sumw2f"], counts["sumw2f2"]
    return counts["seen_sumw"], counts["kept_sumw"], counts["seen_sumw2"], counts["kept_sumw2"], counts["kept_sumw2"]
