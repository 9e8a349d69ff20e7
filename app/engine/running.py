"""What a pool knows of one running job: it can be told to stop, and it runs until done."""
from __future__ import annotations

from typing import Protocol

#: Why a run is told to stop before its work ended.
STOP_CANCEL = "cancel"
STOP_LEASE_LOST = "lease_lost"
STOP_SHUTDOWN = "shutdown"


class Running(Protocol):
    """One attempt at one job, as its handler started it."""

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop (cancel requested, lease lost, worker stopping); the first reason wins."""

    async def execute(self) -> None:
        """Do the work; record the outcome and remove the job (or hand it back) before returning."""
