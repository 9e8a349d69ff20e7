"""Checking and normalising submitted prompt content, and inferring its variables.

Error paths (`ContentError.field`) are relative to the GraphQL ``content`` input:
``["kind"]``, ``["format"]``, ``["template"]``, ``["systemPrompt"]``, ``["messages"]``,
``["messages", "1", "role"]``, ``["messages", "1", "content"]``, ``["variables"]``,
``["variables", "0", "name"]`` (``type``, ``required``, ``defaultValue``, ``description``,
``options``), ``["modelSettings"]``, ``["modelSettings", "temperature"]``, ``["outputSchema"]``.
"""

from __future__ import annotations

from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from app.templating import jinja, mustache
from app.templating.analysis import TemplateAnalysis
from app.templating.model import (
    FORMATS,
    KINDS,
    MODEL_SETTINGS_KEYS,
    ROLES,
    VARIABLE_TYPES,
    ChatMessage,
    ContentError,
    PromptContent,
    VariableSpec,
    enum_str,
    normalise_model_settings,
    variable_from_dict,
)
from app.templating.values import check_value, describe, json_problem, name_problem, same_value

MAX_TEMPLATE_CHARS = 500_000
MAX_MESSAGES = 200
MAX_VARIABLES = 200
MAX_OPTIONS = 500
MAX_DESCRIPTION_CHARS = 5_000
MAX_STOP_SEQUENCES = 16


def analyse_source(source: str, fmt: str) -> TemplateAnalysis:
    """Analyse one template text in the given format (MUSTACHE or JINJA2)."""
    return jinja.analyse(source) if fmt == "JINJA2" else mustache.analyse(source)


def template_parts(content: PromptContent) -> list[tuple[list[str], str]]:
    """The template texts of content with their error paths, in reading order:
    the system prompt, then the template (TEXT) or each message (CHAT)."""
    parts: list[tuple[list[str], str]] = []
    if isinstance(content.system_prompt, str) and content.system_prompt:
        parts.append((["systemPrompt"], content.system_prompt))
    if enum_str(content.kind) == "CHAT":
        for i, message in enumerate(content.messages or []):
            if isinstance(message.content, str):
                parts.append((["messages", str(i), "content"], message.content))
    elif isinstance(content.template, str):
        parts.append((["template"], content.template))
    return parts


def analyse_content(content: PromptContent) -> tuple[TemplateAnalysis, list[ContentError]]:
    """Analyse every template of content; merged result and per-part syntax errors."""
    fmt = enum_str(content.format)
    merged = TemplateAnalysis()
    errors: list[ContentError] = []
    for path, source in template_parts(content):
        part = analyse_source(source, fmt)
        errors.extend(ContentError(list(path), message) for message in part.errors)
        for name in part.used:
            merged.use(name, structural=name in part.structural)
        merged.referenced |= part.referenced
    return merged, errors


def infer_variables(content: PromptContent) -> list[str]:
    """Names of the variables the templates use, in order of first appearance (system prompt
    first). Templates that do not parse contribute nothing. For Mustache, names used only
    inside sections are not included (see `app.templating.mustache`)."""
    return analyse_content(content)[0].used


def inferred_specs(content: PromptContent) -> list[VariableSpec]:
    """Variable specs for inferred names: required, JSON where the template uses the
    variable as data (sections, dotted lookups, loops, attribute access), else STRING."""
    return _specs_from(analyse_content(content)[0])


def _specs_from(analysis: TemplateAnalysis) -> list[VariableSpec]:
    return [
        VariableSpec(name=name, type="JSON" if name in analysis.structural else "STRING", required=True)
        for name in analysis.used
    ]


def validate_content(
    content: PromptContent, declared: list[VariableSpec] | None
) -> tuple[PromptContent, list[ContentError]]:
    """Check content and return it normalised, with the problems found (empty when valid).

    ``declared`` is the variable list the caller submitted (VariableSpecs or dicts), or None to
    infer the variables from the templates; ``content.variables`` is not consulted. Declared
    variables must match the templates: each one used must be declared, each one declared used.
    """
    errors: list[ContentError] = []

    def error(path: list[str], message: str) -> None:
        errors.append(ContentError(path, message))

    kind, fmt = enum_str(content.kind), enum_str(content.format)
    if kind not in KINDS:
        error(["kind"], f"kind must be one of {', '.join(KINDS)}; got {describe(kind)}")
    if fmt not in FORMATS:
        error(["format"], f"format must be one of {', '.join(FORMATS)}; got {describe(fmt)}")

    template, messages = content.template, content.messages
    system_prompt = content.system_prompt or None
    if system_prompt is not None and not isinstance(system_prompt, str):
        error(["systemPrompt"], f"the system prompt must be a string; got {describe(system_prompt)}")
        system_prompt = None

    if kind == "TEXT":
        if messages:
            error(["messages"], "a TEXT prompt has no messages: put the text in template, or use kind CHAT")
        messages = None
        if not isinstance(template, str) or not template.strip():
            error(["template"], "a TEXT prompt needs a non-empty template")
    elif kind == "CHAT":
        if template:
            error(["template"], "a CHAT prompt has no template: put the text in messages, or use kind TEXT")
        template = None
        messages = _check_messages(messages, error)

    for path, text in ((["systemPrompt"], system_prompt), (["template"], template)):
        if isinstance(text, str) and len(text) > MAX_TEMPLATE_CHARS:
            error(path, f"is {len(text)} characters long; at most {MAX_TEMPLATE_CHARS} are allowed")

    normalised = PromptContent(
        kind=kind,
        format=fmt,
        template=template,
        messages=messages,
        system_prompt=system_prompt,
        variables=[],
        model_settings=_check_model_settings(content.model_settings, error),
        output_schema=_check_output_schema(content.output_schema, error),
    )

    syntax_ok = fmt in FORMATS
    analysis = TemplateAnalysis()
    if syntax_ok:
        analysis, syntax_errors = analyse_content(normalised)
        errors.extend(syntax_errors)
        syntax_ok = not syntax_errors

    if declared is None:
        normalised.variables = _specs_from(analysis)
    else:
        normalised.variables = _check_declared(declared, error)
        if syntax_ok:
            names = {spec.name for spec in normalised.variables}
            for name in analysis.used:
                if name not in names:
                    error(
                        ["variables"],
                        f'variable "{name}" is used in the template but not declared; declare it, '
                        "or leave variables out to have them inferred",
                    )
            for i, spec in enumerate(normalised.variables):
                if name_problem(spec.name) is None and spec.name not in analysis.referenced:
                    error(
                        ["variables", str(i), "name"],
                        f'variable "{spec.name}" is declared but the template never uses it; '
                        "use it in the template or remove it",
                    )
    return normalised, errors


def _check_messages(messages: Any, error) -> list[ChatMessage] | None:
    if not messages:
        error(["messages"], "a CHAT prompt needs at least one message")
        return None
    if len(messages) > MAX_MESSAGES:
        error(["messages"], f"has {len(messages)} messages; at most {MAX_MESSAGES} are allowed")
    out: list[ChatMessage] = []
    for i, message in enumerate(messages):
        role: Any  # of any type until checked here
        text: Any
        if isinstance(message, dict):
            role, text = message.get("role"), message.get("content")
        else:
            role, text = message.role, message.content
        if isinstance(role, str):
            role = role.strip().lower()
        if role not in ROLES:
            error(["messages", str(i), "role"], f"role must be one of {', '.join(ROLES)}; got {describe(role)}")
        if not isinstance(text, str) or not text.strip():
            error(["messages", str(i), "content"], "a message needs non-empty content")
        elif len(text) > MAX_TEMPLATE_CHARS:
            error(
                ["messages", str(i), "content"],
                f"is {len(text)} characters long; at most {MAX_TEMPLATE_CHARS} are allowed",
            )
        out.append(ChatMessage(role=role, content=text))
    return out


def _check_declared(declared: list, error) -> list[VariableSpec]:
    if len(declared) > MAX_VARIABLES:
        error(["variables"], f"{len(declared)} variables are declared; at most {MAX_VARIABLES} are allowed")
    specs: list[VariableSpec] = []
    seen: set[str] = set()
    for i, raw in enumerate(declared):
        spec = raw if isinstance(raw, VariableSpec) else variable_from_dict(raw)
        base = ["variables", str(i)]
        vtype = enum_str(spec.type) or "STRING"
        problem = name_problem(spec.name)
        if problem is not None:
            error([*base, "name"], problem)
        elif spec.name in seen:
            error([*base, "name"], f'variable "{spec.name}" is declared more than once')
        seen.add(spec.name)
        if vtype not in VARIABLE_TYPES:
            error([*base, "type"], f"type must be one of {', '.join(VARIABLE_TYPES)}; got {describe(vtype)}")
        required = True if spec.required is None else spec.required
        if not isinstance(required, bool):
            error([*base, "required"], f"required must be true or false; got {describe(required)}")
        description = spec.description or None
        if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS):
            error([*base, "description"], f"description must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
        options = _check_options(spec, vtype, [*base, "options"], error)
        default = spec.default
        if default is not None and vtype in VARIABLE_TYPES:
            default, problem = check_value(default, vtype)
            if problem is not None:
                error([*base, "defaultValue"],
                      f'the default of "{spec.name}" must be {problem}; got {describe(default)}')
            elif options is not None and not any(same_value(default, o) for o in options):
                error([*base, "defaultValue"], f'the default of "{spec.name}" must be one of its options')
        specs.append(VariableSpec(spec.name, vtype, required, default, description, options))
    return specs


def _check_options(spec: VariableSpec, vtype: str, path: list[str], error) -> list | None:
    options = spec.options
    if options is None:
        return None
    if not isinstance(options, (list, tuple)) or not options:
        error(path, "options must be a non-empty list of allowed values (or left out)")
        return None
    if len(options) > MAX_OPTIONS:
        error(path, f"{len(options)} options are given; at most {MAX_OPTIONS} are allowed")
    out: list = []
    for given in options:
        if given is None:
            error(path, "null cannot be an option")
            continue
        option = given
        if vtype in VARIABLE_TYPES:
            option, problem = check_value(given, vtype)
            if problem is not None:
                error(path, f'every option of "{spec.name}" must be {problem}; got {describe(option)}')
                continue
        if any(same_value(option, o) for o in out):
            error(path, f"option {describe(option)} is listed more than once")
            continue
        out.append(option)
    return out


def _check_model_settings(settings: Any, error) -> dict | None:
    if settings is None:
        return None
    if not isinstance(settings, dict):
        error(["modelSettings"], f"model settings must be an object; got {describe(settings)}")
        return None
    settings = normalise_model_settings(settings)
    for key, value in settings.items():
        path = ["modelSettings", key]
        if key not in MODEL_SETTINGS_KEYS:
            error(path, f'unknown model setting "{key}"; the settings are {", ".join(MODEL_SETTINGS_KEYS)}')
        elif key in ("provider", "model"):
            if not isinstance(value, str) or not value.strip():
                error(path, f"{key} must be a non-empty string")
        elif key in ("temperature", "topP"):
            high = 2.0 if key == "temperature" else 1.0
            if not isinstance(value, float) or not 0.0 <= value <= high:
                error(path, f"{key} must be a number from 0 to {high:g}; got {describe(value)}")
        elif key == "maxTokens":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                error(path, f"maxTokens must be a whole number of at least 1; got {describe(value)}")
        elif key == "stop":
            if (
                not isinstance(value, list)
                or len(value) > MAX_STOP_SEQUENCES
                or not all(isinstance(s, str) and s for s in value)
            ):
                error(path, f"stop must be a list of at most {MAX_STOP_SEQUENCES} non-empty strings")
        elif key == "extra" and (not isinstance(value, dict) or json_problem(value) is not None):
            error(path, "extra must be a JSON object of provider-specific parameters")
    return settings or None


def _check_output_schema(schema: Any, error) -> Any:
    if schema is None:
        return None
    if not isinstance(schema, (dict, bool)) or json_problem(schema) is not None:
        error(["outputSchema"],
              f"the output schema must be a JSON Schema (an object or a boolean); got {describe(schema)}")
        return schema
    if isinstance(schema, dict):
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path)
            error(["outputSchema"], f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}")
        except MemoryError:  # out of memory: the sandbox worker reports it and is replaced
            raise
        except Exception as exc:  # e.g. an unknown $schema dialect URL
            error(["outputSchema"], f"not a valid JSON Schema: {exc}")
    return schema
