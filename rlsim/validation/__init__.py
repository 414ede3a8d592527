"""Validation of the simulator against measurements (ground-truth rollouts, the reference study)."""
