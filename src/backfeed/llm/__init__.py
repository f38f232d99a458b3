"""Model access: the protocol, backends and the policies wrapped around them."""

from .base import LLM, BaseLLM, Completion, LLMError, Message, Usage
from .meter import Metered, Spend
from .scripted import Scripted, ScriptedCall, ScriptExhausted

__all__ = [
    "LLM",
    "BaseLLM",
    "Completion",
    "LLMError",
    "Message",
    "Metered",
    "ScriptExhausted",
    "Scripted",
    "ScriptedCall",
    "Spend",
    "Usage",
]
