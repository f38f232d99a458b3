"""Search strategies: which candidate to improve next, and which proposals to keep.

One small protocol (`Strategy`): `select` a parent from the pool of validated candidates,
`accept` or reject a child from minibatch scores, optionally `merge` two lineages, and keep
JSON state. Greedy, BestOfN, Beam, UCB and Pareto (GEPA-style) implement it; `Pairwise` ranks
candidates from comparisons when there is no ground truth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from ..graph import Feedback
from ..llm import LLM
from ..store import values_hash
from ..store.lineage import ancestors
from ..store.pareto import EPS, nondominated, pareto_wins
from .acceptance import no_worse


@dataclass
class Candidate:
    """A set of parameter values, where it came from, and its validation scores."""

    id: int
    values: dict[str, Any]
    parents: list[int] = field(default_factory=list)
    origin: str = "proposal"  # 'seed' | 'proposal' | 'merge'
    step: int = -1
    val_scores: list[float] | None = None
    objectives: dict[str, float] | None = None  # costs measured on validation (lower is better)

    @property
    def score(self) -> float:
        """Mean validation score (-inf before validation)."""
        if not self.val_scores:
            return -math.inf
        return sum(self.val_scores) / len(self.val_scores)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "values": self.values, "parents": self.parents,
                "origin": self.origin, "step": self.step, "val_scores": self.val_scores,
                "objectives": self.objectives}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        return cls(d["id"], d["values"], list(d["parents"]), d["origin"], d["step"],
                   d["val_scores"], d.get("objectives"))


def best(pool: list[Candidate]) -> Candidate:
    """Highest mean validation score; ties go to the older candidate."""
    if not pool:
        raise ValueError("the candidate pool is empty")
    return max(pool, key=lambda c: (c.score, -c.id))


def _total(scores: list[float]) -> float:
    return sum(scores)


def mean(scores: list[float]) -> float:
    """The mean of minibatch scores: the scale every score is shown and stored on."""
    return sum(scores) / len(scores) if scores else 0.0


@dataclass(frozen=True)
class Propose:
    """A step's plan: ask the optimizer for children of `parent`."""

    parent: Candidate


@dataclass(frozen=True)
class Merge:
    """A step's plan: try `values`, merged from the lineages of `a` and `b`, instead."""

    a: Candidate
    b: Candidate
    values: dict[str, Any]


class Strategy:
    """Base strategy: improve the best candidate, keep a child that does not lose."""

    name = "strategy"
    proposals = 1  # children proposed from one parent per step (BestOfN: n)
    pairwise = False
    judge_llm: LLM | None = None  # the model a Pairwise strategy's judge asks

    def plan(self, pool: list[Candidate], rng: random.Random,
             tried: Collection[str]) -> Propose | Merge:
        """What this step does: a `Merge` when the strategy merges lineages now, else a
        `Propose` from the parent it selects."""
        merged = self.merge(pool, rng, tried)
        if merged is not None:
            return Merge(*merged)
        return Propose(self.select(pool, rng))

    def select(self, pool: list[Candidate], rng: random.Random) -> Candidate:
        return best(pool)

    def accept_merge(self, a_scores: list[float], b_scores: list[float],
                     merged_scores: list[float]) -> tuple[bool, str]:
        """Whether a merge is kept, from the minibatch scores of both parents and of it."""
        return self.accept(max(a_scores, b_scores, key=_total), merged_scores)

    def accept(self, parent_scores: list[float], child_scores: list[float]) -> tuple[bool, str]:
        """"no worse" (`acceptance.no_worse`): not worse on the minibatch, and not a tie at 0."""
        return no_worse(parent_scores, child_scores)

    def observe(self, candidate: Candidate, scores: list[float]) -> None:
        """Minibatch scores of a parent (used by bandits)."""

    def admitted(self, pool: list[Candidate], child: Candidate) -> None:
        """A validated child joined the pool."""

    def merge(self, pool: list[Candidate], rng: random.Random,
              tried: Collection[str]) -> tuple[Candidate, Candidate, dict[str, Any]] | None:
        """Two parents and merged values to try this step instead of a proposal, or None."""
        return None

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Greedy(Strategy):
    """Improve the best candidate; accept a proposal when it does not lose on the minibatch."""

    name = "greedy"


class BestOfN(Strategy):
    """Ask for `n` proposals from the best candidate and keep the best one that does not lose."""

    name = "best_of_n"

    def __init__(self, n: int = 4) -> None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"BestOfN(n) needs a positive int, got {n!r}")
        self.proposals = n

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.proposals}


class Beam(Strategy):
    """Keep the `width` best candidates; improve each in turn."""

    name = "beam"

    def __init__(self, width: int = 4) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"Beam(width) needs a positive int, got {width!r}")
        self.width = width
        self._turn = 0

    def select(self, pool: list[Candidate], rng: random.Random) -> Candidate:
        beam = sorted(pool, key=lambda c: (-c.score, c.id))[: self.width]
        chosen = beam[self._turn % len(beam)]
        self._turn += 1
        return chosen

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width}

    def state_dict(self) -> dict[str, Any]:
        return {"turn": self._turn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._turn = int(state.get("turn", 0))


class UCB(Strategy):
    """A bandit over candidates: pick the highest mean minibatch score plus an exploration bonus.

    Each candidate's validation mean counts as its first observation.
    """

    name = "ucb"

    def __init__(self, c: float = 1.0) -> None:
        if c < 0:
            raise ValueError(f"UCB(c) must be >= 0, got {c!r}")
        self.c = float(c)
        self._n: dict[str, int] = {}
        self._sum: dict[str, float] = {}

    def _stats(self, cand: Candidate) -> tuple[int, float]:
        key = str(cand.id)
        n = self._n.get(key, 0) + 1
        return n, (self._sum.get(key, 0.0) + max(cand.score, 0.0)) / n

    def select(self, pool: list[Candidate], rng: random.Random) -> Candidate:
        total = sum(self._stats(c)[0] for c in pool)

        def ucb(c: Candidate) -> tuple[float, int]:
            n, mean = self._stats(c)
            return mean + self.c * math.sqrt(2 * math.log(max(total, 1)) / n), -c.id

        return max(pool, key=ucb)

    def observe(self, candidate: Candidate, scores: list[float]) -> None:
        if scores:
            key = str(candidate.id)
            self._n[key] = self._n.get(key, 0) + 1
            self._sum[key] = self._sum.get(key, 0.0) + sum(scores) / len(scores)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "c": self.c}

    def state_dict(self) -> dict[str, Any]:
        return {"n": dict(self._n), "sum": dict(self._sum)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._n = {k: int(v) for k, v in state.get("n", {}).items()}
        self._sum = {k: float(v) for k, v in state.get("sum", {}).items()}


def pareto_front(pool: list[Candidate]) -> dict[int, int]:
    """{candidate id: examples it wins} on the per-example front (the rule in store.pareto)."""
    return {i: len(won) for i, won in pareto_wins({c.id: c.val_scores for c in pool}).items()}


def objective_front(pool: list[Candidate]) -> set[int]:
    """The candidates no other dominates on the mean validation score and every measured
    cost (`objectives=`; empty without them): a candidate better on every one is always in."""
    measured = [c for c in pool if c.objectives and c.val_scores]
    if not measured:
        return set()
    names = sorted(set.intersection(*(set(c.objectives or ()) for c in measured)))
    return nondominated({c.id: (c.score, *(-(c.objectives or {})[n] for n in names))
                         for c in measured})


class Pareto(Strategy):
    """GEPA-style search: sample parents from the per-example Pareto front over the validation
    set (weighted by examples won), accept a child only if it improves its parent on the
    minibatch, and (with `merge=True`) combine components of two lineages: after each accepted
    proposal, two front candidates are merged by taking every parameter that one of them changed
    since their oldest common ancestor (the better one's when both did); a merge is kept when it
    matches the better parent on a minibatch."""

    name = "pareto"

    def __init__(self, merge: bool = True, max_merges: int = 5) -> None:
        self.use_merge = bool(merge)
        self.max_merges = int(max_merges)
        self._merges_due = 0
        self._merges_done = 0

    def select(self, pool: list[Candidate], rng: random.Random) -> Candidate:
        wins = pareto_front(pool)
        for cid in objective_front(pool):  # with objectives=: the front over score and costs
            wins[cid] = max(wins.get(cid, 0), 1)
        if not wins:
            return best(pool)
        ids = sorted(wins)
        chosen = rng.choices(ids, weights=[wins[i] for i in ids])[0]
        return next(c for c in pool if c.id == chosen)

    def accept(self, parent_scores: list[float], child_scores: list[float]) -> tuple[bool, str]:
        p, c = _total(parent_scores), _total(child_scores)
        pm, cm = mean(parent_scores), mean(child_scores)
        if c > p + EPS:
            return True, f"improves its parent on the minibatch (mean {cm:.4g} > {pm:.4g})"
        return False, f"does not improve its parent on the minibatch (mean {cm:.4g} <= {pm:.4g})"

    def admitted(self, pool: list[Candidate], child: Candidate) -> None:
        if self.use_merge and child.origin != "merge":
            self._merges_due += 1

    def merge(self, pool: list[Candidate], rng: random.Random,
              tried: Collection[str]) -> tuple[Candidate, Candidate, dict[str, Any]] | None:
        if not self.use_merge or self._merges_due <= 0 or self._merges_done >= self.max_merges:
            return None
        self._merges_due -= 1
        by_id = {c.id: c for c in pool}
        front = sorted(pareto_front(pool))
        pairs = [(a, b) for k, a in enumerate(front) for b in front[k + 1 :]]
        rng.shuffle(pairs)
        for a_id, b_id in pairs:
            a, b = by_id[a_id], by_id[b_id]
            parents = {c.id: c.parents for c in pool}
            common = (ancestors([a.id], parents) | {a.id}) & (ancestors([b.id], parents) | {b.id})
            if not common:
                continue
            # Components each lineage changed since its oldest common ancestor are combined.
            base = by_id[min(common)]
            merged: dict[str, Any] = {}
            for name in a.values:
                va, vb, v0 = a.values[name], b.values.get(name), base.values.get(name)
                if va == vb or vb == v0:
                    merged[name] = va
                elif va == v0:
                    merged[name] = vb
                else:  # both lineages changed it: keep the better candidate's value
                    merged[name] = va if a.score >= b.score else vb
            if merged in (a.values, b.values) or values_hash(merged) in tried:
                continue
            self._merges_done += 1
            return a, b, merged
        return None

    def accept_merge(self, a_scores: list[float], b_scores: list[float],
                     merged_scores: list[float]) -> tuple[bool, str]:
        bar = max(_total(a_scores), _total(b_scores))
        m = _total(merged_scores)
        n = max(len(merged_scores), 1)
        if m + EPS >= bar:
            return True, (f"merge matches its better parent on the minibatch (mean {m / n:.4g} "
                          f">= {bar / n:.4g})")
        return False, f"merge loses to a parent on the minibatch (mean {m / n:.4g} < {bar / n:.4g})"

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "merge": self.use_merge, "max_merges": self.max_merges}

    def state_dict(self) -> dict[str, Any]:
        return {"merges_due": self._merges_due, "merges_done": self._merges_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._merges_due = int(state.get("merges_due", 0))
        self._merges_done = int(state.get("merges_done", 0))


# -- pairwise mode --------------------------------------------------------------------------

Judge = Callable[[Any, Any, Any], Any]  # (example, output_a, output_b) -> 'a'|'b'|'tie'|(w, why)

JUDGE_PROMPT = (
    "You compare two outputs of the same program for the same input and say which is better.\n"
    "{criteria}\n\nInput:\n{example}\n\nOutput A:\n{a}\n\nOutput B:\n{b}\n\n"
    'Answer with JSON: {{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}}'
)


@dataclass(frozen=True)
class Verdict:
    """One comparison: 'a', 'b' or 'tie', and why."""

    winner: str
    reason: str = ""

    @classmethod
    def of(cls, value: Any) -> Verdict:
        if isinstance(value, Verdict):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            winner, reason = value
        else:
            winner, reason = value, ""
        winner = str(winner).strip().lower()
        if winner not in ("a", "b", "tie"):
            raise ValueError(f"a judge must answer 'a', 'b' or 'tie' (or (winner, reason)), not {value!r}")
        return cls(winner, str(reason))


class LLMJudge:
    """A judge that asks an LLM which of two outputs is better (JUDGE_PROMPT)."""

    def __init__(self, llm: LLM, criteria: str = "Prefer the output that better fulfils the task.") -> None:
        self.llm = llm
        self.criteria = criteria

    def using(self, llm: LLM) -> LLMJudge:
        """The same judge asking `llm` (the trainer's recorded model); this one is unchanged."""
        return LLMJudge(llm, self.criteria)

    def __call__(self, example: Any, a: Any, b: Any) -> Verdict:
        import json

        prompt = JUDGE_PROMPT.format(criteria=self.criteria, example=example, a=a, b=b)
        answer = self.llm.complete([{"role": "user", "content": prompt}], temperature=0.0).text
        try:
            data = json.loads(answer[answer.index("{") : answer.rindex("}") + 1])
            return Verdict.of((data["winner"], data.get("reason", "")))
        except (ValueError, KeyError) as e:
            return Verdict("tie", f"the judge's answer could not be read ({e}): {answer[:200]}")


class Pairwise(Strategy):
    """No ground truth: a judge (an `LLMJudge` or a human callback) compares the parent's and the
    child's outputs on the minibatch; the child is kept when it wins more comparisons than it
    loses. Candidates are ranked by a Bradley-Terry fit of all comparisons (SPO / dueling
    bandits); the judge's reasons are the feedback the optimizer sees."""

    name = "pairwise"
    pairwise = True

    def __init__(self, judge: Judge | LLMJudge, iterations: int = 50) -> None:
        if not callable(judge):
            raise TypeError("Pairwise(judge) needs a callable (example, a, b) -> 'a' | 'b' | 'tie'")
        self.judge = judge
        self.iterations = iterations
        self.wins: dict[str, float] = {}  # "i>j" -> wins of i over j (ties count 1/2 each)

    @property
    def judge_llm(self) -> LLM | None:
        """The model the judge asks (an `LLMJudge`'s), which the run records; None for a
        callable of the user's own."""
        return self.judge.llm if isinstance(self.judge, LLMJudge) else None

    def judge_through(self, llm: LLM | None) -> Judge | LLMJudge:
        """The judge as the run calls it: an `LLMJudge` asking `llm` (the run's recorded
        model) instead of its own; a callable of the user's own as it is."""
        if llm is not None and isinstance(self.judge, LLMJudge):
            return self.judge.using(llm)
        return self.judge

    def record(self, a: int, b: int, verdict: Verdict) -> None:
        w = {"a": (1.0, 0.0), "b": (0.0, 1.0), "tie": (0.5, 0.5)}[verdict.winner]
        self.wins[f"{a}>{b}"] = self.wins.get(f"{a}>{b}", 0.0) + w[0]
        self.wins[f"{b}>{a}"] = self.wins.get(f"{b}>{a}", 0.0) + w[1]

    def ratings(self, ids: list[int]) -> dict[int, float]:
        """Bradley-Terry strengths (minorisation-maximisation), normalised to mean 1."""
        r = {i: 1.0 for i in ids}
        for _ in range(self.iterations):
            new = {}
            for i in ids:
                won = sum(self.wins.get(f"{i}>{j}", 0.0) for j in ids if j != i) + 0.1
                denom = sum(
                    (self.wins.get(f"{i}>{j}", 0.0) + self.wins.get(f"{j}>{i}", 0.0) + 0.2)
                    / (r[i] + r[j])
                    for j in ids if j != i
                )
                new[i] = won / denom if denom else r[i]
            mean = sum(new.values()) / len(new)
            r = {i: v / mean for i, v in new.items()}
        return r

    def rank(self, pool: list[Candidate]) -> list[Candidate]:
        r = self.ratings([c.id for c in pool])
        return sorted(pool, key=lambda c: (-r[c.id], c.id))

    def select(self, pool: list[Candidate], rng: random.Random) -> Candidate:
        return self.rank(pool)[0]

    def accept(self, parent_scores: list[float], child_scores: list[float]) -> tuple[bool, str]:
        p, c = _total(parent_scores), _total(child_scores)
        if c > p:
            return True, f"the judge preferred the child ({c:g} to {p:g} comparisons)"
        return False, f"the judge did not prefer the child ({c:g} to {p:g} comparisons)"

    def feedback(self, verdict: Verdict, side: str) -> Feedback:
        won = verdict.winner == side
        score = 0.5 if verdict.winner == "tie" else float(won)
        text = ("This output was preferred" if won else "The other output was preferred") + (
            f": {verdict.reason}" if verdict.reason else "")
        if verdict.winner == "tie":
            text = "The judge saw no difference" + (f": {verdict.reason}" if verdict.reason else "")
        return Feedback(score=score, text=text)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "judge": getattr(self.judge, "__name__", type(self.judge).__name__)}

    def state_dict(self) -> dict[str, Any]:
        return {"wins": dict(self.wins)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wins = {k: float(v) for k, v in state.get("wins", {}).items()}
