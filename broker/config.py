"""Broker configuration: Kafka's own setting names, validated once at startup.

Theory of operation
-------------------
Every setting the broker honours is declared once in ``SETTINGS`` with its Kafka name
(``num.partitions``), type, default and bounds. Values arrive as strings from four places,
later ones winning: the defaults, an optional TOML file, ``KAFKITO_*`` environment
variables (``KAFKITO_NUM_PARTITIONS=4``) and ``--set name=value`` flags. ``load_config``
parses and validates all of them and returns an immutable ``BrokerConfig`` whose
attributes are the Kafka names in snake_case (``config.num_partitions``). A bad name or
value raises ``ConfigError`` naming the setting and where it came from, so the command
line can exit with one clear line instead of a traceback.

Where kafkito's default differs from Kafka's, ``Setting.kafka_default`` records Kafka's
value and the README lists the difference (a dev broker should be quick to start and
quick to rebalance).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import msgspec

from kafkito.storage import LogConfig

__all__ = ["BrokerConfig", "ConfigError", "SETTINGS", "Setting", "load_config", "log_config_from"]

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
ENV_PREFIX = "KAFKITO_"


class ConfigError(ValueError):
    """A setting has an unknown name or an invalid value (the message names it)."""


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # int, bool, str or float
    default: Any
    doc: str
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[str, ...] | None = None
    kafka_default: Any = None  # set where kafkito deliberately differs from Kafka

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")

    def parse(self, raw: Any, origin: str) -> Any:
        """Turn a raw value (string, or a TOML scalar) into a checked value."""
        value: Any
        try:
            if self.kind is bool:
                value = _parse_bool(raw)
            elif self.kind is int:
                if isinstance(raw, bool):
                    raise ValueError("not an integer")
                value = int(str(raw).strip().replace("_", ""))
            elif self.kind is float:
                value = float(raw)
            else:
                value = str(raw)
        except ValueError:
            raise ConfigError(
                f"{self.name}: {raw!r} is not a valid {self.kind.__name__} (from {origin})"
            ) from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.name}: {value} is below the minimum {self.minimum} (from {origin})")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{self.name}: {value} is above the maximum {self.maximum} (from {origin})")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"{self.name}: {value!r} is not one of {', '.join(self.choices)} (from {origin})"
            )
        return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("not a boolean")


def _listener(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {raw!r}")
    return host.strip("[]"), int(port)


S = Setting
SETTINGS: tuple[Setting, ...] = (
    # Where and who.
    S("log.dirs", str, "./kafkito-data", "Data directory holding every partition log."),
    S("listeners", str, "127.0.0.1:9092", "HOST:PORT the broker listens on (port 0 picks a free port)."),
    S("advertised.listeners", str, "", "HOST:PORT clients are told to connect to (default: the listener)."),
    S("http.listeners", str, "127.0.0.1:9080",
      "kafkito only: HOST:PORT of the HTTP listener (the key index, later metrics and the "
      "console; port 0 picks a free port), or 'off'. 9080: beside Kafka's 9092 and clear of "
      "the ports of Schema Registry (8081), REST Proxy (8082), Connect (8083) and Prometheus "
      "(9090-9093)."),
    S("node.id", int, 0, "This broker's id in Metadata responses.", 0, INT32_MAX),
    # Topics.
    S("num.partitions", int, 1, "Partitions of an auto-created topic.", 1, 100_000),
    S("default.replication.factor", int, 1, "Replication factor reported for new topics.", 1, 32767),
    S("auto.create.topics.enable", bool, True, "Create a topic when Metadata names an unknown one."),
    S("strict.replication.factor", bool, False,
      "Reject CreateTopics with replication factor > 1, as a one-broker Kafka would."),
    S("delete.topic.enable", bool, True, "Allow DeleteTopics."),
    # kafkito-only limits (Kafka has no such setting; see the README).
    S("max.partitions", int, 100_000,
      "Partitions of all topics together; CreateTopics/CreatePartitions past it get "
      "POLICY_VIOLATION (KIP-578's name; not in Kafka).", 1, INT32_MAX),
    S("max.partitions.per.request", int, 10_000,
      "Partitions one CreateTopics or CreatePartitions request may add (Kafka's controller "
      "hard-codes 10,000); past it every topic gets POLICY_VIOLATION.", 1, INT32_MAX),
    S("auto.create.topics.max.per.request", int, 100,
      "Unknown topics one Metadata request may auto-create; the rest are answered "
      "LEADER_NOT_AVAILABLE (retriable) and created by the client's retries.", 0, INT32_MAX),
    S("log.open.files.max", int, 0,
      "Segment and index files kept open at once (an LRU; others reopen on demand). "
      "0: half of the process's RLIMIT_NOFILE (ulimit -n), the rest left to connections.",
      0, INT32_MAX),
    # Log defaults for topics (topic configs override them).
    S("log.segment.bytes", int, 1024**3, "Roll a segment at this size.", 1024, INT32_MAX),
    S("log.roll.ms", int, 7 * 24 * 3600 * 1000, "Roll a segment at this age.", 100, INT64_MAX),
    S("log.retention.ms", int, 7 * 24 * 3600 * 1000, "Delete closed segments older than this (-1: never).", -1, INT64_MAX),
    S("log.retention.bytes", int, -1, "Delete oldest segments beyond this size (-1: never).", -1, INT64_MAX),
    S("log.retention.check.interval.ms", int, 300_000, "How often retention runs.", 1, INT64_MAX),
    S("log.cleanup.policy", str, "delete", "Default cleanup.policy.", choices=("delete", "compact", "compact,delete", "delete,compact")),
    S("log.message.timestamp.type", str, "CreateTime", "Default message.timestamp.type.", choices=("CreateTime", "LogAppendTime")),
    S("log.index.interval.bytes", int, 4096, "Bytes between sparse index entries.", 0, INT32_MAX),
    S("log.segment.delete.delay.ms", int, 60_000, "Grace period before a deleted segment's files are closed.", 0, INT64_MAX),
    S("log.flush.interval.ms", int, 0,
      "Most time acks=0/1 data may wait for fsync (it becomes visible to consumers once flushed).",
      0, INT64_MAX, kafka_default="Long.MAX_VALUE (Kafka serves unflushed data)"),
    S("log.flush.interval.messages", int, INT64_MAX,
      "Flush a partition once this many messages are unflushed (a topic's flush.messages "
      "overrides it), without waiting for log.flush.interval.ms.", 1, INT64_MAX),
    S("log.flush.offset.checkpoint.interval.ms", int, 60_000,
      "How often each log's recovery point (its flushed offset) is checkpointed; an unclean "
      "start scans only segments past it.", 1, INT32_MAX),
    S("message.max.bytes", int, 1_048_588, "Largest record batch a topic accepts by default.", 0, INT32_MAX),
    S("message.decompressed.max.bytes", int, 64 * 1024 * 1024,
      "kafkito only: largest decompressed records section of one produce batch (larger: "
      "MESSAGE_TOO_LARGE), so a decompression bomb costs at most this.", 1024, INT32_MAX),
    S("log.message.timestamp.before.max.ms", int, INT64_MAX,
      "Default message.timestamp.before.max.ms: how far in the past a CreateTime record may be.",
      0, INT64_MAX),
    S("log.message.timestamp.after.max.ms", int, 3_600_000,
      "Default message.timestamp.after.max.ms: how far in the future a CreateTime record may be.",
      0, INT64_MAX),
    S("compression.type", str, "producer", "Default compression.type.",
      choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    # Log compaction (storage/cleaner.py, broker/log_cleaner.py).
    S("log.cleaner.enable", bool, True, "Run the log cleaner on topics with cleanup.policy=compact."),
    S("log.cleaner.threads", int, 1, "Cleaner worker threads (each cleans one log at a time; 0: none).", 0, 64),
    S("log.cleaner.dedupe.buffer.size", int, 128 * 1024 * 1024,
      "Memory for the key -> offset maps of all cleaner threads (24 bytes a key, as Kafka's); "
      "a log with more dirty keys is cleaned in several passes.", 1024 * 1024, INT64_MAX),
    S("log.cleaner.io.buffer.load.factor", float, 0.9, "Share of a dedupe buffer filled before a pass ends.",
      0.1, 1.0),
    S("log.cleaner.io.max.bytes.per.second", float, 1.7976931348623157e308,
      "Cleaner I/O (bytes read plus written, all threads) per second.", 1.0, None),
    S("log.cleaner.thread.nice", int, 10,
      "kafkito only: added to the nice value of the cleaner threads (Linux), so that a clean "
      "takes the CPU produce and fetch leave idle; 0 keeps the broker's priority.", 0, 19),
    S("log.cleaner.backoff.ms", int, 15_000, "Sleep of an idle cleaner thread before it looks again.", 0, INT64_MAX),
    S("log.cleaner.min.cleanable.ratio", float, 0.5, "Default min.cleanable.dirty.ratio.", 0.0, 1.0),
    S("log.cleaner.min.compaction.lag.ms", int, 0, "Default min.compaction.lag.ms.", 0, INT64_MAX),
    S("log.cleaner.max.compaction.lag.ms", int, INT64_MAX, "Default max.compaction.lag.ms.", 1, INT64_MAX),
    S("log.cleaner.delete.retention.ms", int, 86_400_000, "Default delete.retention.ms.", 0, INT64_MAX),
    # Network.
    S("socket.request.max.bytes", int, 104_857_600, "Largest request frame; larger ones close the connection.", 1, INT32_MAX),
    S("connections.max.idle.ms", int, 600_000, "Close connections idle this long.", 1, INT64_MAX),
    S("queued.max.requests", int, 500, "Requests one connection may have in flight before reading pauses.", 1, 1_000_000),
    S("queued.max.request.bytes", int, 536_870_912,
      "Request bytes all connections together may hold (the memory pool; -1: unbounded); "
      "a connection that cannot reserve its next frame pauses reading.", -1, INT64_MAX,
      kafka_default="-1 (unbounded)"),
    S("queued.max.request.bytes.per.connection", int, 104_857_600,
      "Request bytes one connection may hold of the pool (a connection holding nothing may "
      "always read one frame up to socket.request.max.bytes).", 1, INT64_MAX),
    S("queued.max.response.bytes.per.connection", int, 1_048_576,
      "Answer bytes waiting to be sent on one connection before it stops reading requests "
      "(file regions sent with sendfile do not count).", 1, INT64_MAX),
    S("socket.request.incomplete.timeout.ms", int, 30_000,
      "Close a connection whose request frame started but did not finish arriving within this "
      "time (time paused by the broker's own limits does not count).", 1, INT64_MAX),
    S("socket.response.stall.timeout.ms", int, 60_000,
      "Close a connection whose client has read none of its waiting answers for this long.", 1, INT64_MAX),
    S("max.connections", int, INT32_MAX,
      "Connections the broker keeps open; more are closed right after accept.", 0, INT32_MAX),
    S("max.connections.per.ip", int, INT32_MAX,
      "Connections one client address may keep open; more are closed right after accept.", 0, INT32_MAX),
    S("max.connection.creation.rate", int, INT32_MAX,
      "New connections accepted per second; more wait in the listen backlog.", 1, INT32_MAX),
    S("fetch.max.bytes", int, 57_671_680, "Broker cap on one Fetch response's record bytes.", 1024, INT32_MAX),
    S("max.waiting.fetches", int, 10_000, "Fetch requests that may wait for data at once.", 1, 10_000_000),
    # Groups and offsets.
    S("group.initial.rebalance.delay.ms", int, 300, "Wait for more members before the first rebalance.",
      0, INT32_MAX, kafka_default=3000),
    S("group.min.session.timeout.ms", int, 6000, "Smallest session timeout a member may ask for.", 1, INT32_MAX),
    S("group.max.session.timeout.ms", int, 1_800_000, "Largest session timeout a member may ask for.", 1, INT32_MAX),
    S("group.max.size", int, INT32_MAX, "Members one group may have.", 1, INT32_MAX),
    S("group.consumer.session.timeout.ms", int, 45_000,
      "Session timeout of KIP-848 consumer-group members.", 1, INT32_MAX),
    S("group.consumer.heartbeat.interval.ms", int, 1000,
      "Heartbeat interval KIP-848 consumer-group members are told to use.", 1, INT32_MAX, kafka_default=5000),
    S("offsets.topic.num.partitions", int, 1, "Partitions of __consumer_offsets.", 1, 1000, kafka_default=50),
    S("offsets.topic.segment.bytes", int, 100 * 1024 * 1024,
      "segment.bytes of __consumer_offsets when it is created (smaller: compacted sooner).",
      1024 * 1024, INT32_MAX),
    S("offsets.retention.minutes", int, 10080, "Keep an empty group's offsets this long.", 1, INT32_MAX),
    S("offsets.retention.check.interval.ms", int, 600_000, "How often expired offsets are removed.", 1, INT64_MAX),
    S("offset.metadata.max.bytes", int, 4096, "Largest offset-commit metadata string.", 0, INT32_MAX),
    # Tiered storage (KIP-405 names; the store URL is kafkito's: Kafka takes a plug-in).
    S("remote.log.storage.system.enable", bool, False,
      "Enable the remote tier for topics with remote.storage.enable=true (needs "
      "remote.log.storage.url; `kafkito serve --remote-storage URL` sets both)."),
    S("remote.log.storage.url", str, "",
      "kafkito only: the object store of the remote tier, file:///path or s3://bucket/prefix "
      "(endpoint and credentials from the AWS_* environment variables)."),
    S("remote.log.manager.task.interval.ms", int, 30_000,
      "How often each tiered partition is offloaded (closed segments uploaded).", 1, INT64_MAX),
    S("remote.log.manager.thread.pool.size", int, 2,
      "Partitions offloaded at once, each in a worker thread.", 1, 1024, kafka_default=10),
    S("remote.log.manager.task.retry.backoff.ms", int, 500,
      "First wait after a failed offload; doubles per failure.", 1, INT64_MAX),
    S("remote.log.manager.task.retry.backoff.max.ms", int, 30_000,
      "Longest wait between offload retries.", 1, INT64_MAX),
    S("remote.log.reader.threads", int, 10,
      "Fetches reading from the remote tier at once (each in a worker thread); more wait, so "
      "a slow store cannot take the threads flushes need.", 1, 1024),
    S("remote.log.reader.cache.bytes", int, 64 << 20,
      "kafkito only: bytes of remote segment chunks cached for reads.", 0, INT64_MAX),
    S("remote.log.reader.chunk.bytes", int, 1 << 20,
      "kafkito only: size of one ranged GET chunk of a remote segment.", 4096, INT32_MAX),
    S("remote.log.reader.readahead.chunks", int, 4,
      "kafkito only: chunks fetched past the one a read needs (sequential consumers).", 0, 1024),
    # Transactions.
    S("transaction.max.timeout.ms", int, 900_000, "Largest transaction timeout a producer may ask for.", 1, INT32_MAX),
    S("transactional.id.expiration.ms", int, 604_800_000,
      "Forget a transactional id idle (no transaction) this long.", 1, INT32_MAX),
    S("transaction.abort.timed.out.transaction.cleanup.interval.ms", int, 10_000,
      "How often transactions open past their timeout are aborted.", 1, INT32_MAX),
    S("transaction.remove.expired.transaction.cleanup.interval.ms", int, 3_600_000,
      "How often expired transactional ids are removed.", 1, INT32_MAX),
    S("transaction.state.log.num.partitions", int, 1, "Partitions of __transaction_state.", 1, 1000,
      kafka_default=50),
    S("transaction.state.log.segment.bytes", int, 100 * 1024 * 1024,
      "segment.bytes of __transaction_state when it is created (smaller: compacted sooner).",
      1024 * 1024, INT32_MAX),
)
del S

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

BrokerConfig = msgspec.defstruct(
    "BrokerConfig",
    [(s.attr, s.kind, s.default) for s in SETTINGS],
    frozen=True,
    module=__name__,
)
BrokerConfig.__doc__ = "Validated broker settings; attributes are Kafka names in snake_case."


def _with_listener_checks(values: dict[str, Any]) -> dict[str, Any]:
    for name in ("listeners", "advertised.listeners", "http.listeners"):
        raw = values[name]
        if raw and not (name == "http.listeners" and raw == "off"):
            try:
                _listener(raw)
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    pool = values["queued.max.request.bytes"]
    one_connection = max(values["queued.max.request.bytes.per.connection"], values["socket.request.max.bytes"])
    if pool == 0 or pool < -1:
        raise ConfigError(f"queued.max.request.bytes: {pool} must be positive or -1 (unbounded)")
    if pool != -1 and pool <= one_connection:
        raise ConfigError(
            f"queued.max.request.bytes ({pool}) must exceed what one connection may hold, the larger of "
            f"queued.max.request.bytes.per.connection and socket.request.max.bytes ({one_connection}), "
            "so that no connection can take the whole pool"
        )
    lo, hi = values["group.min.session.timeout.ms"], values["group.max.session.timeout.ms"]
    if lo > hi:
        raise ConfigError(f"group.min.session.timeout.ms ({lo}) exceeds group.max.session.timeout.ms ({hi})")
    return values


def _env_name(setting: Setting) -> str:
    return ENV_PREFIX + setting.name.upper().replace(".", "_")


def _apply(values: dict[str, Any], pairs: Iterable[tuple[str, Any]], origin: str) -> None:
    for name, raw in pairs:
        setting = SETTINGS_BY_NAME.get(name)
        if setting is None:
            raise ConfigError(f"unknown setting {name!r} (from {origin})")
        values[name] = setting.parse(raw, origin)


def _flatten_toml(table: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """TOML may nest (``[log] retention.ms = 5``) or quote dotted keys; both mean one name."""
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten_toml(value, name + ".")
        else:
            yield name, value


def parse_set_flags(flags: Iterable[str]) -> list[tuple[str, str]]:
    pairs = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects name=value, got {flag!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def load_config(
    *,
    config_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Iterable[tuple[str, Any]] = (),
    origin: str = "--set",
) -> BrokerConfig:
    """Defaults < TOML file < KAFKITO_* environment < explicit overrides."""
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    if config_file is not None:
        path = Path(config_file)
        try:
            table = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        _apply(values, _flatten_toml(table), f"config file {path}")
    env = os.environ if environ is None else environ
    for setting in SETTINGS:
        raw = env.get(_env_name(setting))
        if raw is not None:
            _apply(values, [(setting.name, raw)], f"environment {_env_name(setting)}")
    known_env = {_env_name(s) for s in SETTINGS}
    for key in env:
        if key.startswith(ENV_PREFIX) and key not in known_env:
            raise ConfigError(f"unknown setting in environment variable {key}")
    _apply(values, overrides, origin)
    _with_listener_checks(values)
    return BrokerConfig(**{SETTINGS_BY_NAME[name].attr: value for name, value in values.items()})


def listen_address(config: BrokerConfig) -> tuple[str, int]:
    return _listener(config.listeners)


def http_listen_address(config: BrokerConfig) -> tuple[str, int] | None:
    """The HTTP listener's address, or None when ``http.listeners`` is ``off``."""
    return None if config.http_listeners in ("off", "") else _listener(config.http_listeners)


def advertised_address(config: BrokerConfig, bound_port: int) -> tuple[str, int]:
    if config.advertised_listeners:
        return _listener(config.advertised_listeners)
    host, port = _listener(config.listeners)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return host, bound_port if port == 0 else port


def log_config_from(config: BrokerConfig) -> LogConfig:
    """The topic-config defaults this broker's settings imply."""
    return LogConfig.from_kafka(
        {
            "segment.bytes": str(config.log_segment_bytes),
            "segment.ms": str(config.log_roll_ms),
            "retention.ms": str(config.log_retention_ms),
            "retention.bytes": str(config.log_retention_bytes),
            "cleanup.policy": config.log_cleanup_policy,
            "message.timestamp.type": config.log_message_timestamp_type,
            "index.interval.bytes": str(config.log_index_interval_bytes),
            "file.delete.delay.ms": str(config.log_segment_delete_delay_ms),
            "max.message.bytes": str(config.message_max_bytes),
            "compression.type": config.compression_type,
            "message.timestamp.before.max.ms": str(config.log_message_timestamp_before_max_ms),
            "message.timestamp.after.max.ms": str(config.log_message_timestamp_after_max_ms),
            "min.cleanable.dirty.ratio": str(config.log_cleaner_min_cleanable_ratio),
            "min.compaction.lag.ms": str(config.log_cleaner_min_compaction_lag_ms),
            "max.compaction.lag.ms": str(config.log_cleaner_max_compaction_lag_ms),
            "delete.retention.ms": str(config.log_cleaner_delete_retention_ms),
        },
        LogConfig(),
    )


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(name, environment variable, default, doc) rows for ``kafkito config``/README."""
    return [(s.name, _env_name(s), str(s.default), s.doc) for s in SETTINGS]

