"""AlterConfigs (key 33): versions 0-2 (the legacy whole-set API; aiokafka's only one).

Behaviour: for a TOPIC resource the request's entries become the topic's complete
override set: configs not listed return to their defaults, and an entry with a null
value is simply not set (as in Kafka's controller). The set is validated whole by the
log's own validator (unknown names, bad values: INVALID_CONFIG with the reason), then
persisted and applied live to the topic's open logs (``LogManager.alter_topic_configs``:
retention, segment rolling, max.message.bytes... take effect without a restart).
``validate_only`` checks and changes nothing. Other per-resource errors: an illegal
topic name INVALID_TOPIC_EXCEPTION, an unknown topic UNKNOWN_TOPIC_OR_PARTITION, a
config named twice or a resource listed twice INVALID_REQUEST.

BROKER and BROKER_LOGGER resources are answered INVALID_REQUEST: broker configs are
static in kafkito (flags, KAFKITO_* environment, TOML file; read at startup), so there
is nothing to alter at run time. Other resource types: INVALID_REQUEST.

Version notes: v1 is v0 with throttling, v2 is flexible; kafkito has no quotas
(throttle_time_ms 0).
"""

from __future__ import annotations

from kafkito.protocol import ApiKey
from kafkito.protocol.messages.alter_configs import AlterConfigsResourceResponse, AlterConfigsResponse

from ._admin import alter_config_resources

API_KEY = ApiKey.ALTER_CONFIGS
MIN_VERSION = 0
MAX_VERSION = 2


def new_overrides(state, current: dict[str, str], entries) -> dict[str, str]:
    """The legacy API replaces the whole set; a null value means "not overridden"."""
    return {entry.name: entry.value for entry in entries if entry.value is not None}


async def handle(ctx, request) -> AlterConfigsResponse:
    outcomes = alter_config_resources(ctx.broker, request.resources, request.validate_only, new_overrides)
    return AlterConfigsResponse(throttle_time_ms=0, responses=[
        AlterConfigsResourceResponse(error_code=code, error_message=message,
                                     resource_type=resource.resource_type,
                                     resource_name=resource.resource_name)
        for resource, (code, message) in zip(request.resources, outcomes)
    ])
