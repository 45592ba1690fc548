"""Fleet-wide adaptive throttling per ad account: run at the destination's limit, not into it.

policy (pure arithmetic) and machine (pure state transitions) say what to do; gate.lua (with
policy.lua) does the same atomically in Redis for every worker; gate is its Python face; guard
wraps one Graph call; summary turns a run's throttle figures into its report section.
"""
