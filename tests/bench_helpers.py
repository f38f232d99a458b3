"""Shared pieces of the benchmark tests: a scripted model that repairs `sum_to` for any library."""

from __future__ import annotations

import json
import re

SUM_TO = "def sum_to(n):\n    return n * (n + 1) // 2\n"


def repair_responder(messages, options):
    """The fixed function, in the answer format of whichever library asks."""
    text = "\n".join(m["content"] for m in messages)
    if "You improve the parameters of a program" in text:  # backfeed's Prime
        return f"### sum_to\n```python\n{SUM_TO}```"
    if "IMPROVED_VARIABLE" in text:  # TextGrad's update
        return f"<IMPROVED_VARIABLE>{SUM_TO}</IMPROVED_VARIABLE>"
    if "#Variables" in text or "__code" in text:  # Trace's OptoPrime
        names = set(re.findall(r"__code\d+", text)) or {"__code0"}
        return json.dumps({"reasoning": "off by one", "answer": "",
                           "suggestion": {name: SUM_TO for name in names}})
    if "```" in text or "instructions" in text.lower():  # GEPA's reflection
        return f"```\n{SUM_TO}```"
    return "range(1, n) stops before n."  # TextGrad's gradient
