"""Benchmarks: tasks from the field and a harness that runs backfeed and its peers side by side."""
