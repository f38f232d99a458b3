"""Cheap, dependency-free token estimate shared by rendering, prompts and budgets."""

from __future__ import annotations

CHARS_PER_TOKEN = 4
_NO_DIGITS = str.maketrans("", "", "0123456789")


def estimate_tokens(text: str) -> int:
    """Estimate the token count of `text`, erring high: about four characters a token for
    words, but one token per digit (Qwen and Llama tokenizers split numbers into digits, so
    number-heavy text would otherwise be under-counted up to fourfold)."""
    digits = len(text) - len(text.translate(_NO_DIGITS))
    return (len(text) - digits + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + digits
