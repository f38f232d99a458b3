"""Reliability measurements (issue 14): fault injection, crash trials, load, fuzzing, secrets."""
