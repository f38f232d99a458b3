"""OpenTelemetry: read a deployed app's GenAI spans into a dataset (ingest, the collect
receiver), feedback on its traces, and a run's own model calls as spans (export.Telemetry)."""

from .app import RecordedApp, recorded_app
from .feedback import default_feedback_path, feedback
from .ingest import IngestReport, ingest, records
from .otlp import Span, Spans, read_text

__all__ = ["IngestReport", "RecordedApp", "Span", "Spans", "default_feedback_path", "feedback", "ingest",
           "read_text", "recorded_app", "records"]
