"""Stage 5: the RL pipeline (sync and async steps, refit, log-prob, training)."""

from .results import GenerationStats, ProjectionResult, StepResult
from .setup import Setup, build_setup, resolve_acceptance
from .sync import simulate_sync_step

__all__ = ["GenerationStats", "ProjectionResult", "Setup", "StepResult", "build_setup", "resolve_acceptance",
           "simulate_sync_step"]
