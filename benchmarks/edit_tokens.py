"""Output tokens of one Prime step answered as SEARCH/REPLACE edits against a whole rewrite.

    PYTHONPATH=src python benchmarks/edit_tokens.py [--reps 2] [--cases code,text]
        [--model qwen2.5-coder-0.5b]

Two cases, each one `Prime.step()` on the embedded model (`bf.llm.Local`, its default cap of
1,024 answer tokens, temperature 0, default `compact` and `prefill`):

- code: the demo's `clean_name` (`return name`), with the demo's own feedback: one forward of
  `demo.ReceiptWorkflow` over `demo.ORDERS`, scored by the workflow's metric, then backward.
- text: a ~5,000-character numbered support policy whose rule 12 is wrong (no refunds after
  delivery); one op answers a refund question from it; feedback: score 0 and a sentence
  naming rule 12 and what it should say.

Modes: `edits=True` against `edits=False`; for code also `edits=True, prefill=False`, since
the default prefill on the embedded model starts the answer with the function's `def` line;
for text also `edits=True, compact=False` (the full trace prompt instead of the short one).
Per step: completion and prompt tokens (the step report), calls, wall seconds, whether an
answer hit the answer limit, whether the model wrote SEARCH/REPLACE blocks and whether they
applied, the proposal's fate (candidates, applied, rejected with kinds) and the value's
characters before and after. At temperature 0 the answers repeat (Prime sends no seed; greedy
needs none); the second repetition checks that. Writes benchmarks/results/edit_tokens.json,
with the start and the end of each case and mode's first answers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import backfeed as bf
from backfeed import demo
from backfeed.llm.wrap import Wrapper
from backfeed.optim import Prime
from backfeed.optim.edits import EditError, has_edits, read_edits
from backfeed.optim.parse import read_answer

RESULTS = Path(__file__).resolve().parent / "results" / "edit_tokens.json"
ANSWER_CHARS = 600

# -- the text case: a support policy with one wrong rule --------------------------------------

RULES = [
    "Greet the customer by name when the ticket gives one, and thank them for writing in.",
    "Answer in the language the customer wrote in; if unsure, answer in English.",
    "Keep the first reply under 150 words; offer more detail only if the customer asks.",
    "Never ask for a full card number, a password or a one-time code, in any channel.",
    "Confirm the order number before discussing an order; ask for it if it is missing.",
    "Orders ship within 2 business days; say so when a customer asks about dispatch.",
    "Standard delivery takes 3 to 5 business days; express delivery takes 1 to 2.",
    "If tracking shows no movement for 5 business days, open a carrier investigation.",
    "A parcel marked delivered but not received: wait 48 hours, then send a replacement.",
    "Damaged items: ask for one photo, then offer a replacement or a refund, the customer's "
    "choice.",
    "Wrong item received: send the right item at once; the customer keeps the wrong one.",
    "Refunds are never granted once an item has been delivered; offer store credit instead.",
    "Refunds go back to the original payment method within 5 business days of approval.",
    "Store credit is offered only as an option, never instead of a refund the customer asked "
    "for.",
    "Return shipping is free for damaged, faulty or wrong items; otherwise it costs 4.95 EUR.",
    "Sale items can be returned like any other item; do not tell customers otherwise.",
    "Gift cards cannot be refunded or exchanged for cash, except where the law requires it.",
    "Price match: refund the difference if our own price drops within 7 days of purchase.",
    "Do not price match other shops; say politely that we match only our own prices.",
    "Warranty: electronics carry a 2-year warranty; send faulty items to the repair centre.",
    "Subscriptions can be cancelled at any time; the current period runs to its end.",
    "Never cancel a subscription without the customer's explicit request in writing.",
    "Account deletion: confirm the request, then delete within 30 days and say so.",
    "Address changes are possible until the order ships; after that, contact the carrier.",
    "Split orders: tell the customer how many parcels to expect and give each tracking number.",
    "Out-of-stock items: offer a restock alert, a similar item or a refund of that item.",
    "Pre-orders are charged when they ship, not when they are placed.",
    "Discount codes cannot be applied after an order is placed; do not promise otherwise.",
    "If a discount code fails, check its dates and conditions before escalating.",
    "Complaints about staff go to the team lead the same day, with the ticket number.",
    "Threats or abuse: stay polite, state the rule once, and close the ticket if it goes on.",
    "Legal or press enquiries go to legal@example.com; do not answer them yourself.",
    "Data requests (GDPR): forward them to privacy@example.com within 24 hours.",
    "Never share another customer's details, even with a family member of theirs.",
    "Escalate to a supervisor any request above 200 EUR that the rules do not cover.",
    "Write the ticket's outcome in the internal note before closing it.",
    "Close a ticket only after the customer confirms, or after 7 days without an answer.",
    "End every reply with the ticket number and an offer to help further.",
    "If a rule seems to contradict another, follow the more specific rule and tell the team "
    "lead.",
    "When in doubt, be generous to the customer within the limits above.",
    "Loyalty points are earned on the amount paid after discounts, one point per whole euro.",
    "Loyalty points expire 12 months after they were earned; tell customers the date when "
    "asked.",
    "Points cannot be transferred between accounts or exchanged for cash.",
    "Business customers who need an invoice with a VAT number get it from the order page.",
    "A corrected invoice can be issued within 30 days of the order; after that, escalate.",
    "Bulk orders of more than 20 units go to the sales team at sales@example.com.",
    "Repairs outside warranty are quoted by the repair centre before any work is done.",
    "Lost passwords: send the reset link only to the email address on the account.",
    "Two-factor problems: verify the account owner with two order details before any change.",
    "If the website or app is down, link the status page and do not promise a time of repair.",
    "Do not speculate about future products, prices or sales; say we have nothing to share "
    "yet.",
    "Feedback about products is logged in the product board with the product code.",
    "Delivery to parcel lockers is possible for parcels under 20 kg and 60 cm on each side.",
    "International orders may owe import duties; the customer pays them unless the law says "
    "otherwise.",
    "Replacement parts for products still sold are sent free within the warranty period.",
    "Customers who report a safety problem with a product get a callback within one hour.",
    "Never promise a delivery date that the carrier's tracking does not show.",
    "Log every goodwill gesture (voucher, free shipping) in the internal note with its value.",
]
WRONG = 12  # "Refunds are never granted once an item has been delivered; ..."
POLICY = "Support policy of Example Shop. Follow these rules in every reply.\n" + "\n".join(
    f"{i}. {rule}" for i, rule in enumerate(RULES, 1))
POLICY_FEEDBACK = (f"Rule {WRONG} is wrong: customers may return unused items within 30 days of "
                   f"delivery for a full refund; change rule {WRONG} to say so.")


@bf.op
def support_reply(policy: str, question: str) -> str:
    """Answer a customer's question with the first rule of the policy on its topic (a rule
    that starts with one of the question's words)."""
    words = [w.strip("?.,!").lower() for w in question.split() if len(w) > 3]
    for line in policy.splitlines():
        rule = line.split(". ", 1)[-1].lower()
        if any(rule.startswith(w) for w in words):
            return f"Per our policy: {line.split('. ', 1)[-1]}"
    return "Please contact us again with your order number."


def policy_fixed(value: str) -> bool:
    """Whether rule 12 now grants a refund within 30 days."""
    rule = next((line for line in value.splitlines() if line.startswith(f"{WRONG}. ")), "")
    return "30 days" in rule and "never" not in rule.lower()


def policy_lines_kept(value: str) -> int:
    """How many of the policy's other lines are still in the value, word for word."""
    have = set(value.splitlines())
    return sum(line in have for line in POLICY.splitlines() if not line.startswith(f"{WRONG}. "))


# -- the two cases: a parameter with real feedback and the optimizer to step ------------------


def code_case(llm: Any, options: dict[str, Any]) -> tuple[bf.Param, Prime]:
    """The demo's `clean_name` with the demo's feedback: one forward over its orders."""
    workflow = demo.ReceiptWorkflow()  # resets clean_name's code to the demo's buggy seed
    opt = Prime([workflow.clean_name], llm=llm, temperature=0.0, **options)
    opt.zero_feedback()  # clean_name's code is shared by every workflow: forget earlier runs
    for order in demo.ORDERS:
        out = workflow(order)
        out.backward(workflow.metric(order, out.value))
    return workflow.clean_name, opt


def text_case(llm: Any, options: dict[str, Any]) -> tuple[bf.Param, Prime]:
    policy = bf.param(POLICY, name="policy", description="the support policy agents follow")
    opt = Prime([policy], llm=llm, temperature=0.0, **options)
    out = support_reply(policy, bf.node("Can I get a refund for an item I received?"))
    out.backward(bf.Feedback(score=0.0, text=POLICY_FEEDBACK))
    return policy, opt


def code_fixed(value: str) -> bool:
    """Whether the demo's names come out stripped and lower-cased with this code."""
    names = [n for names, _, _ in demo.ORDERS for n in names]
    scope: dict[str, Any] = {}
    try:
        exec(value, scope)  # the benchmark's own model's code, on the demo's four names
        return all(scope["clean_name"](n) == n.strip().lower() for n in names)
    except Exception:
        return False


def outcome(case: str, value: str) -> str:
    """The changed part of a value, in one line: the function's body, or the policy's rule 12
    with the number of its other lines kept word for word and how it ends."""
    if case == "code":
        return " / ".join(line.strip() for line in value.splitlines()[1:] if line.strip())
    rule = next((line.split(". ", 1)[1] for line in value.splitlines()
                 if line.startswith(f"{WRONG}. ")), None)
    others = len(POLICY.splitlines()) - 1
    return (f"rule {WRONG}: {rule[:90]!r}" if rule is not None else f"no rule {WRONG}") + \
        f"; other lines kept {policy_lines_kept(value)}/{others}; ends {value[-40:]!r}"


CASES = {"code": (code_case, code_fixed), "text": (text_case, policy_fixed)}
MODES = {  # case -> mode label -> Prime options
    "code": {"edits": {"edits": True}, "whole": {"edits": False},
             "edits, prefill off": {"edits": True, "prefill": False}},
    "text": {"edits": {"edits": True}, "whole": {"edits": False},
             "edits, compact off": {"edits": True, "compact": False}},
}


# -- measuring ------------------------------------------------------------------------------


class Calls(Wrapper):
    """Records each call's asked answer limit and tokens (to see answers cut at the limit)."""

    def __init__(self, llm: Any) -> None:
        super().__init__(llm)
        self.log: list[dict[str, int]] = []

    def call(self, messages: list[dict[str, str]], options: dict[str, Any]) -> Any:
        completion = self.llm.complete(messages, **options)
        self.log.append({"max_tokens": options.get("max_tokens") or 0,
                         "completion_tokens": completion.usage.completion_tokens})
        return completion


@dataclass
class Trial:
    case: str
    mode: str
    rep: int
    compact: bool
    prefill: str
    wall_s: float
    llm_calls: int
    prompt_tokens: int
    completion_tokens: int
    max_tokens: list[int]
    calls_at_limit: int
    wrote_search: bool  # any answer has a `<<<<<<< SEARCH` line
    edits_read: list[int]  # per answer, edits read from its block (0: whole, -1: malformed)
    edits_applied: bool  # the value changed and an answer had well-formed edits
    candidates: int
    applied: bool
    rejected: list[str]  # each reason, which starts with its kind
    problems: list[str]
    chars_before: int
    chars_after: int
    fixed: bool
    outcome: str  # what the value became: code's body, or the policy's rule 12 and lines kept
    answers_sha: list[str]
    answers: list[str] = field(default_factory=list)  # rep 0 only: each answer's start
    answer_ends: list[str] = field(default_factory=list)  # ... and its last 200 characters


def edits_in(answer: str, param: bf.Param) -> int:
    """Edits read from the answer's block for `param` (0: a whole value, -1: malformed)."""
    block = read_answer(answer, [param]).blocks.get(param.name, "")
    try:
        edits = read_edits(block)
    except EditError:
        return -1
    return 0 if edits is None else len(edits)


def trial(llm: Calls, case: str, mode: str, rep: int) -> Trial:
    build, fixed = CASES[case]
    param, opt = build(llm, MODES[case][mode])
    before = param.value
    llm.log.clear()
    start = time.perf_counter()
    report = opt.step()
    wall = time.perf_counter() - start
    update = next((u for u in report.updates if u.name == param.name), None)
    applied = bool(update and update.applied and update.changed)
    edits_read = [edits_in(a, param) for a in report.answers]
    found = Trial(
        case=case, mode=mode, rep=rep, compact=opt.use_compact(),
        prefill=opt.prefix([param]).replace("\n", "\\n"), wall_s=round(wall, 2),
        llm_calls=report.llm_calls, prompt_tokens=report.prompt_tokens,
        completion_tokens=report.completion_tokens,
        max_tokens=[c["max_tokens"] for c in llm.log],
        calls_at_limit=sum(c["completion_tokens"] >= c["max_tokens"] for c in llm.log),
        wrote_search=any(has_edits(a) for a in report.answers), edits_read=edits_read,
        edits_applied=applied and any(n > 0 for n in edits_read), candidates=len(report.candidates),
        applied=applied, rejected=[u.reason or u.kind or "" for u in report.rejected],
        problems=list(report.problems) + ([report.error] if report.error else []),
        chars_before=len(before), chars_after=len(param.value), fixed=fixed(param.value),
        outcome=outcome(case, param.value),
        answers_sha=[hashlib.sha256(a.encode()).hexdigest()[:12] for a in report.answers],
        answers=[a[:ANSWER_CHARS] for a in report.answers] if rep == 0 else [],
        answer_ends=[a[-200:] for a in report.answers] if rep == 0 else [],
    )
    param.value = before  # the demo's code is shared: leave it as found
    return found


def prefill_label(prefill: str) -> str:
    """How the answer was made to start: at a SEARCH line, a `def` line, its heading, or not."""
    for mark, label in (("SEARCH", "SEARCH line"), ("def ", "def line")):
        if mark in prefill:
            return label
    return "heading" if prefill else "off"


def rows(trials: list[Trial]) -> list[dict[str, Any]]:
    """One row per case and mode: completion tokens and seconds per repetition, medians of the
    other numbers, counts of the outcomes."""
    out = []
    for key in dict.fromkeys((t.case, t.mode) for t in trials):
        group = [t for t in trials if (t.case, t.mode) == key]
        n = len(group)
        first = group[0]
        out.append({
            "case": key[0], "mode": key[1], "compact": first.compact,
            "prefill": prefill_label(first.prefill),
            "reps": n, "same_answers": len({tuple(t.answers_sha) for t in group}) == 1,
            "calls": statistics.median_low(t.llm_calls for t in group),
            "prompt_tokens": statistics.median_low(t.prompt_tokens for t in group),
            "completion_tokens": [t.completion_tokens for t in group],
            "at_limit": f"{sum(t.calls_at_limit for t in group)}/{sum(t.llm_calls for t in group)}",
            "wall_s": [t.wall_s for t in group],
            "wrote_search": f"{sum(t.wrote_search for t in group)}/{n}",
            "edits_applied": f"{sum(t.edits_applied for t in group)}/{n}",
            "applied": f"{sum(t.applied for t in group)}/{n}",
            "rejected": sorted({r.split(':')[0] for t in group for r in t.rejected}),
            "chars": f"{first.chars_before:,} -> "
                     + "/".join(sorted({f"{t.chars_after:,}" for t in group})),
            "fixed": f"{sum(t.fixed for t in group)}/{n}",
        })
    return out


HEAD = ("case", "mode", "compact", "prefill", "reps", "same_answers", "calls", "prompt_tokens",
        "completion_tokens", "at_limit", "wall_s", "wrote_search", "edits_applied", "applied",
        "rejected", "chars", "fixed")


def table(found: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    for row in found:
        cells = [", ".join(map(str, v)) if isinstance(v, list) else str(v)
                 for v in (row[k] for k in HEAD)]
        lines.append("| " + " | ".join(c or "-" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--reps", type=int, default=2, help="steps per case and mode")
    parser.add_argument("--cases", default="code,text")
    args = parser.parse_args()
    llm = Calls(bf.llm.Local(args.model, cache=False))
    llm.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)  # load the model
    load = round(os.getloadavg()[0], 2)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=RESULTS.parents[1]).stdout.strip()
    threads = llm.llm.threads
    print(f"commit {commit}, model {args.model}, {threads} llama.cpp threads, {os.cpu_count()} cores, "
          f"policy {len(POLICY):,} characters, load {load}", flush=True)
    started = time.perf_counter()
    trials = []
    for case in args.cases.split(","):
        for mode in MODES[case]:
            for rep in range(args.reps):
                t = trial(llm, case, mode, rep)
                trials.append(t)
                print(f"{case} / {mode} #{rep}: {t.completion_tokens} completion tokens "
                      f"({t.llm_calls} calls, {t.calls_at_limit} at the limit), {t.wall_s} s, "
                      f"SEARCH={t.wrote_search} edits={t.edits_read} applied={t.applied} "
                      f"chars {t.chars_before} -> {t.chars_after} fixed={t.fixed} "
                      f"rejected={[r[:60] for r in t.rejected]}\n    -> {t.outcome}", flush=True)
    found = rows(trials)
    print("\n" + table(found))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
        "model": args.model,
        "threads": threads, "cores": os.cpu_count(), "machine": platform.platform(),
        "load": [load, round(os.getloadavg()[0], 2)],
        "total_s": round(time.perf_counter() - started, 1), "policy_chars": len(POLICY),
        "rows": found, "trials": [asdict(t) for t in trials],
    }, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
