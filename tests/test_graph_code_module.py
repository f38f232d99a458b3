"""Trainable code parameters and `bf.Module`."""

import json

import pytest

import backfeed as bf
from backfeed.graph import execute

OFFSET = 100  # a module global the trainable code may use


@bf.op(trainable=True)
def parse(text: str) -> int:
    """Turn text into a number."""
    return int(text.strip())


def test_code_parameter_is_the_source():
    assert parse.code.kind == "code"
    assert parse.parameters() == [parse.code]
    assert parse.code.value.startswith("def parse(text: str) -> int:")
    assert "@bf.op" not in parse.code.value
    assert parse(" 7 ").value == 7


def test_new_code_runs_with_original_globals_and_compiles_once(monkeypatch):
    original = parse.code.value
    calls = []
    real = execute.compile_function
    monkeypatch.setattr(
        execute, "compile_function", lambda *a, **k: calls.append(a[0]) or real(*a, **k)
    )
    try:
        parse.code.value = "def parse(text):\n    return int(text) + OFFSET\n"
        assert parse("1").value == 101
        assert parse("2").value == 102
        assert len(calls) == 1  # cached per value
        out = parse(bf.node("5"))
        assert any(n is parse.code for _, n in out.inputs)
    finally:
        parse.code.value = original


def test_runtime_error_in_code_names_the_failing_line():
    original = parse.code.value
    try:
        parse.code.value = "def parse(text):\n    n = int(text)\n    return n / 0\n"
        with pytest.raises(bf.ExecutionError) as info:
            parse("3")
        error = info.value.node.error
        assert error.type == "ZeroDivisionError"
        assert error.lineno == 3 and error.line.strip() == "return n / 0"
        assert error.parameter == "parse"
        assert info.value.node.backward("do not divide by zero") == [parse.code]
        text = bf.render(parse.code).text
        assert "#Errors" in text and "line 3" in text and "do not divide by zero" in text
    finally:
        parse.code.value = original


def test_error_line_in_original_source():
    with pytest.raises(bf.ExecutionError) as info:
        parse("abc")
    assert info.value.node.error.lineno == 3  # docstring is line 2
    assert "int(text.strip())" in info.value.node.error.line


def test_syntax_error_and_wrong_name_become_error_nodes():
    original = parse.code.value
    try:
        parse.code.value = "def parse(text):\n    return int(text\n"
        with pytest.raises(bf.ExecutionError) as info:
            parse("1")
        assert info.value.node.error.type == "SyntaxError"
        assert info.value.node.error.lineno is not None
        parse.code.value = "def other(text):\n    return 1\n"
        with pytest.raises(bf.ExecutionError) as info:
            parse("1")
        assert info.value.node.error.type == "DefinitionError"
        assert "'parse'" in info.value.node.error.message
    finally:
        parse.code.value = original


def test_decorators_in_new_code_are_dropped():
    original = parse.code.value
    try:
        parse.code.value = "@bf.op\ndef parse(text):\n    return 42\n"
        assert parse("1").value == 42
    finally:
        parse.code.value = original


class Tool(bf.Module):
    def __init__(self, k):
        self.k = bf.param(k)

    def forward(self, x):
        return x * self.k


class Agent(bf.Module):
    def __init__(self):
        self.prompt = bf.param("Answer briefly.", description="system prompt")
        self.tools = [Tool(2), Tool(3)]
        self.cfg = {"temperature": bf.param(0.5, bounds=(0, 1))}
        self.helper = Tool(4)

    @bf.op(trainable=True)
    def decide(self, question):
        return self.prompt.value + " " + question

    def forward(self, question):
        return self.decide(question)


def test_module_finds_parameters_everywhere():
    agent = Agent()
    names = [name for name, _ in agent.named_parameters()]
    assert names == ["decide", "prompt", "tools.0.k", "tools.1.k", "cfg.temperature", "helper.k"]
    assert [p.name for p in agent.parameters()] == names  # auto-named params take their path


def test_method_parameters_are_per_instance():
    a, b = Agent(), Agent()
    assert a.decide.code is not b.decide.code
    a.decide.code.value = "def decide(self, question):\n    return 'A:' + question\n"
    assert a("q").value == "A:q"
    assert b("q").value == "Answer briefly. q"
    out = b("q")
    assert {id(p) for p in out.backward("ok")} == {id(b.decide.code), id(b.prompt)}


def test_state_dict_round_trip_and_save_load(tmp_path):
    a = Agent()
    a.prompt.value = "Be exact."
    a.tools[1].k.value = 7
    state = a.state_dict()
    json.dumps(state)
    b = Agent()
    b.load_state_dict(json.loads(json.dumps(state)))
    assert b.state_dict() == state
    path = tmp_path / "agent.json"
    a.save(path)
    c = Agent()
    c.load(path)
    assert c.prompt.value == "Be exact." and c.tools[1].k.value == 7
    with pytest.raises(KeyError, match="unknown parameter"):
        c.load_state_dict({**state, "nope": 1})
    with pytest.raises(KeyError, match="missing"):
        c.load_state_dict({"prompt": "x"})
    with pytest.raises(TypeError, match="'tools.1.k' is int"):
        c.load_state_dict({**state, "tools.1.k": "seven"})


def test_trainable_op_needs_source():
    namespace = {"bf": bf}
    exec("def f(x):\n    return x\n", namespace)
    with pytest.raises(TypeError, match="needs the source"):
        bf.op(namespace["f"], trainable=True)


def test_pickled_parameters_leave_their_graphs_behind():
    import pickle

    x = bf.param(2.0, name="x", bounds=(0, 5))
    y = x * 3
    y.backward("smaller")
    copy = pickle.loads(pickle.dumps(x))
    assert copy.value == 2.0 and copy.name == "x" and copy.bounds == (0, 5)
    assert copy.feedback == [] and x.feedback != []
    copy.value = 4.0  # still validated
    with pytest.raises(ValueError):
        copy.value = 9.0
    node = pickle.loads(pickle.dumps(y))
    assert node.value == 6.0 and node.feedback == [] and node.op.name == "mul"


def test_node_operators_are_written_in_node_py_and_it_imports_no_op_module():
    import ast
    import importlib
    import pathlib

    node_module = importlib.import_module("backfeed.graph.node")  # bf.graph.node is the function

    for dunder in ("__add__", "__radd__", "__lt__", "__neg__", "__getitem__", "__eq__"):
        assert dunder in bf.Node.__dict__ and bf.Node.__dict__[dunder].__module__ == node_module.__name__
    tree = ast.parse(pathlib.Path(node_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    assert "op" not in imported and "execute" not in imported
    with pytest.raises(bf.ExecutionError) as info:
        bf.node(1) / 0  # an operator's failure is an error node, as for any op
    assert info.value.node.error.type == "ZeroDivisionError" and info.value.node.op.name == "truediv"


def test_a_pickled_param_keeps_its_slots_and_gets_fresh_outputs():
    import pickle

    p = bf.param(["a"], name="demos", description="examples", constraint="short")
    (p[0] + "!").backward("longer")
    copy = pickle.loads(pickle.dumps(p))
    assert (copy.kind, copy.description, copy.constraint, copy.value) == ("list", "examples", "short", ["a"])
    assert copy.outputs == [] and "_outputs" not in p.__getstate__()


@bf.op(trainable=True)
def parse_price(text: str) -> float:
    return float(text.strip("$"))


class Step(bf.Module):
    def __init__(self, instruction):
        self.prompt = bf.param(instruction, name="prompt")

    def forward(self, question):
        return bf.format("{p} {q}", p=self.prompt, q=question)


class Pipeline(bf.Module):
    def __init__(self):
        self.retrieve = Step("Find the passage.")
        self.answer = Step("Answer from the passage.")
        self.system = bf.param("Be brief.", name="system_prompt")

    def forward(self, question):
        return self.answer(self.retrieve(question))


class Outer(bf.Module):
    def __init__(self):
        self.pipe = Pipeline()


def test_names_are_qualified_by_attribute_path_once_at_assignment():
    pipe = Pipeline()
    names = [name for name, _ in pipe.named_parameters()]
    assert names == ["retrieve.prompt", "answer.prompt", "system_prompt"]
    assert [p.name for p in pipe.parameters()] == names == list(pipe.state_dict())
    assert pipe.answer.prompt.name == "answer.prompt"  # set by the assignment, not by a getter
    opt = bf.optim.Prime(pipe.parameters(), llm=bf.llm.Scripted(
        ['{"suggestion": {"answer.prompt": "Quote the passage."}}']))
    pipe("q").backward("cite the passage")
    opt.step()
    assert pipe.answer.prompt.value == "Quote the passage." and pipe.retrieve.prompt.value == "Find the passage."
    outer = Outer()
    assert "pipe.answer.prompt" in outer.state_dict() and outer.pipe.system.name == "pipe.system_prompt"


def test_a_trainable_op_stored_as_an_attribute_is_found_like_a_method():
    class Reader(bf.Module):
        def __init__(self):
            self.parse = parse_price
            self.helper = Tool(2)
            self.helper.parse = parse_price  # the same op again: one parameter, found once

        def forward(self, text):
            return self.parse(text)

    reader = Reader()
    assert reader.parameters().count(parse_price.code) == 1
    assert reader.state_dict()["helper.parse"].startswith("def parse_price")  # the last path
    out = reader(bf.node("$3"))
    assert out.value == 3.0 and parse_price.code in out.backward("ok")


def test_two_parameters_with_one_name_in_one_module_are_refused_with_both_paths():
    class Clash(bf.Module):
        def __init__(self):
            self.a = bf.param("x", name="prompt")
            self.b = bf.param("y", name="prompt")

    with pytest.raises(ValueError, match=r"named 'prompt' \(at 'a' and 'b'\)"):
        Clash().state_dict()


def test_training_a_module_that_reuses_a_submodule_uses_the_qualified_names(tmp_path):
    def metric(example, output):
        return 1.0 if output.startswith("Quote") else 0.0

    pipe = Pipeline()
    llm = bf.llm.Scripted(['{"suggestion": {"answer.prompt": "Quote the passage."}}'] * 3)
    result = bf.train(pipe, [("q", 0), ("r", 1)], metric=metric,
                      optimizer=bf.optim.Prime(pipe.parameters(), llm=llm), steps=1,
                      store=tmp_path / "r.db", progress=False)
    assert set(result.best_values) == {"retrieve.prompt", "answer.prompt", "system_prompt"}
    assert result.best_values["answer.prompt"] == "Quote the passage."
    prompt = llm.calls[0].messages[-1]["content"]
    assert "answer.prompt" in prompt and "retrieve.prompt" in prompt
