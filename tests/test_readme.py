"""Every Python block of README.md runs as written, alone, as a script from the repository root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", (ROOT / "README.md").read_text(),
                    re.S | re.M)


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) >= 12


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_python_block_runs_as_written(index, tmp_path):
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the repository root's layout
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(textwrap.dedent(BLOCKS[index]))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path),  # the run store goes here
           "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"README block {index}:\n{BLOCKS[index]}\n{done.stderr[-2000:]}"
