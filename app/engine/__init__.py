"""The execution engine: the queue (rows claimed with SKIP LOCKED), the worker pool, retention.

``start``/``stop`` are the runtime hooks (app/lifecycle.py): they seed the shipped model prices,
start ``settings.workers`` execution tasks (none when 0) and the periodic retention sweep.
"""
from .hooks import start, stop

__all__ = ["start", "stop"]
