"""The configs an internal topic must keep, so that no config change loses what it holds.

Theory of operation
-------------------
Internal topics (``__``-prefixed: ``__consumer_offsets``, and ``__transaction_state`` once
transactions land) hold state the broker replays at start-up: committed offsets and group
metadata. Like Kafka, kafkito creates them compacted: the latest record of each key stays
forever, and the coordinator expires offsets itself (``offsets.retention.minutes``) by
writing tombstones. A config that lets the log delete segments by age or size drops a
group's latest commit silently: the coordinator keeps serving it from memory until the next
restart, and then it is gone (issue 10, finding 8: ``retention.ms=1`` through AlterConfigs,
whose whole-set semantics also dropped ``cleanup.policy=compact``).

``config_error`` is the one rule. It is applied by every path that changes a topic's
configs, through ``handlers/_admin.validated_overrides`` (CreateTopics, AlterConfigs,
IncrementalAlterConfigs, validate_only or not), and at start-up to an internal topic whose
stored overrides an older kafkito let through (``repaired_overrides``). The refusal is
INVALID_CONFIG with a message naming the rule: Kafka answers its own built-in config rules
(``LogConfig.validate``: e.g. remote storage on a compacted topic) with INVALID_CONFIG and
keeps POLICY_VIOLATION for operator-supplied policy classes.

The rules:

- the effective ``cleanup.policy`` is exactly ``compact``: ``delete`` (alone or with
  compact) deletes segments holding live commits;
- a ``retention.ms`` override is -1 or at least ``INTERNAL_RETENTION_MS_MIN`` (7 days):
  inert under compaction, but it becomes the deadline if the policy ever includes delete,
  and 7 days is what Kafka promises committed offsets of an empty group
  (``offsets.retention.minutes`` = 10080) and transactional ids
  (``transactional.id.expiration.ms``), so the log must not forget them sooner;
- a ``retention.bytes`` override is -1: deleting by size has no safe value, the oldest
  segment may hold a group's only commit;
- a ``segment.bytes`` override is at least ``INTERNAL_SEGMENT_BYTES_MIN`` (1 MiB, Kafka 4's
  floor for every topic): below it each commit rolls a segment, and the files and
  descriptors run out long before the disk does.

Only the policy is checked on the effective config; the other rules look at the topic's own
overrides, so a broker-wide default (``log.retention.bytes``, which compaction ignores)
does not lock an operator out of the topic.
"""

from __future__ import annotations

from typing import Mapping

from kafkito.storage import LogConfig

__all__ = ["INTERNAL_RETENTION_MS_MIN", "INTERNAL_SEGMENT_BYTES_MIN", "PROTECTED_CONFIGS",
           "config_error", "is_internal", "repaired_overrides"]

INTERNAL_RETENTION_MS_MIN = 7 * 24 * 60 * 60 * 1000
INTERNAL_SEGMENT_BYTES_MIN = 1024 * 1024
PROTECTED_CONFIGS = ("cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes")


def is_internal(name: str) -> bool:
    return name.startswith("__")


def config_error(topic: str, overrides: Mapping[str, str], config: LogConfig) -> str | None:
    """Why ``config`` (the effective config from ``overrides``) would let internal topic
    ``topic`` lose what it holds, or None. ``config`` is already validated per value."""
    why = f"{topic} is an internal topic and must keep every committed offset"
    if config.cleanup_policy != ("compact",):
        return (f"Invalid value {','.join(config.cleanup_policy)!r} for configuration "
                f"cleanup.policy: {why}, so its cleanup.policy must be exactly 'compact'.")
    if "retention.ms" in overrides and config.retention_ms != -1 \
            and config.retention_ms < INTERNAL_RETENTION_MS_MIN:
        return (f"Invalid value {config.retention_ms} for configuration retention.ms: {why}, "
                f"so retention.ms must be -1 or at least {INTERNAL_RETENTION_MS_MIN} (7 days, "
                "Kafka's offsets.retention.minutes).")
    if "retention.bytes" in overrides and config.retention_bytes != -1:
        return (f"Invalid value {config.retention_bytes} for configuration retention.bytes: "
                f"{why}, so retention.bytes must be -1 (deleting by size has no safe value).")
    if "segment.bytes" in overrides and config.segment_bytes < INTERNAL_SEGMENT_BYTES_MIN:
        return (f"Invalid value {config.segment_bytes} for configuration segment.bytes: {why}, "
                f"so segment.bytes must be at least {INTERNAL_SEGMENT_BYTES_MIN} (1 MiB).")
    return None


def repaired_overrides(overrides: Mapping[str, str], creation: Mapping[str, str]) -> dict[str, str]:
    """The override set with every protected config back to what the topic was created with."""
    kept = {k: v for k, v in overrides.items() if k not in PROTECTED_CONFIGS}
    kept.update((k, v) for k, v in creation.items() if k in PROTECTED_CONFIGS)
    return kept
