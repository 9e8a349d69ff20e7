"""Execution events: written with the state change, announced by NOTIFY, fanned out per process."""
