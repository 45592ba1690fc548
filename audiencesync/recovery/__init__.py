"""Recovery without waiting on the broker: chunk leases, worker heartbeats, and the reapers that
re-drive chunks nobody vouches for (see leases.py)."""
