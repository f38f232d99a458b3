"""Prompt templates: variables are explicit and the rendered text is what the model reads."""

from __future__ import annotations

import pytest

from backfeed.optim import prompts


def test_every_template_renders_without_literal_braces_left():
    for template in prompts.TEMPLATES.values():
        values = {v: f"<{v}>" for v in template.variables}
        text = template.render(**values)
        assert "{{" not in text, template.name  # escaped braces render as single ones
        for v in template.variables:
            assert f"<{v}>" in text


def test_render_names_missing_and_unexpected_variables():
    with pytest.raises(ValueError, match=r"missing \['trace'\], unexpected \['extra'\]"):
        prompts.PRIME_USER.render(memory="", rejected="", names="", answer_format="", examples="",
                                  extra=1)


def test_answer_format_rendered_text():
    text = prompts.ANSWER_FORMAT.render(reasoning_chars=200, example='{"x": <number>}', names="x")
    assert text == (
        "Answer with one JSON object and nothing else:\n"
        '{"reasoning": "<why, at most 200 characters>", "suggestion": {"x": <number>}, '
        '"stop": false}\n'
        'The keys of "suggestion" are exactly the parameter names: x. Repeat a value to keep it.\n'
        'Set "stop" to true only when the feedback shows nothing is left to improve.'
    )


def test_textgrad_gradient_prompt_shows_json_shape():
    text = prompts.TEXTGRAD_GRADIENTS.render(trace="T", downstream="D", nodes="a, b",
                                             gradient_chars=50)
    assert '{"gradients": {"<node>": "<at most 50 characters>", ...}}' in text
    assert text.startswith("T\n#Criticism already given for later nodes\nD\n")


def test_templates_have_unique_names():
    defined = [v for v in vars(prompts).values() if isinstance(v, prompts.Template)]
    names = [t.name for t in defined]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert all(prompts.TEMPLATES.get(t.name) is t for t in defined)  # none shadowed in TEMPLATES
    assert prompts.PRIME_USER.variables == {"trace", "memory", "rejected", "names",
                                            "answer_format", "examples"}
