"""Numeric: int, float, bool and choice parameters tuned by Optuna (TPE or CMA-ES), ask/tell."""

from __future__ import annotations

from typing import Any

from ..graph import Param
from ..llm import LLM
from .apply import check_suggestion, values_proposal
from .base import Optimizer
from .history import Observation, values_key
from .records import Proposal, StepReport

SAMPLERS = ("tpe", "cmaes", "random")


def handles(param: Param) -> bool:
    """Whether a classical optimizer can search this parameter (bounded number, bool, choices)."""
    if param.choices is not None:
        return all(isinstance(c, str | int | float | bool) or c is None for c in param.choices)
    if param.kind == "bool":
        return True
    return (
        param.kind in ("int", "float")
        and param.bounds is not None
        and None not in param.bounds
    )


class Numeric(Optimizer):
    """Classical black-box search over numeric parameters with scores from the feedback.

    Each step tells the sampler the score of the current values (the mean feedback score;
    higher is better unless `direction="minimize"`), then asks it for the next values.
    Needs `pip install backfeed[numeric]` (optuna, imported when first used). Parameters need
    bounds (int, float), or choices, or be bool. `llm` is accepted for a uniform signature
    and unused. The trials are the JSON state; the study is rebuilt from them on load. A
    trial that repeats evaluated values is proposed as it is (the sampler asked for it; the
    trainer reuses the stored scores).
    """

    dedupe = False

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        sampler: str = "tpe",
        seed: int | None = None,
        direction: str = "maximize",
        startup_trials: int = 5,
    ) -> None:
        super().__init__(params, llm)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        unsuited = [p.name for p in self.params if not handles(p)]
        if unsuited:
            raise ValueError(
                f"Numeric cannot search {unsuited}: give int/float parameters bounds=(lo, hi), "
                "or choices=[...]; text, code, list and dict parameters need an LLM optimizer "
                "(Prime, or Hybrid for a mix)"
            )
        self.sampler = sampler
        self.seed = seed
        self.direction = direction
        self.startup_trials = startup_trials
        self.trials: list[dict[str, Any]] = []  # {"values": {...}, "score": float}
        self.pending: dict[str, Any] | None = None  # values asked for and not yet scored
        self._pending_number: int | None = None
        self._study: Any = None

    # -- the optuna study, built lazily from the JSON trials ---------------------------------
    def distributions(self) -> dict[str, Any]:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, Any] = {}
        for p in self.params:
            if p.choices is not None:
                out[p.name] = CategoricalDistribution(list(p.choices))
            elif p.kind == "bool":
                out[p.name] = CategoricalDistribution([False, True])
            elif p.kind == "int":
                out[p.name] = IntDistribution(int(p.bounds[0]), int(p.bounds[1]))  # type: ignore[index]
            else:
                out[p.name] = FloatDistribution(float(p.bounds[0]), float(p.bounds[1]))  # type: ignore[index]
        return out

    @property
    def study(self) -> Any:
        if self._study is None:
            try:
                import optuna
            except ImportError as exc:
                raise ImportError(
                    "bf.optim.Numeric needs optuna: pip install 'backfeed[numeric]'"
                ) from exc
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            samplers = {
                "tpe": lambda: optuna.samplers.TPESampler(
                    seed=self.seed, n_startup_trials=self.startup_trials
                ),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(
                    seed=self.seed, n_startup_trials=self.startup_trials
                ),
                "random": lambda: optuna.samplers.RandomSampler(seed=self.seed),
            }
            self._study = optuna.create_study(
                direction=self.direction, sampler=samplers[self.sampler]()
            )
            for trial in self.trials:
                self._add_completed(trial["values"], trial["score"])
        return self._study

    def _add_completed(self, values: dict[str, Any], score: float) -> None:
        import optuna

        self.study.add_trial(
            optuna.trial.create_trial(
                params=values, distributions=self.distributions(), value=score
            )
        )

    # -- ask / tell ---------------------------------------------------------------------------
    def observe(self) -> Observation | None:
        obs = super().observe()
        if obs is not None and obs.score is not None:
            self.tell(obs.values, obs.score)
        return obs

    def tell(self, values: dict[str, Any], score: float) -> None:
        """Record the score of `values` (already known values are not counted twice)."""
        values = {p.name: values[p.name] for p in self.params if p.name in values}
        if len(values) < len(self.params):
            return
        key = values_key(values)
        if any(values_key(t["values"]) == key for t in self.trials):
            return
        study = self.study  # built from the earlier trials before this one is added
        if self.pending is not None and values_key(self.pending) == key:
            self.pending = None
            if self._pending_number is not None:
                study.tell(self._pending_number, score)
                self._pending_number = None
                self.trials.append({"values": values, "score": score})
                return
        self._add_completed(values, score)
        self.trials.append({"values": values, "score": score})

    def enqueue(self, values: dict[str, Any]) -> None:
        """Ask for these values before the sampler's own (e.g. an LLM's proposal)."""
        self.study.enqueue_trial(values, skip_if_exists=True)

    def record(self, values: dict[str, Any], score: float | None, feedback: str) -> Observation:
        """Also tell the sampler the score (the trainer records every child it evaluates)."""
        obs = super().record(values, score, feedback)
        if score is not None:
            self.tell(values, score)
        return obs

    def _propose(self, report: StepReport) -> list[Proposal]:
        if report.score is None:
            report.problem(
                "numeric: the feedback has no score; the sampler learns nothing from this step"
            )
        values = self.suggest()
        return [values_proposal(self.params, self.values(), values, by=self.name,
                                reasoning=f"{self.sampler} trial {self._pending_number}")]

    def suggest(self) -> dict[str, Any]:
        """The sampler's next values, by name, without applying them."""
        import optuna

        if self._pending_number is not None:  # asked but never scored: let the sampler know
            self.study.tell(self._pending_number, state=optuna.trial.TrialState.FAIL)
        trial = self.study.ask(self.distributions())
        self._pending_number = trial.number
        values = {p.name: trial.params[p.name] for p in self.params}
        self.pending = values
        return values

    def check(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        """Coerce proposed numeric values (e.g. from an LLM) without applying them."""
        return check_suggestion(self.params, values)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["trials"] = [dict(t) for t in self.trials]
        state["pending"] = self.pending
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trials = [dict(t) for t in state.get("trials", [])]
        self.pending = state.get("pending")
        self._pending_number = None
        self._study = None  # rebuilt from the trials when next used
