"""Stage 6: reports (Python API, CLI, tables, plots)."""
