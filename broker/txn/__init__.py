"""The transaction coordinator (KIP-98, KIP-447): see coordinator.py and service.py.

Nothing is imported here, so ``coordinator_runtime`` can use ``markers`` without a cycle."""
