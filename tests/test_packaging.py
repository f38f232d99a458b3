"""The project's own install files: valid extras, and README commands that CI really runs."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_extra_is_a_list_of_requirements():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"local", "test", "ui", "ray", "numeric", "litellm"} <= set(extras)
    for name, requirements in extras.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), f"extra {name!r} is not a plain name"
        assert isinstance(requirements, list) and requirements, name


def test_readme_starts_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    install_demo, tests = (line.split("#")[0].strip() for line in block[:2])
    assert install_demo.endswith("backfeed demo") and "pip install" in install_demo
    ci = (ROOT / ".ci" / "run").read_text()
    install, run = (part.strip() for part in tests.split("&&"))
    assert install in ci and run in ci
