"""All models; importing this package registers every table on ``Base.metadata``."""
from .audit import AuditEvent
from .base import Base
from .embeddings import VersionEmbedding
from .executions import Execution, ExecutionEvent, ExecutionLog, Feedback
from .experiments import (
    Dataset,
    DatasetItem,
    Evaluator,
    Experiment,
    ExperimentEvaluator,
    ExperimentRun,
    ExperimentScore,
    ExperimentVariant,
)
from .identity import ApiKey, User, UserSession
from .jobs import Job
from .projects import Project, ProjectMember, ProviderCredential
from .prompts import Deployment, Prompt, PromptVersion, Validation
from .traces import Span, Trace
from .usage import LlmUsage, ModelConfig, UsageHourly

__all__ = [
    "ApiKey", "AuditEvent", "Base", "Dataset", "DatasetItem", "Deployment", "Evaluator", "Execution", "ExecutionEvent",
    "ExecutionLog", "Experiment", "ExperimentEvaluator", "ExperimentRun", "ExperimentScore", "ExperimentVariant",
    "Feedback", "Job",
    "LlmUsage", "ModelConfig", "Project", "ProjectMember", "Prompt", "PromptVersion", "ProviderCredential", "Span",
    "Trace", "UsageHourly", "User", "UserSession", "Validation", "VersionEmbedding",
]
