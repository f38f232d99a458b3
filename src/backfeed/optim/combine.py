"""Combine: several optimizers on disjoint groups of parameters, stepped as one optimizer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..llm import LLM
from .base import Optimizer
from .history import Observation, values_key
from .records import CALL, Problem, Proposal, StepReport


class Combine(Optimizer):
    """One optimizer over the union of its members' parameters (like torch's parameter
    groups): each member steps its own group and the reports merge into one.

    The step's first candidate is every member's first; each further candidate of a member is
    added with the other members' first values. Members must not share a parameter, and call
    one model (give them the same `llm`, or none): a run records one optimizer model.
    `bf.train(..., optimizer=[a, b])` wraps the list in a Combine.
    """

    def __init__(self, optimizers: Iterable[Optimizer]) -> None:
        self.members = list(optimizers)
        if not self.members:
            raise ValueError("Combine needs at least one optimizer")
        wrong = [type(m).__name__ for m in self.members if not isinstance(m, Optimizer)]
        if wrong:
            raise TypeError(f"Combine takes bf.optim.Optimizer instances, not {wrong}")
        owner: dict[int, int] = {}
        shared: list[str] = []
        for i, m in enumerate(self.members):
            for p in m.params:
                if owner.setdefault(id(p), i) != i and p.name not in shared:
                    shared.append(p.name)
        if shared:
            raise ValueError(
                f"the optimizers share parameter(s) {shared}: each parameter may belong to one "
                "optimizer only; build them on disjoint groups")
        models = list({id(m._llm): m._llm for m in self.members if m._llm is not None}.values())
        if len(models) > 1:
            raise ValueError(
                "the optimizers were given different models; a Combine (and the run that "
                "records it) calls one optimizer model, so give them the same llm= (or none)")
        super().__init__([p for m in self.members for p in m.params], models[0] if models else None)
        for m in self.members if models else ():
            m.llm = models[0]  # the members given none call the one model too

    def _label(self, i: int) -> str:
        return f"optimizer {i} ({type(self.members[i]).__name__})"

    @property
    def needs_feedback(self) -> bool:  # type: ignore[override]
        """Skip the step only when no member could act without feedback."""
        return all(m.needs_feedback for m in self.members)

    @property
    def llm(self) -> LLM:
        """The members' one model (the trainer records it as the run's optimizer model)."""
        return self.members[0].llm

    @llm.setter
    def llm(self, value: LLM) -> None:
        for m in self.members:
            m.llm = value

    @property
    def given_llm(self) -> LLM | None:
        return self.members[0].given_llm

    def observe(self) -> Observation | None:
        for m in self.members:
            m.observe()
        return super().observe()

    def record(self, values: dict[str, Any], score: float | None, feedback: str) -> Observation:
        for m in self.members:
            own = {p.name for p in m.params}
            m.record({k: v for k, v in values.items() if k in own}, score, feedback)
        return super().record(values, score, feedback)

    def _propose(self, report: StepReport) -> list[Proposal]:
        """Each member proposes for its own group; the first proposal is every member's first
        values together, then each member's other proposals with the others' first values."""
        subs = [m.propose() for m in self.members]
        errors = []
        for i, sub in enumerate(subs):
            label = self._label(i)
            report.absorb(sub, label)
            report.updates.extend(sub.updates)
            if sub.reasoning:
                report.reasoning += ("\n" if report.reasoning else "") + f"{label}: {sub.reasoning}"
            if sub.error:
                errors.append(f"{label}: {sub.error}")
        report.stop = all(sub.stop for sub in subs)
        if errors and len(errors) == len(subs):
            report.error = "; ".join(errors)
        else:
            report.problems.extend(Problem(e, CALL) for e in errors)
        if not any(sub.proposals for sub in subs):
            return []
        first = self.values()
        for sub in subs:
            first.update(sub.proposals[0].values if sub.proposals else {})
        merged = [Proposal(first, by=" + ".join(m.name for m in self.members),
                           reasoning=report.reasoning)]
        for sub in subs:
            merged += [p.with_values({**first, **p.values}) for p in sub.proposals[1:]]
        return merged

    def _settle(self, report: StepReport, start: dict[str, Any],
                proposals: list[Proposal]) -> None:
        """The members settled their own proposals (repeats, perturbations): keep the merged
        ones that differ, the members' updates as they are."""
        report.proposals = list({values_key(p.values): p for p in proposals
                                 if p.values != start}.values())
        chosen = report.proposals[0].values if report.proposals else start
        for update in report.updates:
            update.new = chosen.get(update.name, update.new)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["members"] = [m.state_dict() for m in self.members]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        members = state.get("members", [])
        if len(members) != len(self.members):
            raise ValueError(f"state is for {len(members)} combined optimizers, not "
                             f"{len(self.members)}")
        super().load_state_dict(state)
        for m, s in zip(self.members, members):
            m.load_state_dict(s)

