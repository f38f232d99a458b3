"""`backfeed export --to files`, `Module.load(folder)` and `backfeed eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import backfeed as bf
from _export_program import DATA, Shouter, metric
from backfeed.cli import app
from backfeed.store import RunStore

PROGRAM = str(Path(__file__).parent / "_export_program.py")
runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "runs.db"
    program = Shouter()
    llm = bf.llm.Scripted(['{"suggestion": {"prompt": "say it LOUD", "gain": 2.5}}'] * 4)
    result = bf.train(program, DATA, valset=DATA, metric=metric,
                      optimizer=bf.optim.Prime(program.parameters(), llm=llm),
                      steps=1, store=path, progress=False)
    assert program.prompt.value == "say it LOUD"
    return path, result.run_id


def test_export_writes_text_code_values_and_a_manifest_with_each_values_step(run, tmp_path):
    path, run_id = run
    out = tmp_path / "deploy"
    result = runner.invoke(app, ["export", run_id, "--to", "files", "-o", str(out),
                                 "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert (out / "prompt.txt").read_text() == "say it LOUD"
    assert (out / "shout.py").read_text().startswith("def shout(self, word: str, prompt: str)")
    assert json.loads((out / "values.json").read_text()) == {"gain": 2.5,
                                                             "config": {"suffix": "!"}}
    manifest = json.loads((out / "manifest.json").read_text())
    store = RunStore(path, readonly=True)
    run_record = store.get_run(run_id)
    seed = store.candidates(run_id)[0]
    best = store.get_candidate(run_id, run_record.best_candidate)
    assert manifest["run"] == run_id and manifest["score"] == run_record.best_score == 1.0
    assert manifest["model"] == "scripted" and manifest["program_model"] is None
    assert manifest["date"].endswith("Z")
    params = manifest["parameters"]
    assert params["prompt"] == {"kind": "text", "file": "prompt.txt", "step": best.step,
                                "candidate": best.id}
    assert params["shout"]["kind"] == "code" and params["shout"]["candidate"] == seed.id
    assert params["config"] == {"kind": "dict", "file": "values.json", "step": seed.step,
                                "candidate": seed.id}
    assert best.id != seed.id and seed.step == -1 and best.step == 0


def test_module_load_reads_an_exported_folder(run, tmp_path):
    path, run_id = run
    runner.invoke(app, ["export", run_id, "--to", "files", "-o", str(tmp_path),
                        "--store", str(path)])
    fresh = Shouter()
    fresh.load(tmp_path)
    assert fresh.state_dict() == {**Shouter().state_dict(), "prompt": "say it LOUD",
                                  "gain": 2.5}
    assert fresh("x").value == "X"


def test_module_load_of_a_folder_without_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="backfeed export RUN --to files"):
        Shouter().load(tmp_path)


def test_export_to_files_needs_a_folder_and_a_scored_run(run, tmp_path):
    path, run_id = run
    result = runner.invoke(app, ["export", run_id, "--to", "files", "--store", str(path)])
    assert result.exit_code == 1 and "-o DIR" in result.output


def test_eval_rescores_exported_values_and_compares_with_the_run(run, tmp_path):
    path, run_id = run
    runner.invoke(app, ["export", run_id, "--to", "files", "-o", str(tmp_path / "d"),
                        "--store", str(path)])
    args = ["eval", f"{PROGRAM}:Shouter", "--values", str(tmp_path / "d"),
            "--data", f"{PROGRAM}:DATA", "--metric", f"{PROGRAM}:metric"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "mean score 1.000 on 3 examples (the run's best score was 1.000)" in result.output
    Shouter().save(tmp_path / "seed.json")  # the seed's values score lower
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(ex) + "\n" for ex in DATA))
    args = ["eval", f"{PROGRAM}:Shouter", "--values", str(tmp_path / "seed.json"),
            "--data", str(data), "--metric", f"{PROGRAM}:metric", "--fail-under", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "mean score 0.000 on 3 examples" in result.output


def test_eval_names_a_bad_object_spec(tmp_path):
    result = runner.invoke(app, ["eval", "nocolon", "--values", str(tmp_path), "--data", "x",
                                 "--metric", "y"])
    assert result.exit_code == 1 and "FILE.py:NAME" in result.output


def test_eval_runs_program_chat_calls_on_the_chosen_model(tmp_path, monkeypatch):
    program = tmp_path / "echo.py"
    program.write_text(
        "import backfeed as bf\n"
        "class Echo(bf.Module):\n"
        "    def __init__(self):\n"
        "        self.prompt = bf.param('Repeat.', name='prompt')\n"
        "    def forward(self, x):\n"
        "        return bf.chat([{'role': 'system', 'content': self.prompt},\n"
        "                        {'role': 'user', 'content': x}])\n"
        "DATA = [['a', 'ok'], ['b', 'ok']]\n"
        "def metric(example, output):\n"
        "    return float(output == example[1])\n"
    )
    values = tmp_path / "values.json"
    values.write_text('{"prompt": "Say ok."}')
    monkeypatch.setattr(bf.llm, "LiteLLM", lambda name: bf.llm.Scripted(["ok", "ok"],
                                                                        model=name))
    result = runner.invoke(app, ["eval", f"{program}:Echo", "--values", str(values),
                                 "--data", f"{program}:DATA", "--metric", f"{program}:metric",
                                 "--model", "some-model", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "mean score 1.000 on 2 examples" in result.output


def test_eval_and_export_help_show_an_example():
    for args, example in ((["eval", "--help"], "Example: backfeed eval"),
                          (["export", "--help"], "--to files -o deploy/")):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and example in " ".join(result.output.split())


def _echo_program(tmp_path: Path, body: str = "bf.chat([{'role': 'user', 'content': question}])"
                  ) -> tuple[Path, Path]:
    program = tmp_path / "ask.py"
    program.write_text(
        "import backfeed as bf\n"
        "class Ask(bf.Module):\n"
        "    def __init__(self):\n"
        "        self.prompt = bf.param('Answer.', name='prompt')\n"
        "    def forward(self, question):\n"
        f"        return {body}\n"
        "DATA = [{'question': 'a', 'answer': 'ok'}, {'question': 'b', 'answer': 'ok'}]\n"
        "MODEL = bf.llm.Scripted(['ok', 'ok'])\n"
        "def metric(example, output):\n"
        "    return float(output == example['answer'])\n"
    )
    values = tmp_path / "values.json"
    values.write_text('{"prompt": "Say ok."}')
    return program, values


def test_eval_takes_a_model_object_from_a_file_and_the_inputs_of_dict_examples(tmp_path):
    program, values = _echo_program(tmp_path)
    result = runner.invoke(app, ["eval", f"{program}:Ask", "--values", str(values),
                                 "--data", f"{program}:DATA", "--metric", f"{program}:metric",
                                 "--model", f"{program}:MODEL", "--inputs", "question"])
    assert result.exit_code == 0, result.output
    assert "mean score 1.000 on 2 examples" in result.output


def test_eval_exits_non_zero_when_every_example_raised(tmp_path):
    program, values = _echo_program(tmp_path, body="1 / 0")
    result = runner.invoke(app, ["eval", f"{program}:Ask", "--values", str(values),
                                 "--data", f"{program}:DATA", "--metric", f"{program}:metric",
                                 "--inputs", "question"])
    assert result.exit_code == 1
    assert "error: every example raised (2 of 2)" in result.output
    assert "ZeroDivisionError" in result.output
    bad = runner.invoke(app, ["eval", f"{program}:Ask", "--values", str(values), "--data",
                              f"{program}:DATA", "--metric", f"{program}:metric",
                              "--model", f"{program}:DATA"])
    assert bad.exit_code == 1 and bad.output.startswith("error: ") and "is not a model" in \
        bad.output
