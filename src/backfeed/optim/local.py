"""Around: compass search around the current numbers (bounded or not), with the LLM's numbers
as extra candidates; `auto`'s choice when every parameter is an int or a float."""

from __future__ import annotations

import math
from typing import Any

from ..graph import Param
from ..llm import LLM
from .apply import values_proposal
from .base import Optimizer
from .history import values_key
from .prime import Prime
from .records import Proposal, StepReport


class Around(Optimizer):
    """Search int and float parameters by probing around the current values.

    Each step probes one parameter (in turn) at `value + s` and `value - s`, clipped to its
    bounds, with `s` its step size: a step that moved the values (the trainer kept a probe)
    doubles the step size of the parameter it probed, one that did not halves it and moves to
    the next parameter. When the center scored at least as well as the nearest values on each
    side, the point where lines through their scores meet is tried as well, fitted on the
    scores and on -1/score (exact for a score 1/(1 + |error|)). A parameter starts at a quarter of its bounds' width, or
    `max(1, |value|)` without bounds, unless `steps={name: size}` says. This is compass search
    with expansion: it needs no bounds and no gradient, and a score that only says "closer"
    is enough.

    With `ask=True` (default) the LLM is also asked each step (through `Prime`, sharing this
    optimizer's history), and its numbers join as a further candidate: it reads the feedback
    ("too large", the graph) that the probes cannot. The trainer evaluates every candidate and
    keeps the best, so two or three evaluations are spent per step.
    """

    def __init__(self, params: list[Param] | Any, llm: LLM | None = None, *, ask: bool = True,
                 steps: dict[str, float] | None = None, **prime_options: Any) -> None:
        super().__init__(params, llm)
        wrong = [p.name for p in self.params if p.kind not in ("int", "float")]
        if wrong:
            raise ValueError(f"Around searches int and float parameters; {wrong} are not: use "
                             "bf.optim.auto, Hybrid or Prime for a mix")
        unknown = sorted(set(steps or {}) - {p.name for p in self.params})
        if unknown:
            raise ValueError(f"steps= names {unknown}, which are not among the parameters")
        self.size = {p.name: float((steps or {}).get(p.name) or _first_step(p))
                     for p in self.params}
        self.turn = 0  # the parameter probed next
        self.last: dict[str, Any] | None = None  # the values the last probes were made around
        self.probed: tuple[str, dict[str, Any], float] | None = None  # (name, center, size)
        self.probe_keys: set[str] = set()  # the last step's compass probes
        self.ask = ask
        self.prime = Prime(self.params, llm, history=self.history, **prime_options) if ask \
            else None

    @property
    def llm(self) -> LLM:
        if self.prime is None:
            raise AttributeError("Around(ask=False) has no model")
        return self.prime.llm

    @llm.setter
    def llm(self, value: LLM) -> None:
        if self.prime is not None:
            self.prime.llm = value

    @property
    def given_llm(self) -> LLM | None:
        return self.prime.given_llm if self.prime is not None else None

    def _propose(self, report: StepReport) -> list[Proposal]:
        center = self.values()
        self._adapt(center)
        param = self.params[self.turn]
        seen = {values_key(h.values) for h in self.history}
        probes: list[dict[str, Any]] = []
        for _ in range(40):  # both probes scored before: halve the step and probe again
            for sign in (1, -1):
                moved = _moved(param, center[param.name], sign * self.size[param.name])
                probe = {**center, param.name: moved}
                if moved is not None and moved != center[param.name] and \
                        values_key(probe) not in seen:
                    probes.append(probe)
            if probes or self.size[param.name] <= _smallest(param):
                break
            self.size[param.name] = max(self.size[param.name] / 2.0, _smallest(param))
        why = f"compass search: {param.name} ± {self.size[param.name]:.4g}"
        found = [values_proposal(self.params, center, probe, by=self.name, reasoning=why)
                 for probe in probes]
        found[:0] = [values_proposal(
            self.params, center, vertex, by=self.name,
            reasoning="the peak where lines through the last probes' scores meet")
            for vertex in self._vertices(center, seen)]
        if self.prime is not None:
            found.extend(self.prime.proposals(report))
        self.last = dict(center)
        self.probed = (param.name, dict(center), self.size[param.name])
        self.probe_keys = {values_key(probe) for probe in probes}
        return found

    def _vertices(self, center: dict[str, Any], seen: set[str]) -> list[dict[str, Any]]:
        """When `center` scored at least as well as the nearest values evaluated on each side
        of it along the parameter probed last (the others as now): where a line through the
        steeper side, and one of opposite slope through the other side's point, meet (exact
        when the score falls off linearly on both sides of its peak), if new. Fitted twice: on
        the scores, and on -1/score, which is linear on both sides for a score
        1/(1 + |error|) with the error linear near its zero (the numeric family's metric:
        problem 11's peak was found in one guess this way, after the linear fit was refused
        as too far from the peak)."""
        if self.probed is None or values_key(center) != values_key(self.probed[1]):
            return []
        name = self.probed[0]
        x = float(center[name])
        line = {}  # value of `name` -> score, the other parameters as now
        for h in self.history:
            if h.score is not None and name in h.values and all(
                    h.values.get(k) == v for k, v in center.items() if k != name):
                line[float(h.values[name])] = h.score
        left = [v for v in line if v < x]
        right = [v for v in line if v > x]
        if x not in line or not left or not right:
            return []
        size = self.probed[2]
        triples = [(max(left), min(right))]  # the nearest on each side
        probes = (_moved(self.param(name), x, -size), _moved(self.param(name), x, size))
        if probes[0] in line and probes[1] in line and probes != triples[0]:
            triples.append(probes)  # the last probes, when others lie nearer
        fits = []
        for xl, xr in triples:
            points = [(xl, line[xl]), (x, line[x]), (xr, line[xr])]
            fits.append((points, True))
            if all(score > 0 for _, score in points):
                fits.append(([(v, -1.0 / score) for v, score in points], False))
        found: list[dict[str, Any]] = []
        for three, near_only in fits:
            peak = _peak(three, near_only=near_only)
            if peak is None:
                continue
            guess = _moved(self.param(name), peak, 0.0)
            values = {**center, name: guess}
            if guess is None or guess == center[name] or values_key(values) in seen or \
                    any(abs(float(v[name]) - float(guess)) <= 1e-9 * max(1.0, abs(guess))
                        for v in found):
                continue
            found.append(values)
        return found

    def _adapt(self, center: dict[str, Any]) -> None:
        """After a step: a kept probe doubles its parameter's step size; another kept
        candidate (the peak guess, the model's) sets it to how far the values moved; nothing
        kept halves it and turns to the next parameter."""
        if self.last is None:
            return
        name = self.params[self.turn].name
        if values_key(center) in self.probe_keys:  # a probe was kept: go further that way
            self.size[name] *= 2.0
        elif values_key(center) != values_key(self.last):  # another candidate was kept
            moved = abs(float(center[name]) - float(self.last[name]))
            self.size[name] = max(moved or self.size[name], _smallest(self.params[self.turn]))
        else:
            self.size[name] = max(self.size[name] / 2.0, _smallest(self.params[self.turn]))
            self.turn = (self.turn + 1) % len(self.params)

    def _settled(self, report: StepReport) -> None:
        if self.prime is not None:
            self.prime.note_rejections(report)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(size=dict(self.size), turn=self.turn, last=self.last,
                     probed=list(self.probed) if self.probed else None,
                     probe_keys=sorted(self.probe_keys))
        if self.prime is not None:
            state["prime"] = self.prime.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.size.update(state.get("size", {}))
        self.turn = int(state.get("turn", 0)) % len(self.params)
        self.last = state.get("last")
        probed = state.get("probed")
        self.probed = (probed[0], probed[1], float(probed[2])) if probed else None
        self.probe_keys = set(state.get("probe_keys", ()))
        if self.prime is not None and "prime" in state:
            self.prime.load_state_dict(state["prime"])


def _peak(points: list[tuple[float, float]], *, near_only: bool) -> float | None:
    """Where the peak of a V through three points (left, center, right; not evenly spaced
    needed) lies; None when the center is not the highest, or (`near_only`) when a side
    scored below half the center's (far from the peak a line fits raw scores badly)."""
    (xl, hl), (x0, h0), (xr, hr) = points
    if not (h0 >= hl and h0 >= hr) or h0 == min(hl, hr):
        return None
    if near_only and min(hl, hr) < h0 / 2:
        return None
    rise, fall = (h0 - hl) / (x0 - xl), (h0 - hr) / (xr - x0)
    if rise >= fall:  # the left side is steeper: the peak lies right of the center
        return (x0 + xr) / 2.0 + (hr - h0) / (2.0 * rise)
    return (xl + x0) / 2.0 + (h0 - hl) / (2.0 * fall)


def _first_step(p: Param) -> float:
    if p.bounds is not None and None not in p.bounds:
        return max((float(p.bounds[1]) - float(p.bounds[0])) / 4.0, _smallest(p))
    return max(1.0, abs(float(p._value)))


def _smallest(p: Param) -> float:
    return 1.0 if p.kind == "int" else 1e-9


def _moved(p: Param, value: Any, by: float) -> Any:
    """`value + by` within the bounds (an int rounded, moving at least 1), or None."""
    new = float(value) + by
    if p.bounds is not None:
        lo, hi = p.bounds
        new = max(new, float(lo)) if lo is not None else new
        new = min(new, float(hi)) if hi is not None else new
    if not math.isfinite(new):
        return None
    if p.kind == "int":
        return round(new)
    return new
