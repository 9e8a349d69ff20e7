"""Enumerations stored as text (with CHECK constraints) — plain Python, usable by every layer."""
from __future__ import annotations

import enum


class StrEnum(enum.StrEnum):
    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class ProjectRole(StrEnum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    EDITOR = "EDITOR"
    VIEWER = "VIEWER"


#: Higher is more powerful.
ROLE_RANK = {ProjectRole.VIEWER: 1, ProjectRole.EDITOR: 2, ProjectRole.ADMIN: 3, ProjectRole.OWNER: 4}


class ApiScope(StrEnum):
    PROMPTS_READ = "PROMPTS_READ"
    PROMPTS_WRITE = "PROMPTS_WRITE"
    EXECUTIONS_READ = "EXECUTIONS_READ"
    EXECUTIONS_WRITE = "EXECUTIONS_WRITE"
    TRACES_READ = "TRACES_READ"
    TRACES_WRITE = "TRACES_WRITE"
    EXPERIMENTS_READ = "EXPERIMENTS_READ"
    EXPERIMENTS_WRITE = "EXPERIMENTS_WRITE"
    PROJECT_ADMIN = "PROJECT_ADMIN"


class PromptStatus(StrEnum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    ARCHIVED = "ARCHIVED"


class PromptKind(StrEnum):
    TEXT = "TEXT"
    CHAT = "CHAT"


class TemplateFormat(StrEnum):
    MUSTACHE = "MUSTACHE"
    JINJA2 = "JINJA2"


class ValidationType(StrEnum):
    JSON_SCHEMA = "JSON_SCHEMA"
    REGEX = "REGEX"
    JMESPATH = "JMESPATH"


class ValidationStatus(StrEnum):
    PENDING = "PENDING"
    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class ExecutionStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_STATUSES = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


class Priority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


#: Stored as a number so the queue can order by it (higher first).
PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


LOG_LEVEL_RANK = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARN: 30, LogLevel.ERROR: 40}


class AuditResult(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DENIED = "DENIED"


class EmbeddingStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"


class ExecutionEventType(StrEnum):
    SNAPSHOT = "SNAPSHOT"
    QUEUED = "QUEUED"
    STARTED = "STARTED"
    OUTPUT_DELTA = "OUTPUT_DELTA"
    LOG = "LOG"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class SpanKind(StrEnum):
    """What a span did (OpenInference's span kinds, plus HTTP, DATABASE and INTERNAL)."""

    LLM = "LLM"
    CHAIN = "CHAIN"
    AGENT = "AGENT"
    TOOL = "TOOL"
    RETRIEVER = "RETRIEVER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    GUARDRAIL = "GUARDRAIL"
    HTTP = "HTTP"
    DATABASE = "DATABASE"
    INTERNAL = "INTERNAL"


class SpanStatus(StrEnum):
    """OpenTelemetry's status codes."""

    UNSET = "UNSET"
    OK = "OK"
    ERROR = "ERROR"


class EvaluatorType(StrEnum):
    """How an evaluator scores an output (``app.rules.evaluators`` says what each one's config is)."""

    EXACT_MATCH = "EXACT_MATCH"
    CONTAINS = "CONTAINS"
    REGEX = "REGEX"
    JSON_VALID = "JSON_VALID"
    JSON_SCHEMA = "JSON_SCHEMA"
    JMESPATH = "JMESPATH"
    LEVENSHTEIN = "LEVENSHTEIN"
    LLM_JUDGE = "LLM_JUDGE"
    LATENCY = "LATENCY"
    COST = "COST"


class ExperimentType(StrEnum):
    AB_TEST = "AB_TEST"
    MULTI_VARIANT = "MULTI_VARIANT"
    EVALUATION = "EVALUATION"


class ExperimentStatus(StrEnum):
    DRAFT = "DRAFT"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    ARCHIVED = "ARCHIVED"


class ScoreSource(StrEnum):
    """Who gave a score: one of the experiment's evaluators, a person (scoreRun), or feedback ratings."""

    EVALUATOR = "EVALUATOR"
    HUMAN = "HUMAN"
    FEEDBACK = "FEEDBACK"
