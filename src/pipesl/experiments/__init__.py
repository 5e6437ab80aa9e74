"""Scenario generators and experiment sweeps (tidy rows -> CSV/JSON)."""
