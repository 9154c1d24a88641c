"""Embedding kafkito in tests: ``with kafkito.testing.broker(tmp_path) as b: b.bootstrap_servers``.

A pytest plugin (installed with kafkito) also offers the ``kafkito_broker`` fixture.
"""

from kafkito.broker.embed import EmbeddedBroker, broker

__all__ = ["EmbeddedBroker", "broker"]
