"""Identity in GraphQL: User, ApiKey, AuditEvent; viewer and users; signUp, logIn, logOut and API keys.

It supplies Project.apiKeys and Project.auditEvents (``resolvers``).
"""
