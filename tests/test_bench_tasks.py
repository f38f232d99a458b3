"""The benchmark tasks: generators are deterministic, known answers score 1, wrong ones lower."""

from __future__ import annotations

import pytest
from benchmarks.tasks import SUITES, make_task, task_names
from benchmarks.tasks import bbh as bbh_mod
from benchmarks.tasks.battleship import Board
from benchmarks.tasks.numeric import apply_steps, generate

import backfeed as bf

BBH = [f"bbh/{name}" for name in bbh_mod.SUBTASKS]


def test_registry_lists_every_family_and_suites_name_known_tasks():
    names = task_names()
    for family in ("numeric", "bbh/", "battleship", "sklearn", "vml/", "control/",
                   "code_repair/"):
        assert any(n.startswith(family) for n in names), family
    for suite in SUITES.values():
        assert set(suite) <= set(names)


def test_unknown_task_and_size_are_named_in_the_error():
    with pytest.raises(KeyError, match="nope"):
        make_task("nope")
    with pytest.raises(ValueError, match="huge"):
        make_task("numeric", size="huge")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make_task("numeric").split("dev")


def test_llm_tasks_require_a_model():
    with pytest.raises(ValueError, match="pass llm="):
        make_task("bbh/dyck").program()


@pytest.mark.parametrize("name", [*BBH, "numeric", "battleship", "sklearn", "vml/regression",
                                  "vml/classification", "control/cartpole"])
def test_generators_are_deterministic_with_the_seed(name):
    a, b, c = make_task(name, seed=3), make_task(name, seed=3), make_task(name, seed=4)
    assert (a.trainset, a.valset, a.testset) == (b.trainset, b.valset, b.testset)
    if name != "sklearn":  # sklearn's seed changes the split, not the fold names
        assert (a.trainset, a.testset) != (c.trainset, c.testset)
    assert a.testset and a.trainset and a.valset


def test_numeric_known_input_scores_one_and_start_scores_lower():
    task = make_task("numeric", seed=1)
    program = task.program()
    start = task.evaluate(program)
    assert start.score < 1
    assert "target" in start.feedbacks[0].text
    program.x.value = task.info["x_star"]
    assert task.evaluate(program).score == 1.0
    steps, x_star, target = generate(1, 6)
    assert apply_steps(steps, x_star) == target


def test_numeric_feedback_says_which_way_and_gradient_baseline_runs():
    task = make_task("numeric", seed=0)
    target = task.info["target"]
    low = task.metric(("evaluate", target), target - 5)
    high = task.metric(("evaluate", target), bf.node(target + 1))
    assert "too small" in low.text and "too large" in high.text
    assert low.score < high.score < 1
    assert task.metric(("evaluate", target), float("nan")).score == 0
    baseline = task.info["baseline"](20)
    assert baseline["iterations"] == 20 and 0 < baseline["score"] <= 1


def test_numeric_program_traces_back_to_x():
    task = make_task("numeric", seed=2)
    program = task.program()
    y = task.run(program, task.trainset[0])
    assert isinstance(y, bf.Node)
    assert program.x in y.backward("too small")


@pytest.mark.parametrize("name", BBH)
def test_bbh_known_answers_score_one_and_wrong_answers_zero(name):
    task = make_task(name, seed=0)
    for question, answer in task.testset:
        assert task.metric((question, answer), f"Reasoning...\nAnswer: {answer}").score == 1
        assert task.metric((question, answer), "Answer: 99/99/9999 < zzz falsy").score == 0
    wrong = task.metric(task.testset[0], "no idea")
    assert "expected answer" in wrong.text and "Answer: <answer>" in wrong.text


def test_bbh_generators_give_correct_answers():
    q, a = bbh_mod.boolean_expressions(__import__("random").Random(1))
    assert a == str(eval(q.removesuffix(" is")))
    q, a = bbh_mod.word_sorting(__import__("random").Random(2))
    assert a.split() == sorted(q.split("List: ")[1].split())
    q, a = bbh_mod.dyck(__import__("random").Random(3))
    full = q.split("Input: ")[1].split() + a.split()
    stack = []
    for ch in full:
        if ch in bbh_mod.BRACKETS:
            stack.append(ch)
        else:
            assert bbh_mod.BRACKETS[stack.pop()] == ch
    assert not stack


def test_bbh_program_asks_the_model_with_the_instruction():
    task = make_task("bbh/object_counting", seed=0)
    question, answer = task.testset[0]
    llm = bf.llm.Scripted([f"Answer: {answer}", "Answer: 0"])
    program = task.program(llm)
    program.instruction.value = "Count carefully."
    assert task.check(program, (question, answer)).score == 1
    assert task.check(program, (question, answer)).score == 0
    assert llm.calls[0].messages[0]["content"] == "Count carefully."
    assert llm.calls[0].messages[1]["content"] == question
    assert [p.name for p in program.parameters()] == ["instruction"]


def test_battleship_board_is_seeded_and_valid():
    a, b = Board(8, [4, 3, 2], 5), Board(8, [4, 3, 2], 5)
    assert a.occupied == b.occupied and len(a.occupied) == 9
    assert a.fire([0, 0]) in ("hit", "miss") and a.fire([0, 0]) == "repeat"
    assert a.fire([9, 0]).startswith("invalid") and a.fire("A1").startswith("invalid")


def test_battleship_known_shots_score_one_and_scanning_lower():
    task = make_task("battleship", seed=0)
    program = task.program()
    start = task.evaluate(program)
    assert 0 < start.score < 1
    assert "Final view" in start.feedbacks[0].text
    game = task.testset[0]
    cells = sorted(Board(task.info["board"], task.info["ships"], game[0]).occupied)
    program.next_shot.code.value = (
        "def next_shot(self, view):\n"
        f"    for r, c in {[list(c) for c in cells]}:\n"
        "        if view[r][c] == '.':\n"
        "            return [r, c]\n"
        "    return [0, 0]\n"
    )
    assert task.check(program, game).score == 1


def test_battleship_reports_errors_and_invalid_shots():
    task = make_task("battleship", seed=0)
    program = task.program()
    program.next_shot.code.value = "def next_shot(self, view):\n    return 1 / 0\n"
    feedback = task.check(program, task.testset[0])
    assert feedback.score == 0 and "ZeroDivisionError" in feedback.text
    program.next_shot.code.value = "def next_shot(self, view):\n    return [99, 0]\n"
    feedback = task.check(program, task.testset[0])
    assert feedback.score == 0 and "invalid shots" in feedback.text
    output = task.run(program, task.testset[0])
    assert program.next_shot.code in output.backward(feedback)


def test_sklearn_metric_and_tuning_improves_score():
    task = make_task("sklearn", seed=0)
    perfect = task.metric(("fold0", None), {"accuracy": 1.0, "errors": 0, "false_negatives": 0,
                                            "false_positives": 0, "n_features": 30,
                                            "warnings": []})
    assert perfect.score == 1
    program = task.program()
    start = task.evaluate(program, "val")
    assert start.score < 0.95 and "accuracy" in start.feedbacks[0].text
    program.model.value, program.scale.value, program.C.value = "svm", True, 1.0
    assert task.evaluate(program, "val").score > start.score
    kinds = task.param_kinds()
    assert {"code", "str", "float", "int", "bool"} <= kinds
    program.engineer_features.code.value = "def engineer_features(self, X):\n    return X[:, :0]\n"
    assert "program raised" in task.check(program, ("fold0", None)).text


def test_vml_regression_and_classification():
    task = make_task("vml/regression", seed=0)
    x, y = task.testset[0]
    assert task.metric((x, y), f"y = {y:g}").score == 1
    assert task.metric((x, y), f"{y + 2:g}").score < task.metric((x, y), f"{y + 1:g}").score < 1
    assert "no number" in task.metric((x, y), "unsure").text
    program = task.program(bf.llm.Scripted([f"{y:g}"]))
    assert task.check(program, (x, y)).score == 1
    task = make_task("vml/classification", seed=0)
    point, label = task.testset[0]
    other = "B" if label == "A" else "A"
    assert task.metric((point, label), label).score == 1
    assert task.metric((point, label), f"Class: {other}").score == 0
    program = task.program(bf.llm.Scripted([label]))
    assert task.check(program, (point, label)).score == 1


def test_cartpole_known_controller_scores_one_and_default_lower():
    task = make_task("control/cartpole", seed=0)
    program = task.program()
    start = task.evaluate(program)
    assert start.score < 0.5 and "pole angle" in start.feedbacks[0].text
    program.act.code.value = (
        "def act(self, observation):\n"
        "    x, v, theta, omega = observation\n"
        "    return 1 if theta + 0.5 * omega + 0.01 * x + 0.1 * v > 0 else 0\n"
    )
    assert task.evaluate(program).score == 1
    program.act.code.value = "def act(self, observation):\n    return 'left'\n"
    assert "invalid action" in task.check(program, task.testset[0]).text


def test_mountaincar_metric_scales_return():
    task = make_task("control/mountaincar", seed=0)
    report = {"return": -100.0, "steps": 100, "ended": "reached the goal", "error": None,
              "last_observations": [], "max_position": 0.5}
    assert task.metric((0, None), report).score == 1
    assert task.metric((0, None), {**report, "return": -200.0}).score == 0
    program = task.program()
    assert task.evaluate(program).score == 0


@pytest.mark.parametrize("name", SUITES["full"])
def test_every_task_program_runs_with_a_scripted_llm(name):
    task = make_task(name, seed=0)
    llm = bf.llm.Scripted(["Answer: 1"] * 200)
    program = task.program(llm)
    assert program.parameters()
    evaluation = task.evaluate(program, "val")
    assert 0 <= evaluation.score <= 1
    assert all(isinstance(f, bf.Feedback) and f.text for f in evaluation.feedbacks)


# -- code repair ---------------------------------------------------------------------------

FIXES = {  # a correct rewrite of every buggy function, as a model would write it
    "median": "def median(xs):\n    s = sorted(xs)\n    n = len(s)\n    if n % 2:\n"
              "        return s[n // 2]\n    return (s[n // 2 - 1] + s[n // 2]) / 2\n",
    "count_vowels": "def count_vowels(text):\n    return sum(1 for ch in text.lower() if ch in "
                    "'aeiou')\n",
    "running_max": "def running_max(xs):\n    out = []\n    for x in xs:\n"
                   "        out.append(x if not out else max(out[-1], x))\n    return out\n",
    "sum_to": "def sum_to(n):\n    return sum(range(1, n + 1))\n",
    "is_sorted": "def is_sorted(xs):\n    return all(xs[i] <= xs[i + 1] for i in "
                 "range(len(xs) - 1))\n",
    "word_counts": "def word_counts(text):\n    counts = {}\n    for word in text.lower().split():"
                   "\n        counts[word] = counts.get(word, 0) + 1\n    return counts\n",
    "max_depth": "def max_depth(items):\n    def depth(x):\n        if not isinstance(x, list):\n"
                 "            return 0\n        return 1 + max((depth(y) for y in x), default=0)\n"
                 "\n    return depth(items)\n",
    "sort_by_length": "def sort_by_length(words):\n    return sorted(words, key=lambda w: "
                      "(len(w), w))\n",
    "round_to_multiple": "import math\n\ndef round_to_multiple(n, m):\n"
                         "    return math.floor(n / m + 0.5) * m\n",
    "chunks": "def chunks(xs, size):\n    return [xs[i:i + size] for i in range(0, len(xs), "
              "size)]\n",
    "flatten": "def flatten(items):\n    out = []\n\n    def walk(xs):\n        for x in xs:\n"
               "            if isinstance(x, list):\n                walk(x)\n"
               "            else:\n                out.append(x)\n\n    walk(items)\n    return out\n",
    "title_case": "def title_case(text):\n    return ' '.join(w[:1].upper() + w[1:].lower() "
                  "for w in text.split(' '))\n",
    "merge_counts": "def merge_counts(a, b):\n    out = dict(a)\n    for k, v in b.items():\n"
                    "        out[k] = out.get(k, 0) + v\n    return out\n",
    "second_largest": "def second_largest(xs):\n    s = sorted(set(xs))\n"
                      "    return s[-2] if len(s) > 1 else None\n",
    "binary_search": "def binary_search(xs, target):\n    lo, hi = 0, len(xs) - 1\n"
                     "    while lo <= hi:\n        mid = (lo + hi) // 2\n"
                     "        if xs[mid] == target:\n            return mid\n"
                     "        if xs[mid] < target:\n            lo = mid + 1\n"
                     "        else:\n            hi = mid - 1\n    return -1\n",
    "digit_sum": "def digit_sum(n):\n    return sum(int(d) for d in str(abs(n)))\n",
}
REPAIRS = [f"code_repair/{name}" for name in FIXES]


def test_code_repair_has_a_dozen_functions_of_varied_kinds():
    from benchmarks.tasks.code_repair import BUGS

    assert set(REPAIRS) <= set(task_names())
    assert len(BUGS) >= 12 and {bug.name for bug in BUGS} == set(FIXES)
    kinds = {bug.kind.split(" (")[0] for bug in BUGS}
    assert len(kinds) >= 9, kinds
    task = make_task("code_repair/median")
    (param,) = task.program().parameters()
    assert (param.name, param.kind) == ("median", "code")
    assert "mean of the two middle values" in param.description  # the spec
    assert param.value.startswith("def median(xs):")


@pytest.mark.parametrize("name", REPAIRS)
@pytest.mark.parametrize("size", ["quick", "full"])
def test_buggy_seed_fails_every_split_and_the_fix_passes_them(name, size):
    for seed in (0, 1):
        task = make_task(name, seed=seed, size=size)
        program = task.program()
        for split in ("train", "val", "test"):
            assert task.evaluate(program, split).score < 1, (split, seed)
        (param,) = program.parameters()
        param.value = FIXES[param.name]
        for split in ("train", "val", "test"):
            evaluation = task.evaluate(program, split)
            assert evaluation.score == 1, [f.text for f in evaluation.feedbacks if f.score < 1]


def test_code_repair_suite_lists_every_function_and_the_family_task_picks_one_per_seed():
    from benchmarks.tasks.code_repair import BUGS

    assert SUITES["code_repair"] == [f"code_repair/{bug.name}" for bug in BUGS]
    picked = [make_task("code_repair", seed=seed) for seed in range(3)]
    assert [t.info["function"] for t in picked] == [bug.name for bug in BUGS[:3]]
    assert {t.name for t in picked} == {"code_repair"}
    same_tests = make_task(f"code_repair/{BUGS[1].name}", seed=1)
    assert picked[1].testset == same_tests.testset


def test_code_repair_tests_are_seeded_and_split_without_overlap():
    a, b = make_task("code_repair/chunks", seed=2), make_task("code_repair/chunks", seed=2)
    c = make_task("code_repair/chunks", seed=3)
    assert (a.trainset, a.valset, a.testset) == (b.trainset, b.valset, b.testset)
    assert a.testset != c.testset
    inputs = [repr(x) for x, _ in a.trainset + a.valset + a.testset]
    assert len(inputs) == len(set(inputs)) == 16


def test_code_repair_feedback_shows_the_call_the_output_and_the_expected_value():
    task = make_task("code_repair/median", seed=0)
    program = task.program()
    feedback = task.check(program, (([5, 7],), 6.0))
    assert feedback.score == 0 and feedback.text == "median([5, 7]) returned 7, expected 6.0"
    assert task.check(program, (([1, 9, 4],), 4)).text == "median([1, 9, 4]) returned 4, as expected"
    assert task.metric(((1,), 3), 3.0).score == 1  # a number equal to the expected one passes
    assert make_task("code_repair/is_sorted").metric((([],), True), 1).score == 0  # 1 is no bool


def test_code_repair_error_feedback_names_the_error_and_its_line_and_traces_to_the_code():
    task = make_task("code_repair/digit_sum", seed=0)
    program = task.program()
    output = task.run(program, ((-47,), 11))
    feedback = task.metric(((-47,), 11), output)
    assert feedback.score == 0
    assert feedback.text.startswith("digit_sum(-47) raised ValueError: invalid literal")
    assert "at line 2 of digit_sum: return sum(int(d) for d in str(n)); expected 11" in feedback.text
    assert program.digit_sum.code in output.backward(feedback)
    program.digit_sum.code.value = "def digit_sum(n):\n    while True:\n        pass\n"
    assert "Timeout" in task.check(program, ((5,), 5)).text  # a loop that never ends is cut


def test_code_repair_runs_through_bf_train_with_a_scripted_optimizer(tmp_path):
    task = make_task("code_repair/sum_to", seed=0)
    program = task.program()
    answer = f"### sum_to\n```python\n{FIXES['sum_to']}```"
    result = bf.train(program, task.trainset, valset=task.valset, metric=task.metric,
                      optimizer=bf.optim.Prime(program.parameters(),
                                               llm=bf.llm.Scripted([answer] * 4)),
                      budget=bf.Budget(llm_calls=1), progress=False, run_dir=tmp_path)
    assert result is not None
    assert task.evaluate(program, "test").score == 1


@pytest.mark.parametrize("family", ["labels", "dates", "refund", "order_json"])
def test_a_convention_family_has_the_sizes_a_reference_and_feedback_that_reveals_it(family):
    task = make_task(f"convention/{family}", 1, "quick")
    assert (len(task.trainset), len(task.valset), len(task.testset)) == (8, 6, 12)
    texts = [q for q, _ in task.trainset + task.valset + task.testset]
    assert len(set(texts)) == len(texts)  # distinct examples
    assert task.info["reference_instruction"] and task.uses_llm
    example = task.testset[0]
    wrong = task.metric(example, "I am not sure.")
    assert wrong.score == 0.0 and repr(example[1]) in wrong.text  # the convention is shown
    assert task.metric(example, example[1]).score == 1.0
    assert make_task(f"convention/{family}", 1).testset == task.testset  # seeded
