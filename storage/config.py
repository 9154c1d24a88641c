"""Topic configuration: Kafka's topic config names, types, defaults and validators.

``TOPIC_CONFIGS`` is the single table of known topic configs (DescribeConfigs and
AlterConfigs are answered from it). ``LogConfig`` is the typed, immutable view a
``PartitionLog`` reads: each Kafka name maps to the snake_case attribute of the same words
(``retention.ms`` -> ``retention_ms``). A topic stores only its overrides as Kafka strings;
its effective config is ``LogConfig.from_kafka(overrides, base=broker_defaults)``.

Defaults are Kafka's (3.x/4.x topic-level defaults). Note ``flush.ms`` and ``flush.messages``
default to Long.MAX_VALUE as in Kafka: durability then comes from explicit flushes (acks=all)
and segment rolls, and the broker decides how often to flush acks=1 data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from .errors import InvalidConfigError

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
SEGMENT_BYTES_MIN = 1024  # Kafka: 1 MiB (14 bytes before 4.0)
SEGMENT_MS_MIN = 100  # Kafka: 1 ms


class LogConfig(msgspec.Struct, frozen=True, kw_only=True):
    cleanup_policy: tuple[str, ...] = ("delete",)
    compression_type: str = "producer"
    delete_retention_ms: int = 86_400_000
    file_delete_delay_ms: int = 60_000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    index_interval_bytes: int = 4096
    key_index_enable: bool = False  # kafkito only: the per-key index (key_index.py)
    local_retention_bytes: int = -2
    local_retention_ms: int = -2
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1_048_588
    message_timestamp_after_max_ms: int = 3_600_000  # Kafka 4.0 (KIP-1030): one hour
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_type: str = "CreateTime"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
    remote_storage_enable: bool = False
    remote_storage_parquet_enable: bool = False  # kafkito: Parquet beside offloaded segments
    remote_storage_parquet_json_columns: bool = False  # kafkito: JSON fields as columns
    retention_bytes: int = -1
    retention_ms: int = 604_800_000
    segment_bytes: int = 1_073_741_824
    segment_index_bytes: int = 10_485_760
    segment_jitter_ms: int = 0
    segment_ms: int = 604_800_000
    unclean_leader_election_enable: bool = False

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_kafka(cls, overrides: dict[str, str], base: "LogConfig | None" = None) -> "LogConfig":
        """Validate ``overrides`` (Kafka names, string values) and apply them over ``base``."""
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            spec = TOPIC_CONFIGS.get(name)
            if spec is None:
                raise InvalidConfigError(name, value, "unknown topic config")
            changes[spec.attr] = spec.parse(value)
        return msgspec.structs.replace(base or cls(), **changes)

    def to_kafka(self) -> dict[str, str]:
        """Every known config as a Kafka string, keyed by Kafka name."""
        return {name: spec.render(getattr(self, spec.attr)) for name, spec in TOPIC_CONFIGS.items()}


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ConfigSpec:
    name: str
    type: str  # Kafka's ConfigDef type: LONG, INT, DOUBLE, BOOLEAN, STRING, LIST
    default: Any
    doc: str
    validator: Callable[[Any], str | None] | None = None  # returns a reason when invalid
    choices: tuple[str, ...] | None = None

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")

    def parse(self, raw: str) -> Any:
        value = raw.strip() if isinstance(raw, str) else raw
        try:
            if self.type in ("LONG", "INT"):
                parsed: Any = int(value)
                low, high = (-(2**63), LONG_MAX) if self.type == "LONG" else (-(2**31), INT_MAX)
                if not low <= parsed <= high:
                    raise ValueError
            elif self.type == "DOUBLE":
                parsed = float(value)
            elif self.type == "BOOLEAN":
                if str(value).lower() not in ("true", "false"):
                    raise ValueError
                parsed = str(value).lower() == "true"
            elif self.type == "LIST":
                parsed = tuple(p.strip() for p in str(value).split(",") if p.strip())
            else:
                parsed = str(value)
        except ValueError:
            raise InvalidConfigError(self.name, raw, f"expected a value of type {self.type}") from None
        if self.choices is not None:
            items = parsed if isinstance(parsed, tuple) else (parsed,)
            for item in items:
                if item not in self.choices:
                    raise InvalidConfigError(
                        self.name, raw, f"must be one of {', '.join(self.choices)}"
                    )
        if self.validator is not None:
            reason = self.validator(parsed)
            if reason:
                raise InvalidConfigError(self.name, raw, reason)
        return parsed

    def render(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low}"


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _non_empty(v: tuple) -> str | None:
    return None if v else "must not be empty"


_D = LogConfig()

_SPECS = [
    ConfigSpec("cleanup.policy", "LIST", _D.cleanup_policy,
               "delete and/or compact: what happens to old segments.",
               _non_empty, ("delete", "compact")),
    ConfigSpec("compression.type", "STRING", _D.compression_type,
               "Final codec of the topic; 'producer' keeps what the producer sent.",
               None, ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
    ConfigSpec("delete.retention.ms", "LONG", _D.delete_retention_ms,
               "How long tombstones are kept on compacted topics.", at_least(0)),
    ConfigSpec("file.delete.delay.ms", "LONG", _D.file_delete_delay_ms,
               "Delay before a deleted segment's files are closed and removed.", at_least(0)),
    ConfigSpec("flush.messages", "LONG", _D.flush_messages,
               "fsync after this many unflushed messages.", at_least(1)),
    ConfigSpec("flush.ms", "LONG", _D.flush_ms,
               "fsync unflushed data at least this often (background policy).", at_least(0)),
    ConfigSpec("index.interval.bytes", "INT", _D.index_interval_bytes,
               "Bytes of log between two offset index entries.", at_least(0)),
    ConfigSpec("key.index.enable", "BOOLEAN", _D.key_index_enable,
               "kafkito only: keep a per-segment index from record key to its batches, "
               "served by the HTTP listener's /v1/topics/{topic}/keys/{key}/records.", None),
    ConfigSpec("local.retention.bytes", "LONG", _D.local_retention_bytes,
               "Tiered storage: local bytes to keep (-2: use retention.bytes).", at_least(-2)),
    ConfigSpec("local.retention.ms", "LONG", _D.local_retention_ms,
               "Tiered storage: local time to keep (-2: use retention.ms).", at_least(-2)),
    ConfigSpec("max.compaction.lag.ms", "LONG", _D.max_compaction_lag_ms,
               "Longest time a record stays uncompacted.", at_least(1)),
    ConfigSpec("max.message.bytes", "INT", _D.max_message_bytes,
               "Largest record batch size accepted.", at_least(0)),
    ConfigSpec("message.timestamp.after.max.ms", "LONG", _D.message_timestamp_after_max_ms,
               "Largest allowed distance of a record timestamp into the future.", at_least(0)),
    ConfigSpec("message.timestamp.before.max.ms", "LONG", _D.message_timestamp_before_max_ms,
               "Largest allowed distance of a record timestamp into the past.", at_least(0)),
    ConfigSpec("message.timestamp.type", "STRING", _D.message_timestamp_type,
               "CreateTime (producer's timestamp) or LogAppendTime (broker's clock).",
               None, ("CreateTime", "LogAppendTime")),
    ConfigSpec("min.cleanable.dirty.ratio", "DOUBLE", _D.min_cleanable_dirty_ratio,
               "Dirty share of the log above which the cleaner runs.", between(0, 1)),
    ConfigSpec("min.compaction.lag.ms", "LONG", _D.min_compaction_lag_ms,
               "Shortest time a record stays uncompacted.", at_least(0)),
    ConfigSpec("min.insync.replicas", "INT", _D.min_insync_replicas,
               "Replicas that must acknowledge acks=all writes (always met on one node).",
               at_least(1)),
    ConfigSpec("preallocate", "BOOLEAN", _D.preallocate,
               "Preallocate segment files (accepted, not used).", None),
    ConfigSpec("remote.storage.enable", "BOOLEAN", _D.remote_storage_enable,
               "Offload closed segments to the remote tier.", None),
    ConfigSpec("remote.storage.parquet.enable", "BOOLEAN", _D.remote_storage_parquet_enable,
               "kafkito: also write each offloaded segment as a Parquet file beside it.", None),
    ConfigSpec("remote.storage.parquet.json.columns", "BOOLEAN",
               _D.remote_storage_parquet_json_columns,
               "kafkito: top-level fields of JSON object values become Parquet columns.", None),
    ConfigSpec("retention.bytes", "LONG", _D.retention_bytes,
               "Largest partition size before old segments are deleted (-1: no limit).", None),
    ConfigSpec("retention.ms", "LONG", _D.retention_ms,
               "Age after which segments are deleted (-1: no limit).", at_least(-1)),
    # Floors far below Kafka's (1 MiB, 1 ms... but Kafka's tests only): small enough to watch
    # rolls and compaction happen in seconds, large enough that a segment holds a batch.
    ConfigSpec("segment.bytes", "INT", _D.segment_bytes,
               "Size at which the active segment is rolled.", at_least(SEGMENT_BYTES_MIN)),
    ConfigSpec("segment.index.bytes", "INT", _D.segment_index_bytes,
               "Largest offset/time index size; a full index rolls the segment.", at_least(4)),
    ConfigSpec("segment.jitter.ms", "LONG", _D.segment_jitter_ms,
               "Random jitter subtracted from segment.ms (accepted, not used).", at_least(0)),
    ConfigSpec("segment.ms", "LONG", _D.segment_ms,
               "Age at which the active segment is rolled.", at_least(SEGMENT_MS_MIN)),
    ConfigSpec("unclean.leader.election.enable", "BOOLEAN", _D.unclean_leader_election_enable,
               "Accepted for compatibility; a single node has no other replica.", None),
]

TOPIC_CONFIGS: dict[str, ConfigSpec] = {s.name: s for s in _SPECS}
assert all(s.attr in LogConfig.__struct_fields__ for s in _SPECS)
assert len(TOPIC_CONFIGS) == len(LogConfig.__struct_fields__)
