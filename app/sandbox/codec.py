"""What crosses the pipe between the server and a sandbox worker: plain JSON, never pickles.

A worker runs untrusted templates and rules; if one ever escaped its sandboxed engine, a pickle
from the worker would run code in the server. JSON cannot. These functions turn the few data
classes that cross into JSON-ready dicts and back.
"""
from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

from app.rules.evaluators import EvalInput, EvaluatorSpec, ScoreData
from app.rules.validation import ConfigError, ValidationOutcome, ValidationResultData, ValidationSpec
from app.templating import ChatMessage, ContentError, PromptContent, RenderOutcome, VariableSpec

#: A frame: 4-byte big-endian length, then that many bytes of UTF-8 JSON.
HEADER = struct.Struct(">I")


def frame(message: Any) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return HEADER.pack(len(data)) + data


def content_to_json(content: PromptContent) -> dict[str, Any]:
    return dataclasses.asdict(content)


def content_from_json(data: dict[str, Any]) -> PromptContent:
    messages = data.get("messages")
    return PromptContent(
        kind=data["kind"], format=data["format"], template=data.get("template"),
        messages=None if messages is None else [ChatMessage(**m) for m in messages],
        system_prompt=data.get("system_prompt"),
        variables=[VariableSpec(**v) for v in data.get("variables") or []],
        model_settings=data.get("model_settings"), output_schema=data.get("output_schema"))


def specs_to_json(specs: list[VariableSpec] | None) -> list[dict[str, Any]] | None:
    return None if specs is None else [dataclasses.asdict(s) for s in specs]


def specs_from_json(data: list[dict[str, Any]] | None) -> list[VariableSpec] | None:
    return None if data is None else [VariableSpec(**s) for s in data]


def render_outcome_from_json(data: dict[str, Any]) -> RenderOutcome:
    messages = data.get("messages")
    return RenderOutcome(text=data.get("text"),
                         messages=None if messages is None else [ChatMessage(**m) for m in messages],
                         system_prompt=data.get("system_prompt"), missing_variables=data["missing_variables"],
                         unknown_variables=data["unknown_variables"], errors=data["errors"])


def content_errors_from_json(data: list[dict[str, Any]]) -> list[ContentError]:
    return [ContentError(field=e["field"], message=e["message"]) for e in data]


def config_errors_from_json(data: list[dict[str, Any]]) -> list[ConfigError]:
    return [ConfigError(field=e["field"], message=e["message"]) for e in data]


def rule_specs_to_json(specs: list[ValidationSpec]) -> list[dict[str, Any]]:
    return [{"id": str(s.id) if s.id is not None else None, "name": s.name, "type": s.type, "config": s.config}
            for s in specs]


def rule_specs_from_json(data: list[dict[str, Any]]) -> list[ValidationSpec]:
    return [ValidationSpec(**s) for s in data]


def validation_outcome_from_json(data: dict[str, Any]) -> ValidationOutcome:
    return ValidationOutcome(status=data["status"], validated_output=data.get("validated_output"),
                             results=[ValidationResultData(**r) for r in data["results"]])


def evaluator_specs_to_json(specs: list[EvaluatorSpec]) -> list[dict[str, Any]]:
    return [{"name": s.name, "type": s.type, "config": s.config} for s in specs]


def evaluator_specs_from_json(data: list[dict[str, Any]]) -> list[EvaluatorSpec]:
    return [EvaluatorSpec(**s) for s in data]


def eval_input_to_json(inp: EvalInput) -> dict[str, Any]:
    return dataclasses.asdict(inp)


def scores_from_json(data: list[dict[str, Any]]) -> list[ScoreData]:
    return [ScoreData(**s) for s in data]


def to_json(value: Any) -> Any:
    """A task's result made JSON-ready (data classes become dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
