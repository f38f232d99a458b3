"""Every prompt the task programs send to a model, as named templates with explicit variables."""

from __future__ import annotations

from string import Template

# Prompt tasks: the trainable instruction is the system message, the question the user message.
BBH_SYSTEM = Template("$instruction")
BBH_USER = Template("$question")

# Verbalized ML: the trainable model description decides how the model maps x to y.
VML_SYSTEM = Template(
    "You are a prediction model. Your model description is:\n$description\n"
    "Apply the description to the input. Reply with the prediction only."
)
VML_REGRESSION_USER = Template("Input: x = $x\nPredict y (a number).")
VML_CLASSIFICATION_USER = Template(
    "Input: x1 = $x1, x2 = $x2\nPredict the class, one of: $classes."
)


def messages(system: Template, user: Template, **values: object) -> list[dict[str, str]]:
    """Render a (system, user) template pair into chat messages."""
    return [
        {"role": "system", "content": system.substitute(**values)},
        {"role": "user", "content": user.substitute(**values)},
    ]
