"""Traced model calls inside user programs: `bf.chat`, `bf.achat` and `bf.Prompt` (uses graph
and llm; graph imports neither, so bf.chat is not in graph/)."""

from .chat import achat, chat
from .prompt import Prompt, SignatureError

__all__ = ["Prompt", "SignatureError", "achat", "chat"]
