"""Traces and spans: Trace, Span, Project.traces/trace, Execution.trace, Subscription.projectTraces, and
Mutation.ingestSpans (OTLP/HTTP ingest itself is app/http/otlp.py)."""
