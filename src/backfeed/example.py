"""`bf.Example`: a dataset example whose declared inputs reach the program and whose labels
reach only the metric."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from typing import Any

from .graph.node import SetupError


class LabelLeakError(SetupError, ValueError):
    """A whole dataset example, labels included, was about to be sent to a model."""


class InputsError(SetupError, TypeError):
    """The program cannot take an example's declared inputs as keyword arguments."""


SETUP_ERRORS = (SetupError,)  # raised out of an evaluation, never feedback

_in_program: contextvars.ContextVar[bool] = contextvars.ContextVar("backfeed_in_program",
                                                                   default=False)


@contextlib.contextmanager
def in_program() -> Iterator[None]:
    """While the program runs on an example (not its metric): a whole undeclared example
    made into text is refused, as it would carry the labels into a prompt."""
    token = _in_program.set(True)
    try:
        yield
    finally:
        _in_program.reset(token)


class Example(dict):
    """One example: named fields, some of them declared as the program's inputs.

    `bf.Example(question="2+2?", answer="4").with_inputs("question")`: the trainer calls the
    program with the inputs as keyword arguments (`program(question="2+2?")`) and the metric
    with the whole example (`example["answer"]`). It is a dict, so a metric reads it as one.
    Dict examples given to `bf.train(..., inputs=[...])` or `bf.evaluate(..., inputs=[...])`
    become Examples with those inputs. A dict example with no inputs declared still reaches
    the program whole, as before, but `bf.chat` refuses to send it to a model: its labels
    would be in the prompt.
    """

    def __init__(self, *args: Any, **fields: Any) -> None:
        super().__init__(*args, **fields)
        self.input_names: tuple[str, ...] | None = None  # None: not declared

    def with_inputs(self, *names: str) -> Example:
        """A copy with `names` declared as the program's inputs (the rest are labels)."""
        missing = [n for n in names if n not in self]
        if missing:
            raise KeyError(f"with_inputs{names}: the example has no field {missing[0]!r}; "
                           f"its fields are {sorted(self)}")
        if not names:
            raise ValueError("with_inputs() needs at least one field name")
        return _rebuild(self, tuple(names))

    def inputs(self) -> dict[str, Any]:
        """The declared inputs; a ValueError when none were declared."""
        if self.input_names is None:
            raise ValueError(f"no inputs declared for an example with fields {sorted(self)}: "
                             "use .with_inputs(...)")
        return {n: self[n] for n in self.input_names}

    def copy(self) -> Example:  # a copy keeps the declared inputs
        return _rebuild(self, self.input_names)

    def __str__(self) -> str:
        if self.input_names is None and _in_program.get():
            raise leak_error(self, how="made into text (str(), an f-string, format())")
        return dict.__repr__(self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def labels(self) -> dict[str, Any]:
        """Every field that is not a declared input."""
        names = set(self.input_names or ())
        return {k: v for k, v in self.items() if k not in names}

    def __reduce__(self) -> Any:  # pickled for process and Ray workers with its inputs
        return (_rebuild, (dict(self), self.input_names))


def _rebuild(fields: dict[str, Any], names: tuple[str, ...] | None) -> Example:
    example = Example(fields)
    example.input_names = names
    return example


def declare_inputs(data: list[Any], names: Iterable[str] | None, what: str) -> list[Any]:
    """The examples with `names` declared as inputs of every dict example (each must have
    them), and every other dict example made an undeclared `Example`; other examples as
    they are. Raises ValueError naming the first example without a field."""
    names = tuple(names) if names is not None else None
    if names is not None and (isinstance(names, str) or not names):
        raise ValueError(f"inputs= takes a list of field names, got {names!r}")
    out: list[Any] = []
    for i, example in enumerate(data):
        if isinstance(example, Example):
            if names is not None and example.input_names is None:
                example = _declared(example, names, what, i)
        elif isinstance(example, dict):
            example = _declared(Example(example), names, what, i) if names is not None \
                else Example(example)
        elif names is not None:
            raise ValueError(f"{what}[{i}] is a {type(example).__name__}; inputs= applies to "
                             "dict examples")
        out.append(example)
    return out


def _declared(example: Example, names: tuple[str, ...], what: str, index: int) -> Example:
    missing = [n for n in names if n not in example]
    if missing:
        raise ValueError(f"{what}[{index}] has no field {missing[0]!r} (inputs={list(names)}); "
                         f"its fields are {sorted(example)}")
    return example.with_inputs(*names)


def find_example(value: Any, depth: int = 32) -> Example | None:
    """A dataset example anywhere in `value` (a message content: dicts and lists walked)."""
    if isinstance(value, Example):
        return value
    if depth <= 0:
        return None
    items = value.values() if isinstance(value, dict) else value \
        if isinstance(value, list | tuple) else ()
    for item in items:
        found = find_example(item, depth - 1)
        if found is not None:
            return found
    return None


def leak_error(example: Example, how: str = "given to bf.chat") -> LabelLeakError:
    """The error for a whole example, labels included, about to reach a prompt."""
    fields = sorted(example)
    return LabelLeakError(
        f"a whole dataset example (fields {fields}) was {how} inside the program; it would "
        "show the model its labels. Declare the fields the program may see (its inputs, not "
        "the labels): bf.train(..., inputs=[...]) or bf.evaluate(..., inputs=[...]) with some "
        f"of {fields}, or bf.Example(...).with_inputs(...); the program then receives only "
        "those fields by name, and the metric the whole example"
    )
