"""Projects in GraphQL: Project (with every field on it), ProjectSettings, ProjectMember,
ProviderCredential; Query.project / projects; createProject, updateProject, members, credentials."""
