"""Validation rules (REGEX, JSON_SCHEMA, JMESPATH): checking a rule's config and applying rules to an
output, and the static analysis of regular expressions. Pure functions on plain data — no database,
no network — meant to run inside the sandbox (``app.sandbox``), never in the server process."""
