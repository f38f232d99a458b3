"""Prompt tasks whose instruction must encode a convention that only the feedback reveals.

Families (`convention/<name>`):
- labels: an in-house label vocabulary for support tickets (REFUND, LOCKOUT, LATE, BROKEN);
- dates: the date a sentence mentions, written YYYY-MM-DD;
- refund: a domain rule (a refund is due within 14 days, unopened), answered yes or no;
- order_json: an order as JSON of one shape ({"item": the goods as written, "qty": integer}).

The program is the one model call of `bbh.PromptProgram` (the instruction as the system
prompt); each instance has 8 training, 6 validation and 12 test examples, and records a
hand-written reference instruction (`info["reference_instruction"]`) so the ceiling is known.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable
from typing import Any

import backfeed as bf

from . import Example, Task, plain, register
from .bbh import PromptProgram

SIZES = {"quick": (8, 6, 12), "full": (16, 12, 24)}

# -- labels -------------------------------------------------------------------------------------

TICKETS = {
    "REFUND": ["I was charged twice for order {n}, please give the money back.",
               "Order {n} was cancelled but I still paid for it. I want a refund.",
               "Please return my payment for order {n}, I never received an invoice credit.",
               "You billed my card {m} times this month for one order."],
    "LOCKOUT": ["I cannot log in to my account since {day}.",
                "The password reset link you sent me does not work.",
                "My account says it is locked after {m} wrong passwords.",
                "Two-factor codes never arrive, so I cannot sign in."],
    "LATE": ["My parcel for order {n} has not arrived after {m} weeks.",
             "Tracking for order {n} has not moved since {day}.",
             "The delivery promised for {day} never came.",
             "Where is my package? Order {n} is {m} days overdue."],
    "BROKEN": ["The lamp from order {n} arrived with a cracked base.",
               "The kettle I received leaks from the bottom.",
               "Order {n}: the screen of the tablet is shattered.",
               "The chair legs snapped on the first day of use."],
}
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "last week", "yesterday"]


def label_example(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(sorted(TICKETS))
    text = rng.choice(TICKETS[label]).format(n=rng.randint(1000, 9999), m=rng.randint(2, 4),
                                             day=rng.choice(DAYS))
    return f"Ticket: {text}", label


def read_label(text: str) -> str | None:
    words = re.findall(r"[A-Z]{4,}", text)
    return words[0] if words else (text.strip().split() or [None])[0]


# -- dates ------------------------------------------------------------------------------------

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
SENTENCES = ["The meeting moved to {d}.", "Your subscription renews on {d}.",
             "We shipped it on {d}, as agreed.", "The invoice is due {d}.",
             "Her flight leaves on {d} in the morning."]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def date_example(rng: random.Random) -> tuple[str, str]:
    day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(365 * 10))
    month = MONTHS[day.month - 1]
    written = rng.choice([f"{month} {_ordinal(day.day)}, {day.year}",
                          f"{day.day} {month} {day.year}",
                          f"the {_ordinal(day.day)} of {month} {day.year}"])
    return rng.choice(SENTENCES).format(d=written), f"{day:%Y-%m-%d}"


def read_date(text: str) -> str | None:
    found = re.search(r"\d{4}-\d{2}-\d{2}", text)
    return found.group() if found else None


# -- refund rule ------------------------------------------------------------------------------

REFUND_DAYS = 14
ITEMS = ["headphones", "a blender", "a jacket", "a board game", "running shoes", "a backpack"]


def refund_example(rng: random.Random) -> tuple[str, str]:
    days = rng.randint(1, REFUND_DAYS) if rng.random() < 0.7 else rng.randint(REFUND_DAYS + 1, 45)
    sealed = rng.random() < 0.75  # about half the answers are yes
    question = (f"A customer bought {rng.choice(ITEMS)} {days} days ago; it is "
                f"{'still sealed' if sealed else 'opened and used'}. Is a refund due?")
    return question, "yes" if days <= REFUND_DAYS and sealed else "no"


def read_yes_no(text: str) -> str | None:
    found = re.findall(r"\b(yes|no)\b", text.lower())
    return found[0] if found else None


# -- order JSON -------------------------------------------------------------------------------

NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
           10: "ten", 12: "twelve"}
GOODS = ["apples", "candles", "notebooks", "mugs", "batteries", "towels", "glasses"]
ASKS = ["Please send me {q} {g}.", "I'd like to order {q} {g}, thanks.",
        "Could you ship {q} {g} to my office?", "Add {q} {g} to my order."]


def order_example(rng: random.Random) -> tuple[str, str]:
    qty = rng.choice(sorted(NUMBERS))
    many = rng.choice(GOODS)
    words = NUMBERS[qty] if rng.random() < 0.6 else str(qty)
    return (rng.choice(ASKS).format(q=words, g=many),
            json.dumps({"item": many, "qty": qty}, sort_keys=True))


def read_order(text: str) -> str | None:
    found = re.search(r"\{.*?\}", text, re.S)
    if not found:
        return None
    try:
        data = json.loads(found.group())
    except ValueError:
        return None
    return json.dumps(data, sort_keys=True) if isinstance(data, dict) else None


FAMILIES: dict[str, dict[str, Any]] = {
    "labels": {
        "make": label_example, "read": read_label, "start": "Classify the support ticket.",
        "reference": ("Answer with one label only. LOCKOUT: log in, password, locked, sign in. "
                      "LATE: parcel, package, delivery, tracking. BROKEN: cracked, leaks, "
                      "shattered, snapped. REFUND: charged, paid, billed, money back."),
        "about": "label each support ticket with the team's own label",
    },
    "dates": {
        "make": date_example, "read": read_date, "start": "What date does the text mention?",
        "reference": "Answer with the date in the text, written YYYY-MM-DD, and nothing else.",
        "about": "write the date a sentence mentions in the expected format",
    },
    "refund": {
        "make": refund_example, "read": read_yes_no, "start": "Answer the question.",
        "reference": (f"A refund is due only if the item was bought at most {REFUND_DAYS} days "
                      "ago and is still sealed. Answer yes or no only."),
        "about": "decide whether a refund is due by the shop's rule",
    },
    "order_json": {
        "make": order_example, "read": read_order, "start": "Extract the order as JSON.",
        "reference": ('Reply with JSON only, for example {"item": "apples", "qty": 3} for '
                      '"three apples": the item as written, without the number, and qty the '
                      'number of items as an integer.'),
        "about": "write each order as JSON of the expected shape",
    },
}


def make_metric(family: str) -> Callable[[Example, Any], bf.Feedback]:
    """Exact match of the answer read from the output; the feedback shows expected and got."""
    read = FAMILIES[family]["read"]

    def metric(example: Example, output: Any) -> bf.Feedback:
        text = str(plain(output) or "")
        got = read(text)
        if got == example[1]:
            return bf.Feedback(score=1.0, text=f"correct: {example[1]}")
        return bf.Feedback(score=0.0, text=f"wrong: expected {example[1]!r}, the output "
                                           f"{text.strip()[:120]!r} gives {got!r}")

    return metric


def generate(family: str, seed: int, n: int) -> list[Example]:
    """`n` distinct examples of `family`, the same for the same seed."""
    rng = random.Random(f"convention/{family}:{seed}")
    seen: dict[str, str] = {}
    for _ in range(n * 50):
        question, answer = FAMILIES[family]["make"](rng)
        seen.setdefault(question, answer)
        if len(seen) == n:
            break
    return list(seen.items())


def _task(family: str) -> Callable[[int, str], Task]:
    spec = FAMILIES[family]

    def factory(seed: int, size: str) -> Task:
        n_train, n_val, n_test = SIZES[size]
        examples = generate(family, seed, n_train + n_val + n_test)
        return Task(
            name=f"convention/{family}", family="convention", seed=seed, size=size,
            description=f"Write the instruction that makes the model {spec['about']}.",
            build=lambda llm: PromptProgram(llm, spec["start"], max_tokens=64),
            metric=make_metric(family),
            trainset=examples[:n_train], valset=examples[n_train:n_train + n_val],
            testset=examples[n_train + n_val:], uses_llm=True,
            info={"reference_instruction": spec["reference"]},
        )

    return factory


for _name in FAMILIES:
    register(f"convention/{_name}")(_task(_name))
