"""Hybrid: the LLM rewrites text and code; a classical optimizer tunes the numbers, taking the
LLM's numeric proposals as extra candidates (LLAMBO's warm start)."""

from __future__ import annotations

from typing import Any

from ..graph import Param
from ..llm import LLM
from . import prompts
from .apply import apply_answer, parse_answer
from .base import Observation, Optimizer, StepReport
from .numeric import Numeric, handles
from .prime import Prime
from .schema import answer_tokens, describe, example, members_schema, names_text


class Hybrid(Optimizer):
    """Prime for text, code and unbounded values; Numeric (Optuna) for bounded numbers, bools
    and choices. Prime sees every parameter; its proposals for numeric ones are queued in the
    sampler, which decides what to try. `warm_start=n` first asks the LLM for n settings of the
    numeric parameters and queues them all.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        sampler: str = "tpe",
        seed: int | None = None,
        warm_start: int = 0,
        **prime_options: Any,
    ) -> None:
        super().__init__(params, llm)
        numeric = [p for p in self.params if handles(p)]
        self.llm_names = {p.name for p in self.params if not handles(p)}
        self.prime = Prime(self.params, llm, **prime_options)
        self.prime.history = self.history  # one shared history (updated in place)
        self.numeric = Numeric(numeric, sampler=sampler, seed=seed) if numeric else None
        self.warm_start = warm_start
        self._warmed = False

    @Optimizer.llm.setter  # type: ignore[attr-defined]
    def llm(self, value: LLM) -> None:
        self._llm = value
        self.prime.llm = value

    def observe(self) -> Observation | None:
        obs = super().observe()
        if self.numeric is not None:
            self.numeric.observe()
        return obs

    def _step(self, report: StepReport) -> None:
        self.prime._llm = self.llm  # one backend (the lazily made default included)
        if self.numeric is not None and self.warm_start and not self._warmed:
            self._warmed = True
            self._warm_start(report)
            if report.error:
                return
        text = self.prime.propose(report)
        if text is None:
            return
        _, accepted = apply_answer(self.params, text, report, only=self.llm_names)
        self.prime.note_rejections(report)
        if self.numeric is None:
            return
        proposal = {p.name: accepted.get(p.name, p._value) for p in self.numeric.params}
        if any(name in accepted for name in proposal):
            self.numeric.enqueue(proposal)
        llm_proposed = {u.name: u.proposed for u in report.updates}
        self.numeric.ask(report)
        for update in report.updates:  # keep what the LLM proposed next to what was tried
            if update.name in llm_proposed and llm_proposed[update.name] is not None:
                update.proposed = llm_proposed[update.name]

    def _warm_start(self, report: StepReport) -> None:
        assert self.numeric is not None
        params = self.numeric.params
        user = prompts.WARM_START.render(
            parameters=describe(params),
            feedback=(self.history[-1].feedback if self.history else "") or "(none)",
            count=self.warm_start,
            names=names_text(params),
            reasoning_chars=200,
            example=example(params),
        )
        completion = self._ask(
            report,
            [{"role": "system", "content": prompts.PRIME_SYSTEM.render()},
             {"role": "user", "content": user}],
            json_schema=members_schema(params, 200, self.warm_start),
            max_tokens=answer_tokens(params, 200, values=self.warm_start),
        )
        if completion is None:
            return
        answer = parse_answer(completion.text)
        report.problems.extend(answer.problems)
        members = (answer.data or {}).get("members")
        if not isinstance(members, list):
            report.problems.append("warm start: the answer has no `members` list")
            return
        for i, member in enumerate(members):
            if not isinstance(member, dict):
                continue
            accepted, rejected = self.numeric.check(member)
            for update in rejected:
                update.reason = f"warm start member {i}: {update.reason}"
            report.rejected.extend(rejected)
            if accepted:
                self.numeric.enqueue({p.name: accepted.get(p.name, p._value) for p in params})

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["warmed"] = self._warmed
        state["rejections"] = list(self.prime.rejections)
        if self.numeric is not None:
            numeric = self.numeric.state_dict()
            state["numeric"] = {"trials": numeric["trials"], "pending": numeric["pending"]}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._warmed = state.get("warmed", False)
        self.prime.rejections = list(state.get("rejections", []))
        if self.numeric is not None and "numeric" in state:
            self.numeric.trials = [dict(t) for t in state["numeric"]["trials"]]
            self.numeric.pending = state["numeric"]["pending"]
            self.numeric._pending_number = None
            self.numeric._study = None
