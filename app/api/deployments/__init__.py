"""Deployments in GraphQL: Deployment, ResolvedPrompt, Query.resolvePrompt (the hot path) and the
deployment mutations. It supplies Prompt.deployments / deploymentHistory and
PromptVersion.deployments (``resolvers``)."""
