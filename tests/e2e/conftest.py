"""Fixtures for end-to-end tests: a real kafkito broker, driven by real Kafka clients.

One broker per test module keeps the suite quick; tests use unique topic names, so they
do not see each other's data.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest

from kafkito.testing import broker as embedded_broker

_names = itertools.count()


@pytest.fixture(scope="module")
def kbroker(tmp_path_factory):
    with embedded_broker(tmp_path_factory.mktemp("kafkito")) as running:
        yield running


@pytest.fixture(scope="module")
def gbroker(tmp_path_factory):
    """A broker for the group tests: short session timeouts, no initial rebalance delay."""
    settings = {"group.min.session.timeout.ms": "500", "group.initial.rebalance.delay.ms": "0"}
    with embedded_broker(tmp_path_factory.mktemp("kafkito-groups"), settings=settings) as running:
        yield running


@pytest.fixture
def topic_name(request):
    """A topic name unique to this test."""
    base = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)
    return f"t-{os.getpid()}-{next(_names)}-{base}"[:200]
