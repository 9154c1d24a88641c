"""The seeded whole-broker simulation: see sim.py."""
