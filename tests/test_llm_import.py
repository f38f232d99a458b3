"""`import backfeed` stays light: no provider SDK, no heavy dependency."""

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ["litellm", "openai", "xllamacpp", "ray", "optuna", "starlette", "anthropic", "httpx"]


def test_import_backfeed_loads_no_provider_sdk():
    code = (
        "import sys, json; import backfeed, backfeed.llm; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_constructing_backends_imports_no_sdk_until_a_call(tmp_path):
    code = (
        "import sys, json, backfeed as bf\n"
        "bf.llm.LiteLLM('gpt-4o-mini', api_key='x')\n"
        "bf.llm.Local('qwen2.5-coder-0.5b')\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
