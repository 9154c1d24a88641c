"""Fixtures for the client tests: one embedded broker per module, every async test run under
asyncio and under trio (anyio's pytest plugin)."""

from __future__ import annotations

import itertools
import os
import re

import pytest

from kafkito.testing import broker as embedded_broker

_names = itertools.count()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.fixture(scope="module")
def kbroker(tmp_path_factory):
    settings = {"group.min.session.timeout.ms": "500", "group.initial.rebalance.delay.ms": "0",
                # KIP-848 sessions are the broker's to set: short, so a crashed member is noticed
                "group.consumer.session.timeout.ms": "2000", "group.consumer.heartbeat.interval.ms": "200"}
    with embedded_broker(tmp_path_factory.mktemp("kafkito-client"), settings=settings) as running:
        yield running


@pytest.fixture
def topic_name(request):
    base = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)
    return f"c-{os.getpid()}-{next(_names)}-{base}"[:200]
