"""IncrementalAlterConfigs (key 44): versions 0-1.

Behaviour: for a TOPIC resource each entry changes one config of the topic's current
override set, leaving the others as they are:
- SET (0) overrides it with the value;
- DELETE (1) removes the override (the config returns to the broker's default);
- APPEND (2) / SUBTRACT (3), for LIST configs only (``cleanup.policy``), add the listed
  comma-separated items not already present / remove the listed items, starting from the
  current effective value (the override, else the broker's default: kafkito starts from
  the value the topic really has, where Kafka starts from its static default). On
  other configs they are INVALID_CONFIG ("Can't APPEND to key ... because its type is
  not LIST.").
The resulting set is validated whole by the log's own validator (unknown names, bad
values, an emptied list: INVALID_CONFIG with the reason), then persisted and applied live
to the open logs (``LogManager.alter_topic_configs``). ``validate_only`` checks and
changes nothing. Other per-resource errors: an unknown config name (whatever the
operation) INVALID_CONFIG; an unknown operation, a null value for
SET/APPEND/SUBTRACT, a config named twice or a resource listed twice INVALID_REQUEST;
an illegal topic name INVALID_TOPIC_EXCEPTION; an unknown topic
UNKNOWN_TOPIC_OR_PARTITION.

BROKER and BROKER_LOGGER resources are answered INVALID_REQUEST: broker configs are
static in kafkito (flags, KAFKITO_* environment, TOML file; read at startup). Other
resource types: INVALID_REQUEST.

Version notes: v1 is v0 made flexible. kafkito has no quotas (throttle_time_ms 0).
"""

from __future__ import annotations

from enum import IntEnum

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.incremental_alter_configs import (
    AlterConfigsResourceResponse,
    IncrementalAlterConfigsResponse,
)

from kafkito.storage import TOPIC_CONFIGS

from ._admin import AdminError, alter_config_resources, effective_value, is_list_config

API_KEY = ApiKey.INCREMENTAL_ALTER_CONFIGS
MIN_VERSION = 0
MAX_VERSION = 1


class OpType(IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


def _items(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def new_overrides(state, current: dict[str, str], entries) -> dict[str, str]:
    """Apply each entry's operation to a copy of the topic's current override set."""
    overrides = dict(current)
    for entry in entries:
        try:
            op = OpType(entry.config_operation)
        except ValueError:
            raise AdminError(ErrorCode.INVALID_REQUEST,
                             f"Unknown config operation {entry.config_operation} for {entry.name}") from None
        if entry.name not in TOPIC_CONFIGS:
            raise AdminError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {entry.name}")
        if op is OpType.DELETE:
            overrides.pop(entry.name, None)
            continue
        if entry.value is None:
            raise AdminError(ErrorCode.INVALID_REQUEST, f"Null value not supported for: {entry.name}")
        if op is OpType.SET:
            overrides[entry.name] = entry.value
            continue
        if not is_list_config(entry.name):
            raise AdminError(ErrorCode.INVALID_CONFIG,
                             f"Can't {op.name} to key {entry.name} because its type is not LIST.")
        items = _items(effective_value(state, overrides, entry.name))
        change = _items(entry.value)
        if op is OpType.APPEND:
            items += [item for item in change if item not in items]
        else:
            items = [item for item in items if item not in change]
        overrides[entry.name] = ",".join(items)
    return overrides


async def handle(ctx, request) -> IncrementalAlterConfigsResponse:
    outcomes = alter_config_resources(ctx.broker, request.resources, request.validate_only, new_overrides)
    return IncrementalAlterConfigsResponse(throttle_time_ms=0, responses=[
        AlterConfigsResourceResponse(error_code=code, error_message=message,
                                     resource_type=resource.resource_type,
                                     resource_name=resource.resource_name)
        for resource, (code, message) in zip(request.resources, outcomes)
    ])
