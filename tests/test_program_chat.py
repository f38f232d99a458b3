"""bf.chat: traced model calls inside programs, schemas, and the program's model."""

from __future__ import annotations

import contextvars
import threading

import pytest

import backfeed as bf


def test_chat_node_has_every_parameter_in_its_messages_as_input():
    system = bf.param("Answer briefly.", name="system_prompt")
    demos = bf.param([{"input": "2+2", "output": "4"}], name="demos")
    style = bf.param("in digits", name="style")
    llm = bf.llm.Scripted(["7"])
    question = bf.format("What is 3+4, {style}?", style=style)
    reply = bf.chat([{"role": "system", "content": system}, demos,
                     {"role": "user", "content": question}], llm=llm)
    assert reply.value == "7"
    assert llm.calls[0].messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "2+2"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "What is 3+4, in digits?"},
    ]
    reached = reply.backward("wrong")
    assert {p.name for p in reached} == {"system_prompt", "demos", "style"}


def test_a_plain_prompt_is_one_user_message_and_options_reach_the_backend():
    llm = bf.llm.Scripted(["ok"])
    prompt = bf.param("Say ok.", name="p")
    reply = bf.chat(prompt, llm=llm, max_tokens=5, temperature=0.0)
    assert llm.calls[0].messages == [{"role": "user", "content": "Say ok."}]
    assert llm.calls[0].options["max_tokens"] == 5
    assert reply.backward("fine") == [prompt]


def test_unknown_options_and_bad_messages_are_refused_with_what_is_accepted():
    with pytest.raises(TypeError, match="unknown option.*top_p.*max_tokens"):
        bf.chat("hi", llm=bf.llm.Scripted([]), top_p=0.9)
    with pytest.raises(TypeError, match="message 0 of bf.chat must be a dict"):
        bf.chat([42], llm=bf.llm.Scripted([]))
    with pytest.raises(TypeError, match="demo 0 must be"):
        bf.chat([bf.param([{"q": 1}], name="d")], llm=bf.llm.Scripted([]))


def test_json_schema_is_sent_to_the_backend_and_the_value_is_the_parsed_object():
    schema = {"type": "object", "properties": {"label": {"type": "string"}},
              "required": ["label"]}
    llm = bf.llm.Scripted(['Sure: ```json\n{"label": "spam"}\n```'])
    prompt = bf.param("Classify.", name="p")
    out = bf.chat(prompt, llm=llm, schema=schema)
    assert out.value == {"label": "spam"}
    assert llm.calls[0].options["json_schema"] == schema
    assert out["label"].backward("should be ham") == [prompt]


def test_pydantic_schema_gives_a_model_instance():
    pydantic = pytest.importorskip("pydantic")

    class Verdict(pydantic.BaseModel):
        label: str
        confidence: float

    llm = bf.llm.Scripted(['{"label": "ham", "confidence": 0.8}'])
    out = bf.chat("Classify this.", llm=llm, schema=Verdict)
    assert out.value == Verdict(label="ham", confidence=0.8)
    assert llm.calls[0].options["json_schema"]["required"] == ["label", "confidence"]


def test_an_answer_that_misses_the_schema_is_an_error_node_feedback_can_reach():
    schema = {"type": "object", "required": ["label"]}
    prompt = bf.param("Classify.", name="p")
    with pytest.raises(bf.ExecutionError) as info:
        bf.chat(prompt, llm=bf.llm.Scripted(['{"other": 1}']), schema=schema)
    assert info.value.error.type == "SchemaError"
    assert "label" in info.value.error.message
    assert info.value.node.backward("return a label") == [prompt]
    with pytest.raises(bf.ExecutionError, match="holds no JSON"):
        bf.chat(prompt, llm=bf.llm.Scripted(["no json here"]), schema=schema)


def test_untraced_chat_returns_the_plain_value():
    with bf.no_trace():
        assert bf.chat(bf.param("x", name="p"), llm=bf.llm.Scripted(["plain"])) == "plain"


def test_using_chooses_the_model_for_this_context_only():
    outer, inner = bf.llm.Scripted(["outer"]), bf.llm.Scripted(["inner"])
    with bf.llm.using(outer):
        assert bf.llm.current() is outer
        with bf.llm.using(inner):
            assert bf.chat("q").value == "inner"
        assert bf.chat("q").value == "outer"
    assert bf.llm.chosen() is None
    seen = []
    with bf.llm.using(outer):
        ctx = contextvars.copy_context()
    t = threading.Thread(target=lambda: seen.append(bf.llm.chosen()))
    t.start(), t.join()
    assert seen == [None]  # a plain thread does not inherit the block
    assert ctx.run(bf.llm.chosen) is outer  # a copied context does


def test_using_refuses_what_is_not_a_model():
    with pytest.raises(TypeError, match="needs an LLM"):
        with bf.llm.using("gpt-4o"):  # type: ignore[arg-type]
            pass


def test_a_program_with_chat_trains_its_system_prompt():
    from chat_helpers import Echo

    def answer(messages, options):
        return messages[-1]["content"].upper() if "CAPITALS" in messages[0]["content"] else "?"

    program = Echo()
    optimizer_llm = bf.llm.Scripted(['{"suggestion": {"prompt": "Reply in CAPITALS."}}'])
    program_llm = bf.llm.Scripted([answer] * 20)
    data = [("a", "A"), ("b", "B")]
    with bf.llm.using(program_llm):
        bf.train(program, data, metric=lambda ex, out: float(out == ex[1]),
                 optimizer=bf.optim.Prime(program.parameters(), llm=optimizer_llm),
                 steps=1, store=":memory:", progress=False)
    assert program.prompt.value == "Reply in CAPITALS."
    assert "Reply with the word." in optimizer_llm.calls[0].messages[-1]["content"]


@pytest.mark.parametrize("executor", [bf.executors.Threads(4), bf.executors.Async(4)],
                         ids=["threads", "async"])
def test_the_executors_workers_see_the_model_chosen_by_using(executor):
    from chat_helpers import Echo

    program_llm = bf.llm.Scripted([lambda messages, options: messages[-1]["content"]] * 8)
    data = [(w, w) for w in "abcd"]
    with bf.llm.using(program_llm):
        results = executor.evaluate(Echo("Say the word."), {}, list(enumerate(data)),
                                    lambda ex, out: float(out == ex[1]), None)
    executor.close()
    assert [t.result.score for t in results] == [1.0] * 4
    assert len(program_llm.calls) == 4


def test_achat_awaits_the_backend_and_builds_the_same_node():
    import asyncio

    class Async(bf.llm.BaseLLM):
        model = "async"

        async def acomplete(self, messages, **options):
            await asyncio.sleep(0)
            return bf.llm.Completion(text=messages[-1]["content"][::-1])

    prompt = bf.param("abc", name="p")
    out = asyncio.run(bf.achat(prompt, llm=Async()))
    assert out.value == "cba" and out.backward("ok") == [prompt]
