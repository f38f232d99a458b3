"""FewShot: demonstrations bootstrapped from the program's own correct traces (in the spirit of
DSPy's BootstrapFewShot), with Prime rewriting every other parameter (a Hybrid-style split)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from ..example import Example
from ..graph import Node, Param, minimal_subgraph
from ..llm import LLM
from .base import Optimizer
from .history import values_key
from .prime import Prime
from .records import ParamUpdate, Proposal, StepReport

Demo = dict[str, str]


class FewShot(Optimizer):
    """Fill `list` parameters of demos with (input, output) pairs from calls that scored well.

    After each evaluation, every `bf.chat` call that read a demo parameter, on an output that
    scored at least `threshold`, adds a demo `{"input": <its last user message>, "output":
    <its reply>}` to that parameter's pool. A step proposes `candidates` different demo sets of
    `k` demos each, drawn from the pool and never one already evaluated; the parameters hold the
    first, and `report.candidates` lists them all so the trainer validates each and keeps the
    best. Every other parameter (an instruction, code, numbers) is optimized by `Prime` with
    `llm` in the same step; FewShot itself makes no model call.

    `demos` names the demo parameters (default: every `list` parameter). `labelled` seeds every
    demo pool with labelled examples before any output has scored: a `(input, output)` pair or
    list, a `{"input": ..., "output": ...}` dict, or a `bf.Example` with one declared input and
    one label; `to_demo(example) -> {"input": ..., "output": ...}` converts any other shape. The
    demo's input should be the text the program sends as its user turn.
    """

    def __init__(
        self,
        params: list[Param] | Any,
        llm: LLM | None = None,
        *,
        demos: list[Param] | None = None,
        k: int = 4,
        candidates: int = 4,
        threshold: float = 1.0,
        max_pool: int = 64,
        seed: int = 0,
        labelled: Iterable[Any] | None = None,
        to_demo: Callable[[Any], Demo] | None = None,
        **prime_options: Any,
    ) -> None:
        super().__init__(params, llm)
        if k < 1 or candidates < 1:
            raise ValueError(f"FewShot needs k >= 1 and candidates >= 1, got {k} and {candidates}")
        if demos is None:
            demos = [p for p in self.params if p.kind == "list"]
        known = {id(p) for p in self.params}
        strays = [p.name for p in demos if id(p) not in known]
        if strays:
            raise ValueError(f"demos {strays} are not among the optimizer's parameters")
        if not demos:
            raise ValueError(
                "FewShot found no demo parameter: add bf.param([], name='demos') to the program, "
                "pass it to bf.chat among the messages, and give it to the optimizer"
            )
        self.demos = list(demos)
        self.k, self.n_candidates, self.threshold = k, candidates, threshold
        self.max_pool, self.seed = max_pool, seed
        self.pool: dict[str, list[Demo]] = {p.name: [] for p in self.demos}
        seeded = {d["input"]: d for d in (_labelled_demo(ex, i, to_demo)
                                          for i, ex in enumerate(labelled or ()))}
        for pool in self.pool.values():  # one demo per input, the newest `max_pool`
            pool.extend(dict(d) for d in list(seeded.values())[-self.max_pool :])
        demo_ids = {id(p) for p in self.demos}
        rest = [p for p in self.params if id(p) not in demo_ids]
        self.prime = Prime(rest, llm, **prime_options) if rest else None

    @Optimizer.llm.setter  # type: ignore[attr-defined]
    def llm(self, value: LLM) -> None:
        self._llm = value
        if self.prime is not None:
            self.prime.llm = value

    # -- bootstrapping ---------------------------------------------------------------------
    def bootstrap(self) -> int:
        """Add demos from the current feedback to the pools; the number of new demos."""
        added = 0
        for p in self.demos:
            pool = self.pool[p.name]
            seen = {d["input"] for d in pool}
            good = [o for o in p.outputs if o.error is None and _passed(o, self.threshold)]
            for chat in _calls_reading(good, p):
                demo = _demo_of(chat)
                if demo is not None and demo["input"] not in seen:
                    seen.add(demo["input"])
                    pool.append(demo)
                    added += 1
            del pool[: max(0, len(pool) - self.max_pool)]  # keep the newest
        return added

    def _propose(self, report: StepReport) -> list[Proposal]:
        """Up to `candidates` demo sets, each with one of Prime's proposals for the other
        parameters (Prime's report is this step's too); no model call of its own."""
        added = self.bootstrap()
        base = self.values()
        other: list[Proposal] = []
        if self.prime is not None:
            sub = self.prime.propose()
            report.absorb(sub)
            report.updates.extend(sub.updates)
            report.stop, report.reasoning, report.error = sub.stop, sub.reasoning, sub.error
            base.update(sub.proposals[0].values if sub.proposals else {})
            other = sub.proposals
        sets = self._demo_sets(base)
        if not sets:
            sizes = ", ".join(f"{name}: {len(pool)}" for name, pool in self.pool.items())
            report.problem(
                f"few-shot: no new demo set to try (pool sizes {sizes}; {added} new this step; "
                f"demos come from outputs scoring >= {self.threshold:g})"
            )
            sets = [{p.name: p._value for p in self.demos}]
        report.updates += [ParamUpdate(p.name, p._value, proposed=sets[0][p.name],
                                       new=sets[0][p.name], applied=True,
                                       changed=sets[0][p.name] != p._value) for p in self.demos]
        n = max(len(sets), len(other))
        return [Proposal({**base, **(other[i % len(other)].values if other else {}),
                          **sets[i % len(sets)]}, by="FewShot" + (" + Prime" if other else ""),
                         updates=tuple(report.updates) if i == 0 else ())
                for i in range(n)]

    def _settle(self, report: StepReport, start: dict[str, Any],
                proposals: list[Proposal]) -> None:
        """Prime settled its own proposals; the demo sets are new by construction."""
        report.proposals = list({values_key(p.values): p for p in proposals
                                 if p.values != start}.values())

    def _demo_sets(self, base: dict[str, Any]) -> list[dict[str, list[Demo]]]:
        """Up to `candidates` demo sets (one list per demo parameter) not evaluated before."""
        rng = random.Random(f"{self.seed}:{self.step_count}")
        tried = {values_key(h.values) for h in self.history} | {values_key(base)}
        found: dict[str, dict[str, list[Demo]]] = {}
        for _ in range(self.n_candidates * 20):
            if len(found) == self.n_candidates:
                break
            choice = {}
            for p in self.demos:
                pool = self.pool[p.name]
                choice[p.name] = rng.sample(pool, min(self.k, len(pool))) if pool else p._value
            key = values_key({**base, **choice})
            if key not in tried and key not in found:
                found[key] = choice
        return list(found.values())

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["pool"] = {name: list(pool) for name, pool in self.pool.items()}
        if self.prime is not None:
            state["prime"] = self.prime.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for name, pool in state.get("pool", {}).items():
            if name in self.pool:
                self.pool[name] = [dict(d) for d in pool]
        if self.prime is not None and "prime" in state:
            self.prime.load_state_dict(state["prime"])


def _labelled_demo(example: Any, index: int, to_demo: Callable[[Any], Demo] | None) -> Demo:
    """A demo from one labelled example (see `FewShot`); a ValueError naming the example and
    `to_demo` for a shape it cannot read."""
    if to_demo is not None:
        demo = to_demo(example)
    elif isinstance(example, Example) and example.input_names and len(example.input_names) == 1 \
            and len(example.labels()) == 1:
        demo = {"input": example[example.input_names[0]],
                "output": next(iter(example.labels().values()))}
    elif isinstance(example, dict) and not isinstance(example, Example) \
            and {"input", "output"} <= example.keys():
        demo = {"input": example["input"], "output": example["output"]}
    elif isinstance(example, list | tuple) and len(example) == 2:
        demo = {"input": example[0], "output": example[1]}
    else:
        raise ValueError(
            f"labelled[{index}] is {type(example).__name__} {str(example)[:80]}: give (input, "
            "output) pairs, {'input', 'output'} dicts or bf.Examples with one declared input and "
            "one label, or pass to_demo=lambda example: {'input': ..., 'output': ...}")
    if not isinstance(demo, dict) or {"input", "output"} - demo.keys():
        raise ValueError(f"to_demo(labelled[{index}]) must return {{'input': ..., 'output': ...}},"
                         f" got {demo!r:.80}")
    return {"input": _text(demo["input"]), "output": _text(demo["output"])}


def _passed(output: Node, threshold: float) -> bool:
    scores = [fb.score for fb in output._feedback or () if fb.score is not None]
    return bool(scores) and min(scores) >= threshold


def _calls_reading(outputs: list[Node], demos: Param) -> list[Node]:
    """The `bf.chat` nodes behind `outputs` that took `demos` as an input, oldest first."""
    if not outputs:
        return []
    return [n for n in minimal_subgraph([demos], outputs).nodes
            if n.op is not None and n.op.name == "chat" and any(a is demos for a in n.args)]


def _demo_of(chat: Node) -> Demo | None:
    users = [a for name, a in zip(chat.arg_names, chat.args) if name.startswith("user")]
    if not users or chat.error is not None:
        return None
    return {"input": _text(users[-1]._value), "output": _text(chat._value)}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump_json"):  # a pydantic object parsed by bf.chat(schema=...)
        return value.model_dump_json()
    return json.dumps(value, ensure_ascii=False, default=str)
