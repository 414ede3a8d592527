"""Stage 1: the catalog (hardware profiles, models, draft heads, workloads) as validated YAML."""

from .loader import (
    catalog_dir,
    find_dataset,
    list_engines,
    list_hardware,
    list_models,
    list_workloads,
    load_draft,
    load_engine,
    load_hardware,
    load_model,
    load_workload,
    load_yaml_model,
)
from .schema import (
    AgenticRollout,
    RopeScaling,
    DatasetSpec,
    DraftSpec,
    EngineConfig,
    EngineProfile,
    GenerationParallelism,
    HardwareProfile,
    LengthDistribution,
    ModelSpec,
    SpeculationConfig,
    TrainingParallelism,
    Workload,
)

__all__ = [
    "AgenticRollout", "RopeScaling",
    "DatasetSpec", "DraftSpec", "EngineConfig", "EngineProfile", "GenerationParallelism", "HardwareProfile",
    "LengthDistribution", "ModelSpec", "SpeculationConfig", "TrainingParallelism", "Workload", "catalog_dir",
    "find_dataset", "list_engines", "list_hardware", "list_models", "list_workloads", "load_draft", "load_engine",
    "load_hardware", "load_model", "load_workload",
    "load_yaml_model",
]
