"""Prompt Studio: a GraphQL server for prompt registries, deployments and LLM executions."""
