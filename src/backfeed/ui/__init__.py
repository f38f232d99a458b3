"""The dashboard and the run commands: read-only views over the run store (no web import here)."""
