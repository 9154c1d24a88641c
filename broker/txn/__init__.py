"""The transaction coordinator (KIP-98, KIP-447): the pure state machine in coordinator.py,
its trio shell in service.py, its records in records.py."""
