"""The public Python API: ``project(scenario)``, ``project_scenario(**flags)``, ``build_scenario`` and ``sweep``.

    from rlsim.api import project_scenario
    r = project_scenario(workload="rl-zero-8b", k=3)

``project`` is the pipeline's one entry point (``rlsim.pipeline.run``); the same names are importable from
``rlsim`` itself.
"""

from __future__ import annotations

from .errors import ConfigurationError
from .pipeline import ProjectionResult
from .pipeline.run import project
from .scenario import Scenario, build_scenario
from .studies.sweep import sweep


def project_scenario(**kwargs) -> ProjectionResult:
    """``project(build_scenario(**kwargs))``: the same arguments as ``rlsim project``'s flags."""
    return project(build_scenario(**kwargs))


__all__ = ["project", "project_scenario", "build_scenario", "sweep", "Scenario", "ProjectionResult",
           "ConfigurationError"]
