"""DeleteTopics (key 20): Delete topics by name, or by topic id from v6.

Declared v0-6, flexible from v4.
v4 is flexible; v5 error_message; v6 names topics by name or topic_id (``topics``).
"""

from ..schema import ApiSpec, field, struct
from ..types import INT16, INT32, STRING, UUID, array


DeleteTopicState = struct(
    "DeleteTopicState",
    field("name", STRING, "6+", nullable="6+"),
    field("topic_id", UUID, "6+"),
)


DeleteTopicsRequest = struct(
    "DeleteTopicsRequest",
    field("topics", array(DeleteTopicState), "6+"),
    field("topic_names", array(STRING), "0-5"),
    field("timeout_ms", INT32),
)


DeletableTopicResult = struct(
    "DeletableTopicResult",
    field("name", STRING, nullable="6+"),
    field("topic_id", UUID, "6+"),
    field("error_code", INT16),
    field("error_message", STRING, "5+", nullable="5+"),
)


DeleteTopicsResponse = struct(
    "DeleteTopicsResponse",
    field("throttle_time_ms", INT32, "1+"),
    field("responses", array(DeletableTopicResult)),
)

SPEC = ApiSpec(20, "DeleteTopics", "0-6", "4+", DeleteTopicsRequest, DeleteTopicsResponse)
