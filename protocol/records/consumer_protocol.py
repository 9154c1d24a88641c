"""The consumer protocol's subscription and assignment (ConsumerProtocolSubscription.json,
ConsumerProtocolAssignment.json).

A classic consumer group's members send their subscription as the opaque metadata of a
JoinGroup protocol, and the leader sends each member's assignment as opaque SyncGroup
bytes; the broker relays both. It looks inside only to learn which topics a "consumer"
group reads (OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC, offset expiry of topics a Stable
group no longer subscribes to).

Both are versioned (int16 prefix) and never flexible. Kafka's own readers parse a newer
version with the newest layout they know, ignoring what follows, which is why
``read_subscribed_topics`` reads only the ``topics`` field that leads every version.
"""

from __future__ import annotations

from ..codec import field_reader
from ..errors import ProtocolError
from ..schema import field, struct
from ..types import BYTES, INT32, STRING, array
from .versioned import VersionedSchema

__all__ = [
    "CONSUMER_PROTOCOL_ASSIGNMENT",
    "CONSUMER_PROTOCOL_SUBSCRIPTION",
    "ConsumerProtocolAssignment",
    "ConsumerProtocolSubscription",
    "TopicPartition",
    "read_subscribed_topics",
]

TopicPartition = struct(
    "TopicPartition",
    field("topic", STRING),
    field("partitions", array(INT32)),
)

ConsumerProtocolSubscription = struct(
    "ConsumerProtocolSubscription",
    field("topics", array(STRING)),
    field("user_data", BYTES, nullable="0+"),
    field("owned_partitions", array(TopicPartition), "1+"),
    field("generation_id", INT32, "2+", default=-1),
    field("rack_id", STRING, "3+", nullable="3+", default=None),
)

ConsumerProtocolAssignment = struct(
    "ConsumerProtocolAssignment",
    field("assigned_partitions", array(TopicPartition)),
    field("user_data", BYTES, nullable="0+"),
)

CONSUMER_PROTOCOL_SUBSCRIPTION = VersionedSchema(ConsumerProtocolSubscription, "0-3")
CONSUMER_PROTOCOL_ASSIGNMENT = VersionedSchema(ConsumerProtocolAssignment, "0-3")

_read_topics = field_reader(ConsumerProtocolSubscription.__kafka_fields__[0], 0, False)


def read_subscribed_topics(metadata: bytes | memoryview) -> list[str]:
    """The subscription's topics, whatever its version; raises ProtocolError if the
    leading version and topic array do not parse."""
    buf = memoryview(metadata)
    if len(buf) < 2:
        raise ProtocolError("subscription too short for a version")
    try:
        topics, _ = _read_topics(buf, 2)
    except (IndexError, ValueError) as exc:  # struct.error is a ValueError
        raise ProtocolError(f"subscription does not parse: {exc}") from None
    return topics
