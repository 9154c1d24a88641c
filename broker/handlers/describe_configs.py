"""DescribeConfigs (key 32): versions 1-4.

Behaviour, per resource:
- TOPIC (2): every topic config kafkito knows (storage's TOPIC_CONFIGS) with its
  effective value, ``read_only`` false, ``is_sensitive`` false and Kafka's source:
  TOPIC_CONFIG (1) when the topic overrides it, STATIC_BROKER_CONFIG (4) when a broker
  setting (``log.retention.ms`` for ``retention.ms``, ...) supplies a non-default value,
  else DEFAULT_CONFIG (5). Synonyms (when ``include_synonyms``) list, most specific first,
  the topic override, the broker setting's static value and its default, as Kafka does.
  An illegal name is INVALID_TOPIC_EXCEPTION, an unknown topic UNKNOWN_TOPIC_OR_PARTITION.
- BROKER (4): the resource name must be this broker's node id or empty (else
  INVALID_REQUEST, as in Kafka); the answer lists every broker setting (broker/config.py
  SETTINGS) with its current value, read-only (kafkito's broker configs are static) and
  STATIC_BROKER_CONFIG when it differs from the default, else DEFAULT_CONFIG.
- any other resource type (broker loggers, groups, client metrics): INVALID_REQUEST.
``configuration_keys`` null means every config; a list keeps only the named ones
(unknown names are simply absent, as in Kafka; an empty list returns none).

Version notes: v1 adds synonyms and config_source (v0's is_default is not served: Kafka 4
removed v0, KIP-896); v3 adds config_type and, when ``include_documentation``, the doc
string; v4 is flexible. kafkito has no quotas (throttle_time_ms 0). "Set to its default
value" cannot be told from "not set" for broker settings, so such a setting reports
DEFAULT_CONFIG.
"""

from __future__ import annotations

from kafkito.protocol import ApiKey, ErrorCode
from kafkito.protocol.messages.describe_configs import (
    DescribeConfigsResourceResult,
    DescribeConfigsResponse,
    DescribeConfigsResult,
    DescribeConfigsSynonym,
)

from ._admin import (
    AdminError,
    ResourceType,
    broker_config_entries,
    broker_resource_error,
    topic_config_entries,
    topic_name_error,
)

API_KEY = ApiKey.DESCRIBE_CONFIGS
MIN_VERSION = 1
MAX_VERSION = 4


def _entries(state, resource):
    if resource.resource_type == ResourceType.TOPIC:
        name = resource.resource_name
        reason = topic_name_error(name)
        if reason is not None:
            raise AdminError(ErrorCode.INVALID_TOPIC_EXCEPTION, reason)
        meta = state.logs.topic(name)
        if meta is None:
            raise AdminError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        return topic_config_entries(state, meta.configs, resource.configuration_keys)
    if resource.resource_type == ResourceType.BROKER:
        reason = broker_resource_error(resource.resource_name, state.node_id)
        if reason is not None:
            raise AdminError(ErrorCode.INVALID_REQUEST, reason)
        entries = broker_config_entries(state.config)
        if resource.configuration_keys is not None:
            wanted = set(resource.configuration_keys)
            entries = [e for e in entries if e.name in wanted]
        return entries
    raise AdminError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type: {resource.resource_type}")


def _describe(entry, request, version: int) -> DescribeConfigsResourceResult:
    out = DescribeConfigsResourceResult(
        name=entry.name, value=entry.value, read_only=entry.read_only,
        config_source=entry.source, is_sensitive=entry.is_sensitive,
    )
    if request.include_synonyms:
        out.synonyms = [DescribeConfigsSynonym(name=n, value=v, source=s) for n, v, s in entry.synonyms]
    if version >= 3:
        out.config_type = entry.config_type
        if request.include_documentation:
            out.documentation = entry.documentation
    return out


async def handle(ctx, request) -> DescribeConfigsResponse:
    state = ctx.broker
    results = []
    for resource in request.resources:
        result = DescribeConfigsResult(error_code=ErrorCode.NONE, error_message=None,
                                       resource_type=resource.resource_type,
                                       resource_name=resource.resource_name, configs=[])
        try:
            entries = _entries(state, resource)
        except AdminError as exc:
            result.error_code, result.error_message = exc.code, exc.message
        else:
            result.configs = [_describe(e, request, ctx.api_version) for e in entries]
        results.append(result)
    return DescribeConfigsResponse(throttle_time_ms=0, results=results)
