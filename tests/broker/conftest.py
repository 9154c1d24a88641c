"""Fixtures shared by the broker's handler tests: a BrokerState on a real LogManager."""

from __future__ import annotations

import pytest

from kafkito.broker.config import load_config, log_config_from
from kafkito.broker.context import BrokerState
from kafkito.broker.handlers import load_handlers
from kafkito.broker.partitions import PartitionManager
from kafkito.storage import LogManager, ManualClock


@pytest.fixture
def make_state(tmp_path):
    opened: list[LogManager] = []

    def make(**settings) -> BrokerState:
        overrides = [("log.dirs", str(tmp_path / f"data{len(opened)}"))]
        overrides += [(name.replace("_", "."), str(value)) for name, value in settings.items()]
        config = load_config(environ={}, overrides=overrides)
        clock = ManualClock(1_700_000_000_000)
        logs = LogManager(config.log_dirs, log_config_from(config), clock,
                          partitions_max=config.max_partitions)
        logs.startup()
        opened.append(logs)
        return BrokerState(config=config, logs=logs, clock=clock, partitions=PartitionManager(logs, clock),
                           node_id=config.node_id, cluster_id=logs.cluster_id,
                           advertised_host="127.0.0.1", advertised_port=9092, handlers=load_handlers())

    yield make
    for logs in opened:
        logs.shutdown()


@pytest.fixture
def state(make_state):
    return make_state()
