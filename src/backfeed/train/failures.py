"""Model failures that end a run: what went wrong, with which model, and how to fix it."""

from __future__ import annotations

from ..budget import RunStop
from ..llm import LLMError, ScriptExhausted, TransientError


class ModelFailed(RunStop, RuntimeError):
    """A model call failed in a way that retrying in this run cannot fix; the run is stopped and
    can be resumed once the cause is fixed. `fatal`: the request itself is wrong (credentials,
    model name, request), not a passing outage."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


def _status(exc: BaseException) -> int | None:
    for e in (exc, exc.__cause__):
        status = getattr(e, "status_code", None) or getattr(e, "status", None)
        if isinstance(status, int):
            return status
    return None


def _names(exc: BaseException) -> str:
    return " ".join(type(e).__name__.lower() for e in (exc, exc.__cause__) if e is not None)


def model_failure(exc: Exception, *, model: str, role: str, run_id: str) -> ModelFailed:
    """One line naming the model, what failed and the fix, for an error that reached the trainer
    (that is, after the model's own retry policy gave up)."""
    status, names, text = _status(exc), _names(exc), f"{type(exc).__name__}: {exc}"
    text = text.splitlines()[0] if text.strip() else type(exc).__name__
    who = f"the {role}'s model {model!r}" if model else f"the {role}'s model"
    resume = f"; then resume with bf.train(..., resume={run_id!r})"
    missing = next((e for e in (exc, exc.__cause__) if isinstance(e, ImportError)), None)
    if missing is not None:  # e.g. LiteLLM without litellm installed: not the model's name
        return ModelFailed(f"{who} cannot be made: a package is missing ({text}): install it"
                           f"{resume}", fatal=True)
    if isinstance(exc, ScriptExhausted):
        return ModelFailed(f"{who} ran out of answers ({text}): queue more responses in "
                           f"bf.llm.Scripted{resume}", fatal=True)
    if status in (401, 403) or "auth" in names or "permission" in names:
        return ModelFailed(f"{who} refused the credentials ({text}): set the provider's API key "
                           f"in the environment{resume}", fatal=True)
    if status == 404 or "notfound" in names:
        return ModelFailed(f"{who} is unknown to the provider ({text}): check the model name "
                           f"(e.g. 'openai/gpt-4o-mini'){resume}", fatal=True)
    transient = any(isinstance(e, TransientError) for e in (exc, exc.__cause__))
    if transient or status in (408, 409, 429) or (status or 0) >= 500 \
            or "connection" in names or "timeout" in names or "ratelimit" in names:
        return ModelFailed(f"{who} kept failing after retries ({text}): check the service or "
                           f"the network{resume}", fatal=False)
    if status in (400, 422) or "badrequest" in names or isinstance(exc, LLMError | ValueError):
        return ModelFailed(f"{who} rejected the request ({text}): check the model's options "
                           f"(max_tokens, json_schema, temperature){resume}", fatal=True)
    return ModelFailed(f"{who} failed ({text}): fix what the error names (the model's backend "
                       f"or its options){resume}", fatal=False)
