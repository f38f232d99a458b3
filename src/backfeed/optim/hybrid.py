"""Hybrid: the LLM rewrites text and code; a classical optimizer tunes the numbers, and the
LLM's own numbers join as extra candidates (LLAMBO's warm start). `auto` picks it by default."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from typing import Any

from ..graph import Param
from ..llm import LLM
from . import prompts
from .apply import read_members, values_proposal
from .base import Optimizer
from .history import Observation
from .local import Around
from .numeric import Numeric, handles
from .prime import Prime
from .records import Proposal, StepReport
from .schema import answer_tokens, describe, example, members_schema, names_text


class Hybrid(Optimizer):
    """Prime for text, code and unbounded values; Numeric (Optuna) for bounded numbers, bools
    and choices. Prime sees every parameter and shares this optimizer's history.

    Each step's candidates are each of Prime's proposals (`candidates=n` answers, or with
    compact prompts `n` per parameter and their changes together) with the sampler's next
    numbers, then each as the model wrote it, numbers included, where those differ. A step in
    which Prime asks the model nothing (the feedback names only the numbers) proposes the
    sampler's next `n` trials instead of one. The sampler is told the score of every candidate
    the trainer records.
    `warm_start=n` first asks the LLM for n settings of the numeric parameters and queues
    them in the sampler. `split=True` also offers each changed parameter of a candidate alone.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        sampler: str = "tpe",
        seed: int | None = None,
        warm_start: int = 0,
        split: bool = False,
        **prime_options: Any,
    ) -> None:
        super().__init__(params, llm)
        self.split = split
        numeric = [p for p in self.params if handles(p)]
        self.llm_names = {p.name for p in self.params if not handles(p)}
        self.prime = Prime(self.params, llm, history=self.history, **prime_options)
        self.prime.focus = self.llm_names
        self.numeric = Numeric(numeric, sampler=sampler, seed=seed) if numeric else None
        self.warm_start = warm_start
        self._warmed = False

    @property
    def candidates(self) -> int:
        """Prime's answers per step (`candidates=n`, a Prime option)."""
        return self.prime.candidates

    @property
    def llm(self) -> LLM:
        return self.prime.llm  # one backend, Prime's (the lazily made default included)

    @llm.setter
    def llm(self, value: LLM) -> None:
        self.prime.llm = value

    @property
    def given_llm(self) -> LLM | None:
        return self.prime.given_llm

    def observe(self) -> Observation | None:
        obs = super().observe()
        if obs is not None and obs.score is not None and self.numeric is not None:
            self.numeric.tell(obs.values, obs.score)
        return obs

    def record(self, values: dict[str, Any], score: float | None, feedback: str) -> Observation:
        obs = super().record(values, score, feedback)
        if score is not None and self.numeric is not None:
            self.numeric.tell(values, score)
        return obs

    def _propose(self, report: StepReport) -> list[Proposal]:
        if self.numeric is not None and self.warm_start and not self._warmed:
            self._warmed = True
            self._warm_start(report)
            if report.error:
                return []
        proposals = self.prime.proposals(report)
        if proposals or report.error or self.numeric is None:
            return self._with_numbers(proposals)
        # Prime asked for nothing: the step's candidates are the sampler's next trials
        trials = [self.numeric.suggest() for _ in range(max(1, self.candidates))]
        why = f"numbers: the sampler's next {len(trials)} trial(s); the model was not asked"
        start = self.values()
        return [values_proposal(self.params, start, t, by="Hybrid (sampler)", reasoning=why)
                for t in trials]

    def _settled(self, report: StepReport) -> None:
        self.prime.note_rejections(report)

    def _with_numbers(self, proposals: list[Proposal]) -> list[Proposal]:
        """Each of Prime's proposals with the sampler's next numbers, then each with the
        numbers the model wrote (where it wrote some that differ)."""
        if not proposals or self.numeric is None:
            return proposals
        sampled = self.numeric.suggest()
        why = "numbers: the sampler's next trial"
        with_sampled = [replace(p, values={**p.values, **sampled}, by=f"{p.by} + sampler",
                                reasoning=p.reasoning or why) for p in proposals]
        as_written = []
        for p in proposals:
            numbers = {n: p.outside[n] for n in sampled if n in p.outside}
            if numbers and any(numbers[n] != sampled[n] for n in numbers):  # its report is p's
                as_written.append(Proposal({**p.values, **numbers}, by=f"{p.by} (numbers as "
                                           "written)", answer=p.answer, reasoning=p.reasoning))
        return with_sampled + as_written

    def _warm_start(self, report: StepReport) -> None:
        assert self.numeric is not None
        params = self.numeric.params
        user = prompts.WARM_START.render(
            parameters=describe(params),
            feedback=(self.history[-1].feedback if len(self.history) else "") or "(none)",
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
        members = read_members(report, completion.text, params, blocks=False)
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
        state["prime"] = self.prime.state_dict()
        if self.numeric is not None:
            state["numeric"] = self.numeric.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._warmed = state.get("warmed", False)
        if "prime" in state:
            self.prime.load_state_dict(state["prime"])
        else:  # a state saved before the parts kept their own
            self.prime.rejections = list(state.get("rejections", []))
        if self.numeric is not None and "numeric" in state:
            self.numeric.load_state_dict(state["numeric"])


def auto(params: list[Param] | Any, llm: LLM | None = None, *, numeric: bool = True,
         **options: Any) -> Optimizer:
    """The default optimizer for `params`: `Around` (compass search, the LLM's numbers as
    extra candidates) when every one is an int or a float without choices, bounded or not;
    `Hybrid` when some are bounded ints or floats, others are not, and optuna is installed
    (`pip install 'backfeed[numeric]'`); else `Prime`.

    `numeric=False` keeps `Prime` alone. Options go to the chosen optimizer (Hybrid takes
    Prime's options plus `sampler`, `seed` and `warm_start`; Around Prime's plus `ask` and
    `steps`).
    """
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    params = list(params)
    if numeric and params and all(p.kind in ("int", "float") and p.choices is None
                                  for p in params):
        return Around(params, llm, **{k: v for k, v in options.items()
                                      if k not in ("sampler", "seed", "warm_start")})
    numbers = [p for p in params if handles(p) and p.kind in ("int", "float")]
    mixed = numbers and any(not handles(p) for p in params)
    if numeric and mixed and importlib.util.find_spec("optuna") is not None:
        return Hybrid(params, llm, **options)
    options = {k: v for k, v in options.items() if k not in ("sampler", "seed", "warm_start")}
    return Prime(params, llm, **options)
