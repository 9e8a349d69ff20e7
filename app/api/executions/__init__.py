"""Executions in GraphQL: Execution, its logs, events and feedback, VersionStats; executePrompt,
cancelExecution, submitFeedback; the live subscriptions executionUpdated and projectExecutions.
It supplies Project.executions, Prompt.executions / splitReport and PromptVersion.stats
(``resolvers``)."""
