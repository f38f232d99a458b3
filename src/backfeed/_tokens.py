"""Cheap, dependency-free token estimate shared by rendering, prompts and budgets."""

from __future__ import annotations

import string

CHARS_PER_TOKEN = 4
# Digits and punctuation: BPE tokenizers (Qwen and Llama split numbers into single digits) give
# these about one token each, so arrays and numbers would be under-counted up to fourfold.
_DENSE = str.maketrans("", "", string.digits + string.punctuation)


def estimate_tokens(text: str) -> int:
    """Estimate the token count of `text`, erring high: about four characters a token for
    words and spaces, one token per digit or punctuation mark."""
    light = len(text.translate(_DENSE))
    return (light + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + len(text) - light
