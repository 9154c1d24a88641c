"""The records of ``__consumer_offsets`` (Kafka's group-coordinator schemas).

Every key starts with its record type (Kafka's ``apiKey`` of the key schema; in Kafka
before 4.0 this int16 was called the key "version"):

====  ========================================  ==========================================
type  key                                       value (versions; first flexible)
====  ========================================  ==========================================
0, 1  OffsetCommitKey (group, topic, partition)  OffsetCommitValue (0-4; 4)
2     GroupMetadataKey (group)                  GroupMetadataValue (0-4; 4)
3     ConsumerGroupMetadataKey                  ConsumerGroupMetadataValue (0; 0)
5     ConsumerGroupMemberMetadataKey            ConsumerGroupMemberMetadataValue (0; 0)
6     ConsumerGroupTargetAssignmentMetadataKey  ConsumerGroupTargetAssignmentMetadataValue
7     ConsumerGroupTargetAssignmentMemberKey    ConsumerGroupTargetAssignmentMemberValue
8     ConsumerGroupCurrentMemberAssignmentKey   ConsumerGroupCurrentMemberAssignmentValue
====  ========================================  ==========================================

Type 0 is Kafka's LegacyOffsetCommitKey, laid out exactly as type 1; both decode to
``OffsetCommitKey``. The value versions that matter for old data: OffsetCommitValue v1
is the only one with an explicit ``expire_timestamp`` (OffsetCommit v2-v4's retention)
and has no leader epoch, v3 adds the leader epoch; GroupMetadataValue v1 adds the
rebalance timeout, v2 the state timestamp, v3 the member's ``group.instance.id``.

kafkito's group coordinator writes types 1 and 2 only (OffsetCommitValue v3, or v1 when an
expiry was asked for; GroupMetadataValue v3), what a Kafka 3.x broker writes. KIP-848
groups keep their membership in memory (see ``broker/group/consumer_group.py``), so the
types 3 and 5-8 are declared for reading and checking Kafka's data, not written today.
Type 4 (ConsumerGroupPartitionMetadata, whose layout changed between Kafka releases and
which Kafka 4.1 stopped writing) and the share and streams groups' types (9 and up) are
not declared: a reader skips them.
"""

from __future__ import annotations

from ..schema import field, struct
from ..types import BYTES, INT8, INT32, INT64, STRING, UUID, array
from .versioned import CoordinatorRecordType, CoordinatorRecords, VersionedSchema

__all__ = [
    "CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT",
    "CONSUMER_GROUP_MEMBER_METADATA",
    "CONSUMER_GROUP_METADATA",
    "CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER",
    "CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA",
    "CONSUMER_OFFSETS_RECORDS",
    "ClassicMemberMetadata",
    "ClassicProtocol",
    "ConsumerGroupCurrentMemberAssignmentKey",
    "ConsumerGroupCurrentMemberAssignmentValue",
    "ConsumerGroupMemberMetadataKey",
    "ConsumerGroupMemberMetadataValue",
    "ConsumerGroupMetadataKey",
    "ConsumerGroupMetadataValue",
    "ConsumerGroupTargetAssignmentMemberKey",
    "ConsumerGroupTargetAssignmentMemberValue",
    "ConsumerGroupTargetAssignmentMetadataKey",
    "ConsumerGroupTargetAssignmentMetadataValue",
    "GROUP_METADATA",
    "GroupMetadataKey",
    "GroupMetadataValue",
    "LEGACY_OFFSET_COMMIT",
    "MemberMetadata",
    "OFFSET_COMMIT",
    "OffsetCommitKey",
    "OffsetCommitValue",
    "TopicPartitions",
]

# ------------------------------------------------------------------ offsets and classic groups
OffsetCommitKey = struct(
    "OffsetCommitKey",
    field("group", STRING),
    field("topic", STRING),
    field("partition", INT32),
)

OffsetCommitValue = struct(
    "OffsetCommitValue",
    field("offset", INT64),
    field("leader_epoch", INT32, "3+", default=-1),
    field("metadata", STRING),
    field("commit_timestamp", INT64),
    field("expire_timestamp", INT64, "1", default=-1),
)

GroupMetadataKey = struct(
    "GroupMetadataKey",
    field("group", STRING),
)

MemberMetadata = struct(
    "MemberMetadata",
    field("member_id", STRING),
    field("group_instance_id", STRING, "3+", nullable="3+", default=None),
    field("client_id", STRING),
    field("client_host", STRING),
    field("rebalance_timeout", INT32, "1+"),
    field("session_timeout", INT32),
    field("subscription", BYTES),
    field("assignment", BYTES),
)

GroupMetadataValue = struct(
    "GroupMetadataValue",
    field("protocol_type", STRING),
    field("generation", INT32),
    field("protocol", STRING, nullable="0+"),
    field("leader", STRING, nullable="0+"),
    field("current_state_timestamp", INT64, "2+", default=-1),
    field("members", array(MemberMetadata)),
)

# ------------------------------------------------------------------ KIP-848 consumer groups
ConsumerGroupMetadataKey = struct("ConsumerGroupMetadataKey", field("group_id", STRING))

ConsumerGroupMetadataValue = struct(
    "ConsumerGroupMetadataValue",
    field("epoch", INT32),
    field("metadata_hash", INT64, tag=0, default=0),
)

ConsumerGroupMemberMetadataKey = struct(
    "ConsumerGroupMemberMetadataKey",
    field("group_id", STRING),
    field("member_id", STRING),
)

ClassicProtocol = struct(
    "ClassicProtocol",
    field("name", STRING),
    field("metadata", BYTES),
)

ClassicMemberMetadata = struct(
    "ClassicMemberMetadata",
    field("supported_protocols", array(ClassicProtocol)),
)

ConsumerGroupMemberMetadataValue = struct(
    "ConsumerGroupMemberMetadataValue",
    field("instance_id", STRING, nullable="0+"),
    field("rack_id", STRING, nullable="0+"),
    field("client_id", STRING),
    field("client_host", STRING),
    field("subscribed_topic_names", array(STRING)),
    field("subscribed_topic_regex", STRING, nullable="0+"),
    field("rebalance_timeout_ms", INT32, default=-1),
    field("server_assignor", STRING, nullable="0+"),
    field("classic_member_metadata", ClassicMemberMetadata, nullable="0+", default=None, tag=0),
)

ConsumerGroupTargetAssignmentMetadataKey = struct(
    "ConsumerGroupTargetAssignmentMetadataKey", field("group_id", STRING))

ConsumerGroupTargetAssignmentMetadataValue = struct(
    "ConsumerGroupTargetAssignmentMetadataValue",
    field("assignment_epoch", INT32),
)

ConsumerGroupTargetAssignmentMemberKey = struct(
    "ConsumerGroupTargetAssignmentMemberKey",
    field("group_id", STRING),
    field("member_id", STRING),
)

TopicPartitions = struct(
    "TopicPartitions",
    field("topic_id", UUID),
    field("partitions", array(INT32)),
)

ConsumerGroupTargetAssignmentMemberValue = struct(
    "ConsumerGroupTargetAssignmentMemberValue",
    field("topic_partitions", array(TopicPartitions)),
)

ConsumerGroupCurrentMemberAssignmentKey = struct(
    "ConsumerGroupCurrentMemberAssignmentKey",
    field("group_id", STRING),
    field("member_id", STRING),
)

ConsumerGroupCurrentMemberAssignmentValue = struct(
    "ConsumerGroupCurrentMemberAssignmentValue",
    field("member_epoch", INT32),
    field("previous_member_epoch", INT32),
    field("state", INT8),
    field("assigned_partitions", array(TopicPartitions)),
    field("partitions_pending_revocation", array(TopicPartitions)),
)

# ------------------------------------------------------------------ the table
LEGACY_OFFSET_COMMIT = CoordinatorRecordType(0, OffsetCommitKey, VersionedSchema(OffsetCommitValue, "0-4", "4+"))
OFFSET_COMMIT = CoordinatorRecordType(1, OffsetCommitKey, LEGACY_OFFSET_COMMIT.value)
GROUP_METADATA = CoordinatorRecordType(2, GroupMetadataKey, VersionedSchema(GroupMetadataValue, "0-4", "4+"))


def _kip848(record_type: int, key, value) -> CoordinatorRecordType:
    return CoordinatorRecordType(record_type, key, VersionedSchema(value, "0", "0+"))


CONSUMER_GROUP_METADATA = _kip848(3, ConsumerGroupMetadataKey, ConsumerGroupMetadataValue)
CONSUMER_GROUP_MEMBER_METADATA = _kip848(5, ConsumerGroupMemberMetadataKey, ConsumerGroupMemberMetadataValue)
CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA = _kip848(6, ConsumerGroupTargetAssignmentMetadataKey,
                                                    ConsumerGroupTargetAssignmentMetadataValue)
CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER = _kip848(7, ConsumerGroupTargetAssignmentMemberKey,
                                                  ConsumerGroupTargetAssignmentMemberValue)
CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT = _kip848(8, ConsumerGroupCurrentMemberAssignmentKey,
                                                   ConsumerGroupCurrentMemberAssignmentValue)

CONSUMER_OFFSETS_RECORDS = CoordinatorRecords("__consumer_offsets", [
    LEGACY_OFFSET_COMMIT,
    OFFSET_COMMIT,
    GROUP_METADATA,
    CONSUMER_GROUP_METADATA,
    CONSUMER_GROUP_MEMBER_METADATA,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
    CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
])

