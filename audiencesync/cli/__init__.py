"""The `audiencesync` command: run commands, operator commands, the demo and its local stack."""
