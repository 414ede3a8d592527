"""Studies built on projections: sweeps (grid, runner, cache, table), the seed runner, optimize-k, plans (the
configuration search), draft-drift runs, and the importers of NeMo-RL and verl recipes. Each runs scenarios
through ``rlsim.pipeline.run``; the command line (``rlsim.cli``) parses and prints for them."""
