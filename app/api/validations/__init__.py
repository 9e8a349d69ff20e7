"""Validations in GraphQL: Validation, ValidationResult; createValidation, updateValidation,
deleteValidation. It supplies Prompt.validations (``resolvers``); executions use ValidationResult."""
