"""Mirror runs: per-audience snapshots, the difference against the source, the run's plan."""
