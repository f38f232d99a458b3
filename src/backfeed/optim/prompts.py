"""Every prompt the optimizers send, as named templates with explicit variables."""

from __future__ import annotations

import string
from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    """A named prompt template; `render` requires exactly its variables (`{name}` fields)."""

    name: str
    text: str

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(
            field for _, field, _, _ in string.Formatter().parse(self.text) if field
        )

    def render(self, **values: object) -> str:
        missing = self.variables - values.keys()
        extra = values.keys() - self.variables
        if missing or extra:
            raise ValueError(
                f"template {self.name!r} needs variables {sorted(self.variables)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        return self.text.format(**values)


ANSWER_FORMAT = Template(
    "answer_format",
    """Answer with one JSON object and nothing else:
{{"reasoning": "<why, at most {reasoning_chars} characters>", "suggestion": {example}, "stop": false}}
The keys of "suggestion" are exactly the parameter names: {names}. Repeat a value to keep it.
Set "stop" to true only when the feedback shows nothing is left to improve.""",
)

BLOCK_FORMAT = Template(
    "block_format",
    """Answer with one section for each parameter you change (leave out the others) and \
nothing after them:
{skeleton}
{plain}""",
)

# The last line of a block answer: code may not hold calls or tests; a prose text may hold a
# JSON example (an output shape is best told by one), only not be quoted as a whole
PLAIN_CODE = "In the blocks, plain text: no JSON quoting, no example calls, no tests."
PLAIN_PROSE = "In the blocks, the text itself as the program will use it, not quoted as a whole."

EDIT_SECTION = Template(
    "edit_section",
    """- a line `### {name}`, then edits to {what} in one ```{lang} block ({why}): for each \
change a line `<<<<<<< SEARCH`, the exact lines of the current value to change (copied as \
shown, enough to be unique), a line `=======`, the lines to put instead, and a line \
`>>>>>>> REPLACE`;""",
)

# Why a parameter is asked for edits (said in its EDIT_SECTION line)
EDIT_WHY_PARTIAL = "its value is shown in part"
EDIT_WHY_LONG = "its value is too long to write anew in one answer"
EDIT_WHY_ASKED = "only what you edit changes"

VARIANTS_FORMAT = Template(
    "variants_format",
    """Answer with {count} different candidates. Start each with a line `## Candidate N` \
(N = 1, 2, ...), then one section for each parameter it changes (leave out the others):
{skeleton}
{plain}""",
)

MEMBERS_FORMAT = Template(
    "members_format",
    """Answer with one JSON object and nothing else:
{{"reasoning": "<why, at most {reasoning_chars} characters>", "members": [{example}, ...], \
"stop": false}}""",
)

PRIME_SYSTEM = Template(
    "prime_system",
    """You improve the parameters of a program. You are shown the trace of one run (the \
parameters, each operation with its inputs and its value), the feedback on its output, and \
earlier attempts with their scores (higher is better). Propose new parameter values that \
make the feedback better. Only parameters can change; other names in the trace are results. \
Write each new value itself (the text, the number, the whole function), not an assignment; \
where the answer format asks for edits, write only the edits.""",
)

PRIME_USER = Template(
    "prime_user",
    """{trace}
#Failing examples (worst first)
{examples}
#Earlier attempts (oldest first; higher score is better)
{memory}
#Rejected from your last answer
{rejected}
#Task
Propose new values for the parameters {names} to improve the feedback.
{answer_format}""",
)

COMPACT_SYSTEM = Template(
    "compact_system",
    """You fix a Python function so that it meets its spec and passes its tests.""",
)

COMPACT_USER = Template(
    "compact_user",
    """#Spec
{spec}
#Current function
```python
{code}
```
#Failing tests
{failing}
{extra}#Task
{task}
{answer_format}""",
)

# The compact prompts' task line: a whole new value, or edits where the format asks for them
COMPACT_TASK_CODE = "Write the corrected function: change what makes the tests fail."
COMPACT_TASK_CODE_EDITS = ("Write edits that correct the function: change only the lines that "
                           "make the tests fail.")
COMPACT_TASK_TEXT = "Write the new value of `{name}`, changed to fix the feedback."
# the retry of a prose text whose answers repeated it: one rule, added to the value as a line
COMPACT_TASK_ONE_RULE = ("Your answer repeated the current value of `{name}`. Write only one "
                         "new line to add to it: a short, general rule for what the expected "
                         "outputs have in common that the outputs above miss.")
# a prose text (no fields): lessons as rules, kept across steps (issue 19)
COMPACT_TASK_RULES = ("The outputs above do not match the expected ones. Write a new "
                      "`{name}` for the model that makes them match: tell it exactly what form "
                      "and content the expected outputs have (a structured output: its exact "
                      "shape, with <placeholders> for the values). Keep every rule the current "
                      "value has that the feedback does not contradict.")
COMPACT_TASK_TEXT_EDITS = ("Write edits to `{name}` that fix the feedback: change only the lines "
                           "that need it.")

COMPACT_FRESH_USER = Template(
    "compact_fresh_user",
    """#Spec
{spec}
#Signature
{signature}
#Failing tests
{failing}
{extra}#Task
The current function fails these tests, and your last answer did not change it. Write the \
function anew from the spec so that the tests pass.
{answer_format}""",
)

COMPACT_TEXT_SYSTEM = Template(
    "compact_text_system",
    """You improve one text parameter of a program so that its outputs get better feedback.""",
)

COMPACT_TEXT_USER = Template(
    "compact_text_user",
    """#Parameter `{name}`
{description}
{fields}#Current value
```text
{value}
```
#Feedback on outputs made with it
{feedback}
{extra}#Task
{task}
{answer_format}""",
)

COMPACT_TEXT_FRESH_USER = Template(
    "compact_text_fresh_user",
    """#Parameter `{name}`
{description}
{fields}#Feedback on outputs made with its current value
{feedback}
{extra}#Task
Your last answer repeated the current value of `{name}`, which gets this feedback. Write a new \
value of `{name}` from its description so that the outputs get better feedback.
{answer_format}""",
)

RETRY_TURN = Template(
    "retry_turn",
    """{what} It still fails: {failure}
Write a changed version that fixes this, in the same format.""",
)

OPRO_SYSTEM = Template(
    "opro_system",
    """You are an optimizer. You see earlier values of some parameters with the score each \
got, sorted from worst to best (higher is better). Propose new values that score higher \
than all of them; do not repeat a value that was already tried.""",
)

OPRO_USER = Template(
    "opro_user",
    """#Parameters
{parameters}
#Tried values and their scores (worst first, best last)
{history}
#Latest feedback
{feedback}
#Task
Propose new values for {names} that score higher than the best above.
{answer_format}""",
)

EVOLUTION_SYSTEM = Template(
    "evolution_system",
    """You are an evolution strategy. You see a population of candidate parameter values \
sorted by fitness (worst first, best last; higher is better). Propose new candidates: \
recombine and mutate the fittest ones, moving away from what scored badly.""",
)

EVOLUTION_USER = Template(
    "evolution_user",
    """#Parameters
{parameters}
#Population (worst first, best last)
{population}
#Task
Propose {offspring} new, different candidates for {names}.
{answer_format}""",
)

TEXTGRAD_SYSTEM = Template(
    "textgrad_system",
    """You give feedback on the parts of a program. For each named node of the trace you \
write a short criticism: how its value should change to make the final feedback better \
(a "textual gradient"). Be specific and brief.""",
)

TEXTGRAD_GRADIENTS = Template(
    "textgrad_gradients",
    """{trace}
#Criticism already given for later nodes
{downstream}
#Task
Write one criticism for each of these nodes: {nodes}. Answer with one JSON object and \
nothing else:
{{"gradients": {{"<node>": "<at most {gradient_chars} characters>", ...}}}}""",
)

TEXTGRAD_UPDATE = Template(
    "textgrad_update",
    """#Parameter
{name} ({kind}): {description}
#Current value
{value}
#Criticism of this parameter
{gradient}
#Criticism of the nodes it feeds
{downstream}
#Feedback on the output
{feedback}
#Task
Rewrite the value of {name} to address the criticism.
{answer_format}""",
)

TEMPLATES = {
    t.name: t
    for t in (
        ANSWER_FORMAT,
        BLOCK_FORMAT,
        EDIT_SECTION,
        VARIANTS_FORMAT,
        MEMBERS_FORMAT,
        PRIME_SYSTEM,
        PRIME_USER,
        COMPACT_SYSTEM,
        COMPACT_USER,
        COMPACT_FRESH_USER,
        COMPACT_TEXT_SYSTEM,
        COMPACT_TEXT_USER,
        COMPACT_TEXT_FRESH_USER,
        RETRY_TURN,
        OPRO_SYSTEM,
        OPRO_USER,
        EVOLUTION_SYSTEM,
        EVOLUTION_USER,
        TEXTGRAD_SYSTEM,
        TEXTGRAD_GRADIENTS,
        TEXTGRAD_UPDATE,
    )
}

WARM_START = Template(
    "warm_start",
    """#Parameters
{parameters}
#Feedback on the current values
{feedback}
#Task
Propose {count} different, promising settings of the numeric parameters {names} to try first. \
Answer with one JSON object and nothing else:
{{"reasoning": "<why, at most {reasoning_chars} characters>", "members": [{example}, ...], "stop": false}}""",
)

TEMPLATES[WARM_START.name] = WARM_START
