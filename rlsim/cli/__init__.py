"""Interfaces: the ``rlsim`` command line (typer parsing and printing only). Entry point: ``rlsim.cli:main``."""

from .app import app, main

__all__ = ["app", "main"]
