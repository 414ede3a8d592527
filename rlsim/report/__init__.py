"""Reports: tables, plots, plan plots, the timeline (Gantt chart), Perfetto traces and progress bars. The command
line is ``rlsim.cli``, the public Python API ``rlsim.api``, the studies (sweeps, seeds, optimize-k, plans, recipe
importers) ``rlsim.studies``."""
