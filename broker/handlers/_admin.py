"""What the admin handlers share: topic-name rules, config descriptions, config changes.

Theory of operation
-------------------
A topic stores only its overrides (Kafka names, string values). Its effective config is
those overrides laid over the broker's topic defaults, which come from broker settings
(``log.retention.ms`` supplies ``retention.ms``, ...) or, where no setting maps, from
Kafka's own topic defaults (storage's ``TOPIC_CONFIGS``). ``topic_config_entries``
describes every topic config that way, with Kafka's config source and synonym list, for
DescribeConfigs and for CreateTopics v5+; ``broker_config_entries`` does the same for
the broker settings. ``validated_overrides`` checks a proposed override set exactly as the
log would (storage's ``LogConfig.from_kafka``) and, for an internal topic, by the rule that
it keeps what it holds (``internal_topics.py``), so CreateTopics, AlterConfigs and
IncrementalAlterConfigs reject the same things with the same messages, validate_only or
not. ``replica_assignment_error`` is the one rule for manual assignments on one node.

``alter_config_resources`` is the common body of AlterConfigs and
IncrementalAlterConfigs: they differ only in how the new override set is computed.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, Iterator

from kafkito.protocol import ErrorCode
from kafkito.storage import TOPIC_CONFIGS, InvalidConfigError, InvalidTopicError, LogConfig, StorageError
from kafkito.storage.manager import validate_topic_name

from ..config import INT32_MAX, SETTINGS, SETTINGS_BY_NAME, BrokerConfig
from ..internal_topics import config_error as internal_config_error
from ._common import is_internal, storage_error_code

log = logging.getLogger("kafkito.broker.handlers.admin")

__all__ = [
    "ConfigSource",
    "ConfigType",
    "ConfigEntry",
    "AdminError",
    "ResourceType",
    "TOPIC_CONFIG_SYNONYMS",
    "alter_config_resources",
    "broker_config_entries",
    "broker_resource_error",
    "duplicates",
    "once_each",
    "replica_assignment_error",
    "topic_collision",
    "topic_config_entries",
    "topic_name_error",
    "validated_overrides",
]


class ResourceType(IntEnum):
    """Kafka's config resource types (DescribeConfigs/AlterConfigs resource_type)."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class ConfigSource(IntEnum):
    """DescribeConfigs' config_source / synonym source ids."""

    UNKNOWN = 0
    TOPIC_CONFIG = 1  # DYNAMIC_TOPIC_CONFIG in Kafka's admin client
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class ConfigType(IntEnum):
    """DescribeConfigs v3+ config_type ids (Kafka's ConfigDef types)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


# Topic config -> the broker setting that supplies its default (Kafka's
# ServerTopicConfigSynonyms, restricted to what broker/config.py's log_config_from maps).
# tests/broker/test_admin_configs.py checks this table against log_config_from itself.
TOPIC_CONFIG_SYNONYMS: dict[str, str] = {
    "cleanup.policy": "log.cleanup.policy",
    "compression.type": "compression.type",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "index.interval.bytes": "log.index.interval.bytes",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "max.message.bytes": "message.max.bytes",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "retention.bytes": "log.retention.bytes",
    "retention.ms": "log.retention.ms",
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
}


@dataclass(frozen=True)
class ConfigEntry:
    """One described config, independent of the response struct that carries it."""

    name: str
    value: str | None
    source: ConfigSource
    read_only: bool
    config_type: ConfigType
    documentation: str | None
    synonyms: list[tuple[str, str | None, ConfigSource]] = field(default_factory=list)
    is_sensitive: bool = False


# -- topic names -----------------------------------------------------------------------
def topic_name_error(name: str | None) -> str | None:
    """Why ``name`` is not a legal topic name (storage's rule, Kafka's), or None."""
    try:
        validate_topic_name(name or "")
    except InvalidTopicError as exc:
        return str(exc)
    return None


def topic_collision(name: str, existing: Iterable[str]) -> str | None:
    """An existing topic that differs from ``name`` only by '.' vs '_', or None.

    Kafka refuses such pairs because both map to the same metric names.
    """
    if "." not in name and "_" not in name:
        return None
    unified = name.replace(".", "_")
    for other in existing:
        if other != name and other.replace(".", "_") == unified:
            return other
    return None


def duplicates(names: Iterable) -> set:
    """The items that occur more than once (Kafka answers each with INVALID_REQUEST)."""
    return {name for name, count in Counter(names).items() if count > 1}


def once_each(items: list, key) -> Iterator[tuple[object, bool]]:
    """``(item, repeated)`` in request order; a key given more than once is yielded once,
    at its first occurrence, with ``repeated`` true (Kafka answers it once, as an error)."""
    keys = [key(item) for item in items]
    repeated = duplicates(keys)
    reported = set()
    for item, k in zip(items, keys):
        if k not in repeated:
            yield item, False
        elif k not in reported:
            reported.add(k)
            yield item, True


def replica_assignment_error(broker_ids: list[int], node_id: int, partition: int) -> str | None:
    """A manual assignment on one node must be exactly ``[node_id]``."""
    if list(broker_ids) == [node_id]:
        return None
    if not broker_ids:
        return f"The manual partition assignment for partition {partition} is an empty replica list."
    return (f"The manual partition assignment for partition {partition} is {list(broker_ids)}, "
            f"but this cluster has one broker: the only valid assignment is [{node_id}].")


# -- broker resources ------------------------------------------------------------------
def broker_resource_error(name: str, node_id: int) -> str | None:
    """Kafka's checks on a BROKER resource name: empty, or this broker's id."""
    if name == "":
        return None
    try:
        broker_id = int(name)
    except ValueError:
        return f"Broker id must be an integer, but it is: {name}"
    if broker_id != node_id:
        return f"Unexpected broker id, expected {node_id} or empty string, but received {name}"
    return None


def _setting_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _setting_type(setting) -> ConfigType:
    if setting.kind is bool:
        return ConfigType.BOOLEAN
    if setting.kind is float:
        return ConfigType.DOUBLE
    if setting.kind is int:
        return ConfigType.LONG if (setting.maximum or 0) > INT32_MAX else ConfigType.INT
    return ConfigType.STRING


def _broker_synonyms(config: BrokerConfig, name: str) -> list[tuple[str, str | None, ConfigSource]]:
    """Kafka's synonym list for a broker setting: the static value if set, then the default.

    kafkito cannot tell "set to its default value" from "not set", so a setting counts as
    set (STATIC_BROKER_CONFIG) when its value differs from the default.
    """
    setting = SETTINGS_BY_NAME[name]
    value = _setting_text(getattr(config, setting.attr))
    default = _setting_text(setting.default)
    out = []
    if value != default:
        out.append((name, value, ConfigSource.STATIC_BROKER_CONFIG))
    out.append((name, default, ConfigSource.DEFAULT_CONFIG))
    return out


def broker_config_entries(config: BrokerConfig) -> list[ConfigEntry]:
    """Every broker setting with its current value. All are read-only: they are static."""
    entries = []
    for setting in SETTINGS:
        synonyms = _broker_synonyms(config, setting.name)
        entries.append(ConfigEntry(
            name=setting.name,
            value=_setting_text(getattr(config, setting.attr)),
            source=synonyms[0][2],
            read_only=True,
            config_type=_setting_type(setting),
            documentation=setting.doc,
            synonyms=synonyms,
        ))
    return entries


# -- topic configs ---------------------------------------------------------------------
_TOPIC_TYPES = {name: ConfigType[spec.type] for name, spec in TOPIC_CONFIGS.items()}


def is_list_config(name: str) -> bool:
    return _TOPIC_TYPES.get(name) == ConfigType.LIST


def topic_defaults(state) -> LogConfig:
    """The effective config of a topic without overrides (the broker's log defaults)."""
    return state.logs.default_config


class AdminError(Exception):
    """A request item Kafka would refuse: the error ``code`` and a message for the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validated_overrides(state, overrides: dict[str, str | None], topic: str) -> LogConfig:
    """Check a whole proposed override set of ``topic`` as the log will read it; raise
    ``AdminError``.

    Unknown names and null values are INVALID_CONFIG, as in Kafka; values are checked by
    storage's ``LogConfig.from_kafka`` (the one validator), whose reason is passed on. An
    internal topic's set must also keep what it holds (``internal_topics.config_error``).
    """
    unknown = sorted(name for name in overrides if name not in TOPIC_CONFIGS)
    if unknown:
        raise AdminError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {', '.join(unknown)}")
    nulls = sorted(name for name, value in overrides.items() if value is None)
    if nulls:
        raise AdminError(ErrorCode.INVALID_CONFIG,
                             f"Null value not supported for topic configs: {','.join(nulls)}")
    try:
        config = LogConfig.from_kafka(overrides, topic_defaults(state))
    except InvalidConfigError as exc:
        raise AdminError(ErrorCode.INVALID_CONFIG, str(exc)) from None
    if is_internal(topic):
        reason = internal_config_error(topic, overrides, config)
        if reason is not None:
            raise AdminError(ErrorCode.INVALID_CONFIG, reason)
    return config


def topic_config_entries(state, overrides: dict[str, str],
                         keys: Iterable[str] | None = None) -> list[ConfigEntry]:
    """Every topic config (or those named in ``keys``) with source and synonyms.

    Sources follow Kafka: TOPIC_CONFIG when the topic overrides it, else the first broker
    synonym's source (STATIC_BROKER_CONFIG when a broker setting supplies a non-default
    value), else DEFAULT_CONFIG. Values are the effective ones, normalised as the log
    reads them (``"compact, delete"`` comes back as ``"compact,delete"``).
    """
    config = state.config
    effective = LogConfig.from_kafka(overrides, topic_defaults(state)).to_kafka()
    wanted = None if keys is None else set(keys)
    entries = []
    for name in sorted(TOPIC_CONFIGS):
        if wanted is not None and name not in wanted:
            continue
        synonyms: list[tuple[str, str | None, ConfigSource]] = []
        if name in overrides:
            synonyms.append((name, effective[name], ConfigSource.TOPIC_CONFIG))
        broker_name = TOPIC_CONFIG_SYNONYMS.get(name)
        if broker_name is not None:
            synonyms.extend(_broker_synonyms(config, broker_name))
        entries.append(ConfigEntry(
            name=name,
            value=effective[name],
            source=synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG,
            read_only=False,
            config_type=_TOPIC_TYPES[name],
            documentation=TOPIC_CONFIGS[name].doc,
            synonyms=synonyms,
        ))
    return entries


def effective_value(state, overrides: dict[str, str], name: str) -> str:
    """The value a topic config has now (override, else the broker's default)."""
    if name in overrides:
        return overrides[name]
    return topic_defaults(state).to_kafka()[name]


# -- AlterConfigs and IncrementalAlterConfigs ------------------------------------------
BROKER_CONFIGS_STATIC = (
    "Broker configs are static in kafkito: set them with --set, KAFKITO_* environment "
    "variables or the TOML file, and restart the broker."
)


def alter_config_resources(state, resources, validate_only: bool,
                           new_overrides) -> list[tuple[ErrorCode, str | None]]:
    """(error code, message) per resource, in request order, for both AlterConfigs APIs.

    ``new_overrides(state, current, entries)`` turns a topic's current override set and
    the request's entries into the complete new set, or raises ``AdminError``. The
    set is then validated whole and, unless ``validate_only``, persisted and applied to
    the open logs by ``LogManager.alter_topic_configs``.
    """
    dup = duplicates((r.resource_type, r.resource_name) for r in resources)
    results = []
    for resource in resources:
        if (resource.resource_type, resource.resource_name) in dup:
            results.append((ErrorCode.INVALID_REQUEST, "Duplicate resource."))
        elif resource.resource_type == ResourceType.TOPIC:
            results.append(_alter_topic(state, resource, validate_only, new_overrides))
        elif resource.resource_type in (ResourceType.BROKER, ResourceType.BROKER_LOGGER):
            results.append((ErrorCode.INVALID_REQUEST, BROKER_CONFIGS_STATIC))
        else:
            results.append((ErrorCode.INVALID_REQUEST,
                            f"Unsupported resource type: {resource.resource_type}"))
    return results


def _alter_topic(state, resource, validate_only: bool, new_overrides) -> tuple[ErrorCode, str | None]:
    name = resource.resource_name
    reason = topic_name_error(name)
    if reason is not None:
        return ErrorCode.INVALID_TOPIC_EXCEPTION, reason
    meta = state.logs.topic(name)
    if meta is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
    if duplicates(entry.name for entry in resource.configs):
        return ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys"
    try:
        overrides = new_overrides(state, dict(meta.configs), resource.configs)
        validated_overrides(state, overrides, name)
    except AdminError as exc:
        return exc.code, exc.message
    if validate_only:
        return ErrorCode.NONE, None
    try:
        state.logs.alter_topic_configs(name, overrides)
    except StorageError as exc:
        return storage_error_code(exc), str(exc)
    log.info("topic %s configs are now %s", name, overrides or "the defaults")
    return ErrorCode.NONE, None
