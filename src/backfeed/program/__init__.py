"""Traced model calls inside user programs: `bf.chat` and `bf.achat` (uses graph and llm;
graph imports neither, so bf.chat is not in graph/)."""

from .chat import achat, chat

__all__ = ["achat", "chat"]
