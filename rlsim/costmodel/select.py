"""Choosing the kernel timer for a hardware profile: calibrated tables when they exist, else roofline."""

from __future__ import annotations

from ..catalog import HardwareProfile
from ..errors import ConfigurationError
from .timer import KernelTimer

CALIBRATION_CHOICES = ("auto", "roofline", "calibrated")


def get_timer(hw: HardwareProfile, calibration: str = "auto") -> KernelTimer:
    """``auto``: the calibrated timer for ``hw.calibration_source`` if its tables are shipped, else
    roofline; ``roofline``: datasheet peaks x explicit efficiencies; ``calibrated``: require tables."""
    if calibration not in CALIBRATION_CHOICES:
        raise ConfigurationError(f"--calibration = {calibration!r}; allowed: {', '.join(CALIBRATION_CHOICES)}")
    if calibration == "roofline":
        return KernelTimer(hw)
    from .calib_timer import calibrated_timer

    t = calibrated_timer(hw, required=calibration == "calibrated")
    if t is not None:
        return t
    if calibration == "calibrated":
        raise ConfigurationError(f"no calibration tables for {hw.name} (calibration_source {hw.calibration_source!r})")
    return KernelTimer(hw)
