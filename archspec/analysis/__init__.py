"""Analyses: passes over the graph IR (cost, memory, latency)."""
