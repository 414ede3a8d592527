"""Stage 3: speculation (acceptance model + drafter resolution)."""

from .acceptance import AcceptanceModel, DraftQuality
from .drafters import DRAFTERS, Drafter, resolve_drafter

__all__ = ["AcceptanceModel", "DraftQuality", "DRAFTERS", "Drafter", "resolve_drafter"]
