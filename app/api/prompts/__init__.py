"""The prompt registry in GraphQL: Prompt, PromptVersion, diffs, rendering, search and the registry's
mutations. It supplies Project.prompts / prompt / tags (``resolvers``)."""
