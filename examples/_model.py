"""Pick the model from the command line: `local` (embedded, offline) or any litellm model name."""

from __future__ import annotations

import argparse

import backfeed as bf


def model_from_args(description: str) -> tuple[bf.llm.LLM, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("model", nargs="?", default="local",
                        help="'local' (the embedded 0.5B model), 'local-1.5b', or a litellm "
                             "model such as gpt-4o-mini")
    parser.add_argument("--calls", type=int, default=6, help="LLM-call budget for training")
    parser.add_argument("--steps", type=int, default=3,
                        help="optimizer steps, for examples whose program calls the model too "
                             "(those calls count against a budget, so they run by steps)")
    args = parser.parse_args()
    if args.model == "local":
        return bf.llm.Local(), args
    if args.model == "local-1.5b":
        return bf.llm.Local("qwen2.5-coder-1.5b"), args
    return bf.llm.LiteLLM(args.model), args
