"""Stage 3: speculation (acceptance model + drafter resolution; batch-adaptive k; acceptance from traces; the
engine's speculation policy, with acceptance varying by sequence and along the response)."""

from .acceptance import AcceptanceModel, DraftQuality
from .adaptive import (CudaGraphCost, GoodputTable, cuda_graph_cost, format_k_schedule, goodput_table, k_for_batch,
                       optimal_schedule, parse_k_schedule, validate_k_schedule)
from .drafters import DRAFTERS, Drafter, resolve_drafter
from .policy import SpecPolicy
from .traces import TraceFit, fit_al_curve, load_acceptance_trace
from .variable_acceptance import VariableAcceptancePolicy

__all__ = ["AcceptanceModel", "DraftQuality", "DRAFTERS", "Drafter", "resolve_drafter", "CudaGraphCost", "GoodputTable",
           "cuda_graph_cost", "format_k_schedule", "goodput_table", "k_for_batch", "optimal_schedule", "parse_k_schedule",
           "validate_k_schedule", "TraceFit", "fit_al_curve", "load_acceptance_trace", "SpecPolicy",
           "VariableAcceptancePolicy"]
