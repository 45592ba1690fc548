"""Pure rules: normalising IDs, sync modes, declared audiences, the run report."""
