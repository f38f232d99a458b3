"""Model access: the protocol, backends and the policies wrapped around them.

Heavy backends (litellm, xllamacpp) are imported only when a call needs them.
"""

from .base import LLM, BaseLLM, Completion, LLMError, Message, Usage
from .cache import Cached, ResponseCache, no_cache
from .cassette import CassetteMiss, Recorder, Replay
from .context import chosen, current, using
from .defaults import default
from .errors import (
    AuthenticationError,
    ContextLengthError,
    LLMTimeout,
    RateLimitError,
    ServerError,
    TransientError,
)
from .limits import Limited, Limiter
from .litellm_backend import LiteLLM
from .local import Local, ModelInstallError
from .meter import Metered, Spend
from .openai_compat import OpenAICompatible
from .policies import with_policies
from .retry import Retrying
from .scripted import Scripted, ScriptedCall, ScriptExhausted
from .wrap import Wrapper

__all__ = [
    "LLM",
    "AuthenticationError",
    "BaseLLM",
    "Cached",
    "CassetteMiss",
    "Completion",
    "ContextLengthError",
    "LLMError",
    "LLMTimeout",
    "Limited",
    "Limiter",
    "LiteLLM",
    "Local",
    "Message",
    "Metered",
    "ModelInstallError",
    "OpenAICompatible",
    "RateLimitError",
    "Recorder",
    "Replay",
    "ResponseCache",
    "Retrying",
    "ScriptExhausted",
    "Scripted",
    "ScriptedCall",
    "ServerError",
    "Spend",
    "TransientError",
    "Usage",
    "Wrapper",
    "chosen",
    "current",
    "default",
    "no_cache",
    "using",
    "with_policies",
]
