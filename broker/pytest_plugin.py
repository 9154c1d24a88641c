"""pytest plugin: the ``kafkito_broker`` fixture, a real broker per test.

Registered through the ``pytest11`` entry point, so installing kafkito is enough::

    def test_roundtrip(kafkito_broker):
        producer = Producer({"bootstrap.servers": kafkito_broker.bootstrap_servers})
"""

from __future__ import annotations

import pytest


@pytest.fixture
def kafkito_broker(tmp_path):
    from kafkito.broker.embed import broker

    with broker(tmp_path / "kafkito-data") as running:
        yield running
