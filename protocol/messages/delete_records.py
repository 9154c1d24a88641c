"""DeleteRecords (key 21): Move partitions' log start offsets forward.

Declared v0-2, flexible from v2.
v2 is flexible.
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, INT64, STRING, array


DeleteRecordsPartition = struct(
    "DeleteRecordsPartition",
    field("partition_index", INT32),
    field("offset", INT64),
)


DeleteRecordsTopic = struct(
    "DeleteRecordsTopic",
    field("name", STRING),
    field("partitions", array(DeleteRecordsPartition)),
)


DeleteRecordsRequest = struct(
    "DeleteRecordsRequest",
    field("topics", array(DeleteRecordsTopic)),
    field("timeout_ms", INT32),
)


DeleteRecordsPartitionResult = struct(
    "DeleteRecordsPartitionResult",
    field("partition_index", INT32),
    field("low_watermark", INT64),
    field("error_code", INT16),
)


DeleteRecordsTopicResult = struct(
    "DeleteRecordsTopicResult",
    field("name", STRING),
    field("partitions", array(DeleteRecordsPartitionResult)),
)


DeleteRecordsResponse = struct(
    "DeleteRecordsResponse",
    field("throttle_time_ms", INT32),
    field("topics", array(DeleteRecordsTopicResult)),
)

SPEC = ApiSpec(21, "DeleteRecords", "0-2", "2+", DeleteRecordsRequest, DeleteRecordsResponse)
