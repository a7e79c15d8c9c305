"""Fleets of boards: Ansible inventories (inventory.py), staged rollouts over them (rollout.py) and the
record of each run (runs.py)."""
