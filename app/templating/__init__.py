"""The prompt-content layer: data classes, validation, variable inference, rendering, hashing.

Pure Python: no database, no GraphQL. Modules:

- `model`: `PromptContent` and friends, the canonical form and `content_hash`.
- `validation`: `validate_content`, `infer_variables`.
- `rendering`: `render` (never raises), `render_in_thread` for async callers.
- `mustache` / `jinja`: the two template engines (no HTML escaping; sandboxed and bounded).
- `values`: variable names, types and how values read as text.
- `limits`: bounds of a render (output size, steps, time).
- `diff`: canonical text of a version and the difference between two versions.
"""

from app.templating.diff import ContentDiff, DiffLine, Hunk, canonical_text, diff_contents
from app.templating.limits import DEFAULT_LIMITS, RenderLimitExceeded, RenderLimits
from app.templating.model import (
    FORMATS,
    KINDS,
    ROLES,
    VARIABLE_TYPES,
    ChatMessage,
    ContentError,
    PromptContent,
    RenderOutcome,
    VariableSpec,
    canonical_dict,
    canonical_json,
    content_hash,
)
from app.templating.rendering import bind_variables, render, render_in_thread
from app.templating.validation import infer_variables, inferred_specs, validate_content

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "KINDS",
    "ROLES",
    "VARIABLE_TYPES",
    "ChatMessage",
    "ContentDiff",
    "ContentError",
    "DiffLine",
    "Hunk",
    "PromptContent",
    "RenderLimitExceeded",
    "RenderLimits",
    "RenderOutcome",
    "VariableSpec",
    "bind_variables",
    "canonical_dict",
    "canonical_json",
    "canonical_text",
    "content_hash",
    "diff_contents",
    "infer_variables",
    "inferred_specs",
    "render",
    "render_in_thread",
    "validate_content",
]
