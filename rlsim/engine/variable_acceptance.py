"""Moved to ``rlsim/speculation/variable_acceptance.py``; this re-export remains only while
``rlsim/pipeline/setup.py`` still imports it from here."""

from ..speculation.variable_acceptance import VariableAcceptancePolicy

__all__ = ["VariableAcceptancePolicy"]
