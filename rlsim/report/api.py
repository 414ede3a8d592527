"""The Python entry points: ``project(scenario)`` and ``project_scenario(**flags)``."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..pipeline import ProjectionResult
from ..pipeline.run import project
from ..scenario import Scenario, build_scenario


def project_scenario(**kwargs) -> ProjectionResult:
    """``project(build_scenario(**kwargs))``: the same arguments as ``rlsim project``'s flags."""
    return project(build_scenario(**kwargs))


__all__ = ["project", "project_scenario", "build_scenario", "Scenario", "ConfigurationError"]
