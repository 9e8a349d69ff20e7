"""The engine: what runs outside requests. The worker pool (jobs of every kind, claimed from the
queue in ``app.services.jobs``), the handler of each kind of job (``executions``: calling a model
provider with streaming, in ``runner``), and the periodic retention sweep.

``start``/``stop`` are the runtime hooks (app/lifecycle.py): they seed the shipped model prices,
start ``settings.workers`` worker tasks (none when 0) and the retention sweep.
"""
from .hooks import start, stop

__all__ = ["start", "stop"]
