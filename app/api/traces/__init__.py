"""Traces and spans: Trace, Span, Project.traces/trace, Execution.trace, Subscription.projectTraces."""
