"""Dataset inputs: declared fields reach the program, the labels only the metric; a whole dict
example is never sent to a model."""

from __future__ import annotations

import pickle

import pytest

import backfeed as bf
from backfeed.example import InputsError

DATA = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(1, 4)]


def echo() -> bf.llm.Scripted:
    """A model that copies its last user turn: it scores only if the answer is in the prompt."""
    return bf.llm.Scripted([lambda messages, options: messages[-1]["content"]] * 500)


def metric(example, output) -> float:
    return float(example["answer"] in str(output))


class Whole(bf.Module):
    """Sends the example it is given to the model as it is."""

    def __init__(self, llm) -> None:
        self.instruction = bf.param("Answer.", name="instruction")
        self.llm = llm

    def forward(self, example):
        return bf.chat([{"role": "system", "content": self.instruction},
                        {"role": "user", "content": example}], llm=self.llm)


class Asks(bf.Module):
    def __init__(self, llm) -> None:
        self.instruction = bf.param("Answer.", name="instruction")
        self.llm = llm

    def forward(self, question):
        return bf.chat([{"role": "system", "content": self.instruction},
                        {"role": "user", "content": question}], llm=self.llm)


def test_a_whole_dict_example_sent_to_a_model_is_an_error_that_says_how_to_declare_inputs():
    llm = echo()
    with pytest.raises(bf.LabelLeakError, match=r"inputs=\[\.\.\.\]") as caught:
        bf.evaluate(Whole(llm), DATA, metric, progress=False)
    assert "['answer', 'question']" in str(caught.value) and "not the labels" in str(caught.value)
    assert not llm.calls  # the model never saw the answer
    program = Whole(echo())
    with pytest.raises(bf.LabelLeakError):
        bf.train(program, DATA, metric=metric, steps=1, progress=False,
                 optimizer=bf.optim.Prime(program.parameters(), llm=bf.llm.Scripted([])))


def test_declared_inputs_reach_the_program_by_name_and_the_metric_sees_the_labels():
    llm = echo()
    report = bf.evaluate(Asks(llm), DATA, metric, inputs=["question"], progress=False)
    assert [m[-1]["content"] for m in (c.messages for c in llm.calls)] == \
        [d["question"] for d in DATA]
    assert report.mean == 0.0  # the echo is not the answer, and the answer was never sent
    examples = [bf.Example(**d).with_inputs("question") for d in DATA]
    assert bf.evaluate(Asks(echo()), examples, metric, progress=False).mean == 0.0


def test_train_with_inputs_never_sends_a_label_to_the_program_model():
    llm = echo()
    program = Asks(llm)
    result = bf.train(program, DATA, metric=metric, inputs=["question"], steps=1,
                      progress=False, optimizer=bf.optim.Prime(
                          program.parameters(), llm=bf.llm.Scripted(["no change"] * 5)))
    assert result.status in ("finished", "stopped")
    sent = "\n".join(m["content"] for c in llm.calls for m in c.messages)
    assert llm.calls and not any(f"answer\": \"{d['answer']}\"" in sent for d in DATA)


def test_undeclared_fields_and_programs_that_cannot_take_them_are_clear_errors():
    program = Asks(echo())
    with pytest.raises(ValueError, match=r"trainset\[0\] has no field 'query'"):
        bf.train(program, DATA, metric=metric, inputs=["query"], progress=False,
                 optimizer=bf.optim.Prime(program.parameters(), llm=bf.llm.Scripted([])))
    with pytest.raises(InputsError, match="cannot take the declared inputs"):
        bf.evaluate(Whole(echo()), DATA, metric, inputs=["question"], progress=False)
    with pytest.raises(KeyError, match="no field 'q'"):
        bf.Example(question="x").with_inputs("q")


def test_an_example_keeps_its_inputs_through_pickling_and_splits_inputs_from_labels():
    example = bf.Example(question="q", answer="a").with_inputs("question")
    again = pickle.loads(pickle.dumps(example))
    assert again.inputs() == {"question": "q"} and again.labels() == {"answer": "a"}
    assert dict(again) == {"question": "q", "answer": "a"}


# -- program calls given a model explicitly -------------------------------------------------


class Explicit(bf.Module):
    """Calls a model of its own with bf.chat(llm=...), as a RAG pipeline's stages do."""

    def __init__(self, llm) -> None:
        self.instruction = bf.param("Answer.", name="instruction")
        self.llm = llm

    def forward(self, question):
        draft = bf.chat([{"role": "system", "content": self.instruction},
                         {"role": "user", "content": question}], llm=self.llm)
        return bf.chat([{"role": "user", "content": draft}], llm=self.llm)


def test_calls_of_a_model_given_to_bf_chat_count_as_program_spend_and_are_stored():
    llm = echo()
    program = Explicit(llm)
    result = bf.train(program, DATA, metric=metric, inputs=["question"], steps=1,
                      progress=False, optimizer=bf.optim.Prime(
                          program.parameters(), llm=bf.llm.Scripted(["no change"] * 5)))
    made = len(llm.calls)
    assert made >= 6
    assert result.spend["by_role"]["program"]["calls"] == made
    stored = [c for c in result.store.llm_calls(result.run_id) if c.role == "program"]
    assert len(stored) == made


def test_a_call_budget_stops_a_run_whose_program_calls_its_own_model():
    llm = echo()
    program = Explicit(llm)
    result = bf.train(program, DATA * 4, metric=metric, inputs=["question"], steps=20,
                      progress=False, budget=bf.Budget(llm_calls=10),
                      optimizer=bf.optim.Prime(program.parameters(),
                                               llm=bf.llm.Scripted(["no change"] * 50)))
    assert len(llm.calls) <= 10
    assert result.status == "stopped" and "llm_calls" in result.stop_reason


def test_the_estimate_counts_the_programs_own_calls_and_says_how_it_knows(tmp_path):
    llm = echo()
    program = Explicit(llm)
    answers = [f"### instruction\n```text\nAnswer, take {i}.\n```" for i in range(20)]
    trainer = bf.Trainer(program, DATA * 4, metric=metric, inputs=["question"], steps=4,
                         progress=False, store=tmp_path / "r.db",
                         optimizer=bf.optim.Prime(program.parameters(),
                                                  llm=bf.llm.Scripted(answers)))
    estimate = trainer.estimate()
    assert not llm.calls  # the probe paid the program's model nothing
    assert estimate.expected["program_calls_per_evaluation"] == 2
    assert any("2 call(s) per evaluation" in line for line in estimate.basis)
    result = trainer.fit()
    made = result.spend["by_role"]["program"]["calls"]
    assert made == len(llm.calls) > 20
    assert estimate.llm_calls[0] <= result.spend["calls"] <= estimate.llm_calls[1]
    assert "by the program" in str(estimate)


def test_an_evaluation_reports_its_model_calls_and_keeps_structured_outputs():
    class Labeler(bf.Module):
        def __init__(self, llm) -> None:
            self.prompt = bf.param("Label it.", name="prompt")
            self.llm = llm

        def forward(self, question):
            return bf.chat([{"role": "system", "content": self.prompt},
                            {"role": "user", "content": question}], llm=self.llm,
                           schema={"type": "object", "properties": {"label": {"type": "string"}},
                                   "required": ["label"]})

    llm = bf.llm.Scripted(['{"label": "4"}', '{"label": "5"}', '{"label": "6"}'])
    report = bf.evaluate(Labeler(llm), DATA, lambda ex, out: float(out["label"] == ex["answer"]),
                         inputs=["question"], progress=False)
    assert [r.output for r in report.rows] == [{"label": "4"}, {"label": "5"}, {"label": "6"}]
    assert report.spend["llm_calls"] == 3 and report.spend["tokens"] > 0
    assert "3 model calls" in str(report)


def test_a_leak_inside_an_op_stops_the_evaluation_instead_of_becoming_feedback():
    @bf.op
    def ask(example) -> str:
        """Ask the model about the example."""
        return bf.chat([{"role": "user", "content": example}], llm=echo()).value

    class InOp(bf.Module):
        def __init__(self):
            self.p = bf.param("x", name="p")

        def forward(self, example):
            return ask(example)

    with pytest.raises(bf.LabelLeakError):
        bf.evaluate(InOp(), DATA, metric, progress=False)


def test_an_example_made_into_text_or_copied_inside_the_program_still_cannot_leak():
    class Formats(bf.Module):
        def __init__(self, how):
            self.p = bf.param("Answer.", name="p")
            self.how = how

        def forward(self, example):
            content = {"fstring": lambda: f"Q: {example}", "copy": lambda: example.copy(),
                       "nested": lambda: [[[[[{"deep": example}]]]]]}[self.how]()
            return bf.chat([{"role": "user", "content": content}], llm=echo())

    for how in ("fstring", "copy", "nested"):
        with pytest.raises(bf.LabelLeakError):
            bf.evaluate(Formats(how), DATA, metric, progress=False)
    assert f"{bf.Example(a=1)}" == "{'a': 1}"  # outside a program, an example prints


def test_the_estimate_with_a_call_budget_counts_the_programs_calls_in_it(tmp_path):
    program = Explicit(echo())
    answers = [f"### instruction\n```text\nAnswer, take {i}.\n```" for i in range(50)]
    trainer = bf.Trainer(program, DATA * 4, metric=metric, inputs=["question"], steps=20,
                         budget=bf.Budget(llm_calls=40), progress=False, store=tmp_path / "r.db",
                         optimizer=bf.optim.Prime(program.parameters(), llm=bf.llm.Scripted(answers)))
    estimate = trainer.estimate()
    assert estimate.expected["llm_calls"] <= 40
    result = trainer.fit()
    assert estimate.steps / 2 <= max(len(result.history), 1) <= max(estimate.steps * 2, 1)
    assert estimate.llm_calls[0] <= result.spend["calls"] <= estimate.llm_calls[1]


def test_calls_from_threads_the_program_starts_count_against_the_run():
    from concurrent.futures import ThreadPoolExecutor

    class Fans(bf.Module):
        def __init__(self, llm):
            self.p = bf.param("Answer.", name="p")
            self.llm = llm

        def forward(self, question):
            with ThreadPoolExecutor(2) as pool:  # plain threads: no copy of the run's context
                replies = list(pool.map(lambda _: bf.chat(
                    [{"role": "user", "content": question}], llm=self.llm).value, range(2)))
            return bf.chat([{"role": "system", "content": self.p},
                            {"role": "user", "content": " ".join(replies)}], llm=self.llm)

    llm = echo()
    program = Fans(llm)
    result = bf.train(program, DATA, metric=metric, inputs=["question"], steps=1,
                      budget=bf.Budget(llm_calls=5), progress=False,
                      optimizer=bf.optim.Prime(program.parameters(), llm=bf.llm.Scripted([])))
    assert len(llm.calls) <= 5 and result.spend["by_role"]["program"]["calls"] == len(llm.calls)
    assert result.status == "stopped"


def test_a_leak_through_a_traced_method_stops_the_evaluation():
    class Formats(bf.Module):
        def __init__(self):
            self.template = bf.param("Q: {x}", name="template")

        def forward(self, example):
            return bf.chat([{"role": "user", "content": self.template.format(x=example)}],
                           llm=echo())

    with pytest.raises(bf.LabelLeakError):
        bf.evaluate(Formats(), DATA, metric, progress=False)
