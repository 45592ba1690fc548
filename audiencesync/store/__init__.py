"""Run state in Redis: the key layout, the run store and its atomic steps, replace turns."""
