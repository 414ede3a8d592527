"""rlsim: discrete-event performance simulator of RL post-training step time with speculative decoding.

Public API::

    from rlsim import project_scenario, build_scenario, project
    r = project_scenario(workload="rl-zero-8b", k=3)
    r.to_dict(); r.to_frame(); r.speedup

Heavy imports are lazy so that ``import rlsim`` stays cheap (and works where only numpy/yaml exist,
e.g. on a GPU machine running the calibration harness).
"""

__version__ = "0.1.0"

_LAZY = {
    "project": ("rlsim.api", "project"),
    "project_scenario": ("rlsim.api", "project_scenario"),
    "build_scenario": ("rlsim.scenario", "build_scenario"),
    "Scenario": ("rlsim.scenario", "Scenario"),
    "ProjectionResult": ("rlsim.pipeline.results", "ProjectionResult"),
    "sweep": ("rlsim.studies.sweep", "sweep"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'rlsim' has no attribute {name!r}")


__all__ = list(_LAZY)
