"""Backward, the minimal subgraph, rendering, memory and threads."""

import gc
import re
import sys
import threading
import weakref

import pytest

import backfeed as bf
from backfeed.graph.render import RenderBudgetError


@bf.op
def scale(v: float, factor: int) -> float:
    """Multiply v by factor."""
    return v * factor


def test_backward_accepts_str_number_and_feedback():
    x = bf.param(1.0, name="x")
    y = scale(x + 1, 3)
    y.backward("y should be 20")
    y.backward(0.25)
    y.backward(bf.Feedback(score=0.5, text="half"))
    assert [fb for _, fb in x.feedback] == [
        bf.Feedback(text="y should be 20"), bf.Feedback(score=0.25), bf.Feedback(0.5, "half"),
    ]
    bf.zero_feedback([x])
    assert x.feedback == [] and y.feedback == []


def test_minibatch_each_output_its_own_feedback():
    w = bf.param(2.0, name="w")
    b = bf.param(1.0, name="b")
    outs = [w * xi + b for xi in (1, 2, 3)]
    only_w = w * 10
    for i, o in enumerate(outs):
        o.backward(f"example {i}")
    only_w.backward("only w")
    assert len(w.feedback) == 4 and len(b.feedback) == 3
    assert {fb.text for _, fb in b.feedback} == {"example 0", "example 1", "example 2"}


def test_backward_without_trainable_ancestor_raises():
    y = scale(bf.node(1.0), 2)
    with pytest.raises(ValueError, match="no trainable parameter influenced"):
        y.backward("bad")


def test_minimal_subgraph_is_exactly_the_paths_plus_direct_inputs():
    x = bf.param(1.0, name="x")
    z = bf.param(5.0, name="z")  # not on a path to the output
    c = bf.node(4.0, name="c")
    unrelated = bf.node(7.0, name="u") * 2  # feeds nothing with feedback
    a = x + c  # on path
    side = c * 3  # direct input of `out`, not on a path from x
    out = a * side
    _ = z * unrelated
    out.backward("too big")
    sub = bf.minimal_subgraph([x, z])
    ids = {id(n) for n in sub.nodes}
    assert {id(x), id(a), id(out), id(c), id(side)} <= ids
    assert id(z) not in ids and id(unrelated) not in ids
    assert sub.params == [x] and sub.outputs == [out]
    assert [n.id for n in sub.nodes] == sorted(n.id for n in sub.nodes)
    assert sub.distance[x] == 0 and sub.distance[out] == 2


def test_long_chain_is_iterative_and_linear():
    x = bf.param(0.0, name="x")
    y = x
    for _ in range(20_000):  # far past the recursion limit
        y = y + 1
    assert 20_000 > sys.getrecursionlimit()
    y.backward("should be 0")
    sub = bf.minimal_subgraph([x])
    assert len(sub) == 1 + 20_000 + 1  # x, each add, and the one shared constant 1
    r = bf.render([x], budget_tokens=500)
    assert r.tokens <= 500 and "x (float)" in r.text


def test_small_int_constants_share_a_node_and_still_render_inline():
    x = bf.param(2.0, name="x")
    a, b = x + 1, x * 1
    assert a.args[1] is b.args[1]  # one immutable node for the int 1
    assert (x + 1_000).args[1] is not (x + 1_000).args[1]  # other constants: a node per use
    assert (x + 1.5).args[1] is not (x + 1.5).args[1]
    out = a + b
    out.backward("smaller")
    with pytest.raises(ValueError, match="no trainable parameter"):
        a.args[1].backward("a constant has no parameter behind it")
    assert a.args[1].feedback == []  # the shared node took no feedback
    r = bf.render([x])
    assert "add0 = add(a=x, b=1) -> 3.0" in r.text and "mul0 = mul(a=x, b=1) -> 2.0" in r.text


def _chain_with_error():
    x = bf.param(1.0, name="x", description="the offset", constraint="keep it positive")

    @bf.op
    def fail(v):
        """Fails on purpose."""
        raise RuntimeError("boom " * 50)

    y = x
    for _ in range(300):
        y = scale(y, 1) + 1
    out_ok = y * 2
    out_ok.backward("output should be larger; " + "detail " * 40)
    with pytest.raises(bf.ExecutionError) as info:
        fail(y)
    info.value.node.backward("the call failed")
    return x, out_ok, info.value.node


@pytest.mark.parametrize("budget", [230, 300, 500, 1_000, 3_000, 100_000])
def test_render_never_exceeds_budget_and_keeps_essentials(budget):
    x, out, err = _chain_with_error()
    r = bf.render([x], budget_tokens=budget)
    assert r.tokens <= budget
    assert "x (float)" in r.text and "keep it positive" in r.text
    assert "output should be larger" in r.text and "the call failed" in r.text
    assert "#Errors" in r.text and "RuntimeError" in r.text
    assert r.names[id(out)] in r.text and r.names[id(err)] in r.text
    if budget < 10_000:
        assert r.elided and "#Elided" in r.text
    else:
        assert not r.elided


def test_render_collapses_runs_and_elides_long_values():
    x = bf.param("seed", name="x")
    y = x
    for _ in range(200):
        y = y + "a" * 30
    y.backward("shorter please")
    full = bf.render([x])
    assert "chars elided]" in full.text  # the long output value is cut with a marker
    r = bf.render([x], budget_tokens=400)
    assert "[add] repeated" in r.text and "similar operations collapsed" in r.text
    assert r.tokens <= 400


def test_render_collapses_repeating_patterns():
    x, _, _ = _chain_with_error()
    r = bf.render([x], budget_tokens=1_500)
    assert "[scale, add] repeated" in r.text and r.tokens <= 1_500


def test_render_shows_docs_once_and_constraints():
    x = bf.param(2.0, name="x", bounds=(0, 10), description="the offset")
    y = scale(scale(x, 2), 3)
    y.backward("too small")
    text = bf.render([x]).text
    assert text.count("Multiply v by factor.") == 1
    assert "x (float, bounds [0, 10]): the offset" in text
    assert "scale0 = scale(v=x, factor=2) -> 4.0" in text
    assert "scale1 = scale(v=scale0, factor=3) -> 12.0" in text
    assert "scale1: too small" in text


def test_render_raises_when_essentials_cannot_fit():
    x = bf.param(1.0, name="x")
    (x * 2).backward("no")
    with pytest.raises(RenderBudgetError, match="cannot render within 5 tokens"):
        bf.render([x], budget_tokens=5)


def test_dot_export():
    x = bf.param(1.0, name="x")
    y = scale(x, 2)
    y.backward("bigger")
    dot = bf.to_dot([x])
    assert dot.startswith("digraph backfeed {") and dot.rstrip().endswith("}")
    assert "n0 -> n2" in dot and "shape=box" in dot  # x, the constant, then y
    assert bf.to_dot([x]) == dot  # ids are local to the subgraph, so runs compare equal


def test_dot_draws_a_shared_constant_once_per_use():
    x = bf.param(1.0, name="x")
    y = x
    for _ in range(3):
        y = y + 1  # one shared node for the int 1
    y.backward("less")
    dot = bf.to_dot([x])
    sources = [line.split(" -> ")[0].strip() for line in dot.splitlines() if 'label="b"' in line]
    assert sources == ["n1", "n1_1", "n1_2"]  # each add gets its own "1", as in the prompt
    assert dot.count('[label="1", shape=plaintext]') == 3


def test_graph_freed_when_outputs_dropped():
    x = bf.param(1.0, name="x")
    y = scale(x + 1, 2)
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None  # the parameter does not keep its consumers alive
    y = scale(x + 1, 2)
    y.backward("more")
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is not None  # feedback keeps it until zero_feedback
    bf.zero_feedback([x])
    gc.collect()
    assert ref() is None


def test_threads_trace_independently():
    params = [bf.param(float(i), name=f"p{i}") for i in range(16)]
    errors = []

    def work(i):
        try:
            p = params[i]
            for _ in range(100):
                y = p
                for _ in range(64):
                    y = scale(y, 1) + 0
                if i % 2:
                    with bf.no_trace():
                        plain = scale(p, 2)
                    assert plain == p.value * 2
                sub = bf.minimal_subgraph([p], [y])
                assert sub.params == [p] and len(sub) == 1 + 64 * 2 + 2  # ops, then the constants 1 and 0
                assert y.value == p.value
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_render_budget_holds_on_random_graphs():
    import random

    rng = random.Random(0)
    rendered = 0
    for trial in range(25):
        params = [bf.param(rng.random(), name=f"p{i}") for i in range(rng.randint(1, 3))]
        pool = list(params)
        for _ in range(rng.randint(5, 400)):
            a, b = rng.choice(pool), rng.choice([*pool, rng.random(), "s" * rng.randint(0, 300)])
            if isinstance(b, str):
                node = bf.len(bf.format("{a}{b}", a=a, b=b)) * 1.0
            else:
                kind = rng.randrange(3)
                node = a + b if kind == 0 else a * b if kind == 1 else scale(a, 2)
            pool.append(node)
        for out in pool[-rng.randint(1, 4):]:
            out.backward("feedback " * rng.randint(1, 60))
        budget = rng.choice([120, 250, 600, 2_000, 8_000])
        try:
            r = bf.render(params, budget_tokens=budget)
        except RenderBudgetError as exc:
            # only a budget too small for what is never dropped: each output with feedback
            # keeps a line of its feedback, and the parameters keep theirs
            needed = int(re.search(r"need ~(\d+) tokens", str(exc)).group(1))
            assert needed > budget, (trial, budget, str(exc))
            assert budget <= 250, (trial, budget, str(exc))
            continue
        rendered += 1
        assert r.tokens <= budget, (trial, budget, r.tokens)
        for p in r.names and [p for p in params if p.feedback]:
            assert f"{p.name} (float)" in r.text
    assert rendered >= 15, rendered  # the property was checked, not skipped


def test_render_order_follows_feedback_order_not_creation_order():
    """Threads (or a resumed run) may build examples in any order; the prompt must not change."""

    def run(build_order):
        w = bf.param(1.0, name="w")
        outs = {}
        for k in build_order:
            outs[k] = scale(w + k, 2)
        for k in (1, 2, 3):  # feedback in example order
            outs[k].backward(f"example {k}")
        return bf.render([w]).text, bf.to_dot([w])

    assert run([1, 2, 3]) == run([3, 1, 2])


def test_render_budget_counts_digits_as_tokens():
    from backfeed._tokens import estimate_tokens

    assert estimate_tokens("abcd") == 1 and estimate_tokens("1234") == 4
    assert estimate_tokens("[1.5e+01, 2]") == 11  # ten digits and marks, one token each; "e " one
    x = bf.param(0.123456789, name="x")
    y = x
    for i in range(300):
        y = y * 1.000001 + i * 0.987654321  # values full of digits
    y.backward("smaller")
    for budget in (200, 400, 1_000):
        r = bf.render([x], budget_tokens=budget)
        assert r.tokens == estimate_tokens(r.text) <= budget


class _Counted:
    """A value that counts how often a prompt formats it."""

    formatted = 0

    def __repr__(self) -> str:
        _Counted.formatted += 1
        return "<counted>"


@bf.op
def step(v):
    """One step of a long loop."""
    return _Counted()


def test_render_formats_only_what_fits_on_a_huge_graph():
    x = bf.param(1.0, name="x")
    y = x
    for _ in range(20_000):
        y = step(y)
    y.backward("shorter")
    _Counted.formatted = 0
    r = bf.render([x], budget_tokens=500)
    assert r.tokens <= 500 and "[step] repeated, 19999 similar operations collapsed" in r.text
    # budget-bound work: a few hundred lines formatted at most, never one per node
    assert _Counted.formatted < 1_000, _Counted.formatted


def test_render_collapses_the_longest_runs_first_and_no_more_than_needed():
    x = bf.param(1.0, name="x")
    y = x
    for _ in range(60):
        y = scale(y, 1)
    for _ in range(4):
        y = step(y)
    y = bf.format("{v}!", v=y)
    y.backward("smaller")
    full = bf.render([x])
    budget = full.tokens - 200  # collapsing the 60 scales is enough; the 4 steps stay as lines
    r = bf.render([x], budget_tokens=budget)
    assert "[scale] repeated, 60 similar operations collapsed" in r.text
    assert "[step] repeated" not in r.text and r.text.count(" = step(") == 4
    assert r.tokens <= budget


def test_render_counts_the_values_it_dropped_and_leaves_the_callers_names_alone():
    import re

    from backfeed.graph.render import _names, _Renderer

    x = bf.param("seed", name="x")
    y = x
    for i in range(12):  # distinct ops, so nothing collapses: only values are dropped
        y = getattr(y, ["upper", "lower", "strip"][i % 3])() + ("v" * 50 + str(i))
    y.backward("shorter")
    sub = bf.minimal_subgraph([x])
    names = _names(sub)
    before = dict(names)
    renderer = _Renderer(sub, names, 400)
    budget_chars = len(renderer.text()) - 400
    text = renderer.fit(budget_chars, budget_chars // 4)
    assert names == before  # a long constant got a name inside the renderer only
    graph = text.split("#Graph (in order; -> value)\n")[1].split("\n#Feedback")[0].splitlines()
    without_value = [line for line in graph if " -> " not in line]
    noted = int(re.search(r"values of (\d+) nodes", text)[1])
    assert noted == len(without_value) > 0 and renderer.values_dropped == noted


@bf.op
def ask(prompt: str) -> str:
    """A stand-in for a model call."""
    return prompt.upper()


@pytest.mark.parametrize(("lose", "how"), [
    (lambda p: f"{p} What is 2+2?", "an f-string or format()"),
    (lambda p: str(p) + " What is 2+2?", "str()"),
    (lambda p: p.value + " What is 2+2?", ".value"),
    (lambda p: "Q: {}".format(p.strip()), "an f-string or format()"),  # noqa: UP032 (str.format)
])
def test_a_lost_trace_names_the_parameter_and_how_it_was_lost(lose, how):
    system = bf.param("Answer briefly.", name="system")
    out = ask(lose(system))
    with pytest.raises(bf.graph.NoTrainableAncestor) as info:
        out.backward("too long")
    message = str(info.value)
    assert f"'system' (through {how})" in message and "bf.format" in message
    fixed = ask(bf.format("{p} What is 2+2?", p=system))
    assert fixed.backward("too long") == [system]


def test_an_output_with_no_parameter_behind_it_lists_the_common_causes():
    unrelated = bf.param("Answer briefly.", name="unrelated")
    assert f"{unrelated}" == "Answer briefly."  # turned into text, but never reaches the output
    with pytest.raises(bf.graph.NoTrainableAncestor, match=r"Common causes: an f-string, str\(\)"):
        ask(bf.node("What is 2+2?")).backward("bad")
