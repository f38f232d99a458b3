"""bf.Prompt: a model call declared by its fields, its messages, its outputs and its parameters."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import backfeed as bf
from backfeed.program.prompt import parse_signature


def test_a_signature_names_inputs_and_typed_outputs():
    inputs, outputs = parse_signature("question, context -> answer, n: int")
    assert [(f.name, f.type) for f in inputs] == [("question", "str"), ("context", "str")]
    assert [(f.name, f.type) for f in outputs] == [("answer", "str"), ("n", "int")]


@pytest.mark.parametrize("spec, named", [
    ("question answer", "inputs -> outputs"),
    ("q -> a -> b", "inputs -> outputs"),
    ("q, -> a", "empty"),
    ("q -> 2a", "'2a'"),
    ("q -> a: decimal", "'decimal'"),
    ("q, q -> a", "twice"),
    ("q -> q", "both an input and an output"),
])
def test_a_bad_signature_is_refused_naming_what_is_wrong(spec, named):
    with pytest.raises(bf.SignatureError, match=named):
        bf.Prompt(spec)


def test_it_renders_instruction_format_demos_and_labelled_inputs():
    llm = bf.llm.Scripted(["answer: Paris"])
    ask = bf.Prompt("question, passages -> answer", "Answer from the passages.",
                    demos=[{"question": "2+2?", "passages": ["math"], "answer": "4"}], llm=llm)
    out = ask(question="Capital of France?", passages=["Paris is in France.", "Rome."])
    assert out.value == "Paris"  # the `answer:` label is not part of the answer
    assert llm.calls[0].messages == [
        {"role": "system", "content": "Answer from the passages.\n\n"
                                      "Answer with the answer only, no other text."},
        {"role": "user", "content": "question: 2+2?\n\npassages:\n[1] math"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "question: Capital of France?\n\n"
                                    "passages:\n[1] Paris is in France.\n[2] Rome."},
    ]
    reached = out.backward("wrong city")
    assert {p.name for p in reached} == {"instruction", "demos", "format"}


def test_inputs_are_taken_in_order_and_a_wrong_call_names_the_field():
    ask = bf.Prompt("question, context -> answer", llm=bf.llm.Scripted(["x", "y"]))
    assert ask("q", "c").value == "x"
    assert ask("q", context="c").value == "y"
    with pytest.raises(bf.SignatureError, match="missing input 'context'"):
        ask(question="q")
    with pytest.raises(bf.SignatureError, match="unknown input 'ctx'"):
        ask(question="q", ctx="c")
    with pytest.raises(bf.SignatureError, match="'question' twice"):
        ask("q", question="q2")
    with pytest.raises(bf.SignatureError, match="missing input 'context'"):  # never feedback
        bf.evaluate(ask, [bf.Example(question="q", answer="a").with_inputs("question")],
                    lambda ex, out: 1.0, progress=False)


def test_a_typed_output_is_read_and_a_reply_that_does_not_fit_is_an_error_node():
    count = bf.Prompt("text -> words: int", llm=bf.llm.Scripted(["There are 12 words.",
                                                                 "many"]))
    assert count.format.value == "Answer with the words (a whole number) only, no other text."
    assert count(text="...").value == 12
    with pytest.raises(bf.ExecutionError, match="whole number") as info:
        count(text="...")
    assert {p.name for p in info.value.node.backward("answer a number")} == {
        "instruction", "demos", "format"}
    check = bf.Prompt("claim -> true: bool", llm=bf.llm.Scripted(["Yes, it is.", "false"]))
    assert check(claim="a").value is True and check(claim="b").value is False


def test_several_outputs_are_a_json_object_asked_for_with_its_schema():
    llm = bf.llm.Scripted(['{"label": "refund", "urgent": true}'])
    route = bf.Prompt("ticket -> label, urgent: bool", llm=llm)
    out = route(ticket="I want my money back")
    assert out.value == {"label": "refund", "urgent": True}
    assert out["label"].value == "refund"  # traced access
    assert llm.calls[0].options["json_schema"]["required"] == ["label", "urgent"]
    assert '"urgent": <boolean>' in route.format.value


def test_a_pydantic_output_is_validated_and_a_bad_one_is_an_error_node():
    class Answer(BaseModel):
        answer: str
        cited: list[int]

    ask = bf.Prompt("question -> answer", output=Answer, llm=bf.llm.Scripted(
        ['{"answer": "Paris", "cited": [1]}', '{"answer": "Paris"}']))
    assert ask(question="q").value == Answer(answer="Paris", cited=[1])
    assert "cited" in ask.format.value
    with pytest.raises(bf.ExecutionError) as info:
        ask(question="q")
    assert info.value.node.error.type == "SchemaError"
    with pytest.raises(bf.SignatureError, match="one output"):
        bf.Prompt("q -> a, b", output=Answer)


def test_its_parts_are_parameters_named_by_the_attribute_path():
    class Two(bf.Module):
        def __init__(self):
            self.rewrite = bf.Prompt("question -> query")
            self.answer = bf.Prompt("question, passages -> answer")

    state = Two().state_dict()
    assert state["rewrite.instruction"] == "Given the question, write the query."
    assert state["answer.instruction"] == "Given the question and passages, write the answer."
    assert state["answer.demos"] == [] and set(state) == {
        f"{m}.{p}" for m in ("rewrite", "answer") for p in ("instruction", "demos", "format")}


def test_fewshot_fills_a_prompts_demos_from_its_correct_calls():
    def model(messages, options):  # right on "ab"; on the others only once shown a demo
        word = messages[-1]["content"].removeprefix("word: ")
        return word.upper() if word == "ab" or len(messages) > 2 else word

    ask = bf.Prompt("word -> upper", llm=bf.llm.Scripted([model] * 60))
    data = [bf.Example(word=w, upper=w.upper()).with_inputs("word") for w in ("ab", "cd", "ef")]
    result = bf.train(ask, data, data, metric=lambda ex, out: float(out == ex["upper"]),
                      optimizer=bf.optim.FewShot([ask.demos], k=1, candidates=1),
                      steps=2, store=":memory:", progress=False)
    assert result.best_score == 1.0
    assert ask.demos.value == [{"input": "word: ab", "output": "AB"}]


DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany.",
        "The Loire is a river in France."]


class Answer(BaseModel):
    answer: str
    cited: list[int]


@bf.op
def retrieve(query: str, k: int = 2) -> list[str]:
    """The k documents sharing the most words with the query."""
    return sorted(DOCS, key=lambda d: -sum(w in d.lower() for w in query.lower().split()))[:k]


class RAG(bf.Module):
    def __init__(self):
        self.rewrite = bf.Prompt("question -> query", "Rewrite the question as a search query.")
        self.answer = bf.Prompt("question, passages -> answer", output=Answer)

    def forward(self, question):
        return self.answer(question=question, passages=retrieve(self.rewrite(question=question)))


def rag_model(messages, options):
    """The program's model: a query echoes the question; an answer names the city, bare only
    when the instruction asks for the name alone."""
    system, user = messages[0]["content"], messages[-1]["content"]
    assert "answer: " not in user.lower() and "Berlin\"" not in user  # no label reaches it
    if "search query" in system:
        return "query: " + user.removeprefix("question: ")
    city = "Paris" if "France" in user.split("passages:")[0] else "Berlin"
    bare = "name only" in system
    return f'{{"answer": "{city if bare else "It is " + city + "."}", "cited": [1]}}'


def test_the_two_stage_rag_pipeline_trains_end_to_end():
    data = [{"question": "What is the capital of France?", "answer": "Paris"},
            {"question": "Which city is the capital of Germany?", "answer": "Berlin"}]
    program = RAG()
    program_llm = bf.llm.Scripted([rag_model] * 40)
    optimizer_llm = bf.llm.Scripted(
        ['{"suggestion": {"answer.instruction": "Answer with the city name only."}}'])
    result = bf.train(program, data, data, metric=lambda ex, out: float(out.answer == ex["answer"]),
                      inputs=["question"], program_llm=program_llm,
                      optimizer=bf.optim.Prime(program.parameters(), llm=optimizer_llm),
                      steps=1, store=":memory:", progress=False)
    seed = result.store.candidates(result.run_id)[0]
    assert seed.val_scores == [0.0, 0.0] and result.best_score == 1.0
    assert program.answer.instruction.value == "Answer with the city name only."
    asked = optimizer_llm.calls[0].messages[-1]["content"]
    # the optimizer saw the whole pipeline: both prompts' instructions and the retriever
    assert "Rewrite the question as a search query." in asked and "retrieve" in asked
    # the rewritten query went through the retriever into the answer's user turn
    answer_turns = [c.messages[-1]["content"] for c in program_llm.calls
                    if "passages:" in c.messages[-1]["content"]]
    assert any("[1] Paris is the capital of France." in t for t in answer_turns)
