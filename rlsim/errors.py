"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class RlsimError(Exception):
    """Base of every user-facing error (bad input, impossible configuration)."""


class CatalogError(RlsimError):
    """A catalog file (or a catalog name) is wrong."""


class ConfigurationError(RlsimError):
    """A scenario cannot run as given (does not fit, does not divide, unsupported)."""


class CalibrationDataError(RlsimError):
    """Calibration tables are missing, corrupt or for another GPU."""
