"""Params, nodes, ops and traced operators."""

import asyncio
import json

import pytest

import backfeed as bf


@bf.op
def scale(v: float, factor: int) -> float:
    """Multiply v by factor."""
    return v * factor


def test_param_types_fixed_and_checked():
    assert bf.param("hi").kind == "str"
    assert bf.param(3).kind == "int"
    assert bf.param(1.5).kind == "float"
    assert bf.param(True).kind == "bool"
    assert bf.param([1]).kind == "list"
    assert bf.param({"a": 1}).kind == "dict"
    with pytest.raises(TypeError, match="unsupported parameter type set"):
        bf.param({1, 2})
    p = bf.param(3, name="n")
    with pytest.raises(TypeError, match="'n' is int; got float"):
        p.value = 3.7
    with pytest.raises(TypeError, match="got bool"):
        p.value = True
    f = bf.param(1.0)
    f.value = 2  # an int is a float
    assert f.value == 2.0 and type(f.value) is float
    with pytest.raises(ValueError, match="finite"):
        f.value = float("nan")


def test_param_bounds_and_choices():
    x = bf.param(1.0, name="x", bounds=(0, 10))
    x.value = 10
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        x.value = 11.0
    c = bf.param("a", choices=["a", "b"])
    c.value = "b"
    with pytest.raises(ValueError, match="one of"):
        c.value = "z"
    with pytest.raises(ValueError, match="bounds apply"):
        bf.param("s", bounds=(0, 1))
    with pytest.raises(ValueError):
        bf.param(20, bounds=(0, 10))


def test_op_records_inputs_constants_and_info_once():
    x = bf.param(1.0, name="x")
    y = scale(x, 3)
    assert y.value == 3.0
    (n1, a), (n2, b) = y.inputs
    assert (n1, a) == ("v", x) or a is x
    assert n2 == "factor" and b.value == 3 and not b.trainable
    z = scale(x, 2)
    assert z.op is y.op  # inspected once per function
    assert y.op.doc == "Multiply v by factor."
    assert y.op.signature.startswith("scale(v: float, factor: int)")


def test_operators_are_traced():
    x = bf.param(2.0, name="x")
    exprs = {
        "add": x + 1, "radd": 1 + x, "sub": x - 1, "rsub": 5 - x, "mul": x * 3,
        "truediv": x / 4, "floordiv": x // 1, "mod": x % 2, "pow": x**2, "neg": -x,
        "abs": abs(-x), "lt": x < 3, "ge": x >= 3, "eq": x == 2.0, "ne": x != 2.0,
    }
    values = {k: v.value for k, v in exprs.items()}
    assert values == {
        "add": 3.0, "radd": 3.0, "sub": 1.0, "rsub": 3.0, "mul": 6.0, "truediv": 0.5,
        "floordiv": 2.0, "mod": 0.0, "pow": 4.0, "neg": -2.0, "abs": 2.0, "lt": True,
        "ge": False, "eq": True, "ne": False,
    }
    for out in exprs.values():
        assert isinstance(out, bf.Node)
        assert bf.minimal_subgraph([x], [out]).params == [x]


def test_indexing_len_str_and_container_methods():
    s = bf.param("Hello, World", name="s")
    assert s.upper().value == "HELLO, WORLD"
    parts = s.split(", ")
    assert parts.value == ["Hello", "World"] and parts.op.name == "str.split"
    assert parts[1].value == "World" and parts[1].op.name == "getitem"
    assert bf.len(s).value == 12 and bf.len(s).op.name == "len"
    d = bf.param({"k": [1, 2]}, name="d")
    assert d.get("k").value == [1, 2]
    assert d["k"][0].value == 1
    msg = bf.format("{greet}! n={n}", greet=s, n=bf.len(parts))
    assert msg.value == "Hello, World! n=2"
    assert {id(p) for p in bf.minimal_subgraph([s, d], [msg]).params} == {id(s)}
    items = list(bf.node([10, 20]))
    assert [i.value for i in items] == [10, 20] and items[0].op.name == "getitem"


def test_no_trace_returns_plain_values():
    x = bf.param(1.0)
    with bf.no_trace():
        y = scale(x + 1, 3)
        assert not bf.graph.is_tracing()
    assert y == 6.0 and not isinstance(y, bf.Node)
    assert bf.graph.is_tracing()


def test_varargs_kwargs_and_nested_containers():
    @bf.op
    def combine(*parts, sep=" ", **extra):
        return sep.join(parts) + "".join(extra.values())

    a, b = bf.param("a", name="a"), bf.param("b", name="b")
    out = combine(a, b, sep="-", tail=bf.node("!"))
    assert out.value == "a-b!"
    assert [name for name, _ in out.inputs] == ["parts[0]", "parts[1]", "sep", "tail"]

    @bf.op
    def total(values):
        return sum(values)

    t = total([a.len(), bf.node(2)])
    assert t.value == 3 and [n for n, _ in t.inputs] == ["values[0]", "values[1]"]


def test_async_op():
    @bf.op
    async def fetch(q: str) -> str:
        await asyncio.sleep(0)
        return q + "!"

    q = bf.param("hi", name="q")

    async def main():
        return await asyncio.gather(fetch(q), fetch(q + "x"))

    a, b = asyncio.run(main())
    assert a.value == "hi!" and b.value == "hix!"
    assert bf.minimal_subgraph([q], [b]).params == [q]


def test_async_op_error_becomes_error_node():
    @bf.op
    async def boom(q):
        raise ValueError("no " + q)

    with pytest.raises(bf.ExecutionError) as info:
        asyncio.run(boom(bf.param("x", name="q")))
    assert info.value.node.error.type == "ValueError"


def test_reads_inside_op_body_become_inputs():
    prompt = bf.param("Be brief.", name="prompt")

    @bf.op
    def ask(question):
        return prompt.value + " " + question

    out = ask("why?")
    assert out.value == "Be brief. why?"
    assert any(n is prompt for _, n in out.inputs)
    assert out.backward("too short") == [prompt]


def test_op_exception_becomes_backwardable_error_node():
    @bf.op
    def divide(a, b):
        return a / b

    x = bf.param(0.0, name="x")
    with pytest.raises(bf.ExecutionError) as info:
        divide(1.0, x)
    node = info.value.node
    assert node.error.type == "ZeroDivisionError" and isinstance(info.value.__cause__, ZeroDivisionError)
    assert node.backward("never divide by zero") == [x]
    assert "ZeroDivisionError" in bf.render([x]).text


def test_nested_op_errors_chain_through_cause():
    @bf.op
    def inner(v):
        raise KeyError("missing")

    @bf.op
    def outer(v):
        return inner(v)

    x = bf.param(1, name="x")
    with pytest.raises(bf.ExecutionError) as info:
        outer(x)
    assert info.value.node.op.name == "outer" and info.value.node.error.type == "KeyError"


def test_feedback_normalisation():
    assert bf.Feedback.of("bad") == bf.Feedback(text="bad")
    assert bf.Feedback.of(0.5) == bf.Feedback(score=0.5)
    fb = bf.Feedback(score=1, text="ok", details={"a": 1})
    assert bf.Feedback.of(fb) is fb
    with pytest.raises(TypeError, match="feedback must be"):
        bf.Feedback.of(object())


def test_state_is_json_ready():
    p = bf.param({"a": [1, 2]}, name="cfg")
    assert json.loads(json.dumps(p.value)) == {"a": [1, 2]}
