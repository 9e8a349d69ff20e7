"""The GraphQL plumbing every domain uses; nothing here knows a domain.

* ``context``     the per-request Context and ``Info`` (typed with it)
* ``relay``       global IDs, the Node interface, the node registry (``@node``), ``node``/``nodes``
* ``pagination``  Connection/Edge/PageInfo and keyset pages of a root list
* ``child_pages`` keyset pages of children for many parents in one statement (nested connections)
* ``loaders``     dataloader bases, rows by id, the caller's roles, rows the caller may see
* ``mutations``   the mutation convention: ``@mutation`` and ``run``
* ``errors``      UserError and the top-level GraphQL errors (UNAUTHENTICATED, BAD_USER_INPUT, ...)
* ``enums``       database enums exposed as GraphQL enums
* ``extensions``  schema extensions: masking of internal errors, logging
"""
