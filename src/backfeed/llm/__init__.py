"""Model access: the protocol, backends and the policies wrapped around them."""

from .base import LLM, BaseLLM, Completion, LLMError, Message, Usage
from .scripted import Scripted, ScriptedCall, ScriptExhausted

__all__ = [
    "LLM",
    "BaseLLM",
    "Completion",
    "LLMError",
    "Message",
    "ScriptExhausted",
    "Scripted",
    "ScriptedCall",
    "Usage",
]
