"""A raw protocol client on our own codec: exact bytes, pipelining, no client library."""

from __future__ import annotations

import socket
import struct

from kafkito.protocol import decode_response, encode_request


class RawClient:
    def __init__(self, host: str, port: int, timeout_s: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.correlation_id = 0

    def send(self, api_key: int, version: int, body) -> int:
        self.correlation_id += 1
        self.sock.sendall(encode_request(api_key, version, self.correlation_id, "raw", body))
        return self.correlation_id

    def receive(self, api_key: int, version: int):
        """(correlation_id, response) of the next response on the wire."""
        header = self._recv_exactly(4)
        size = struct.unpack(">i", header)[0]
        return decode_response(api_key, version, self._recv_exactly(size))

    def _recv_exactly(self, size: int) -> bytes:
        # MSG_WAITALL is not enough: a socket with a timeout is non-blocking underneath,
        # and a response sent in two writes (header, then sendfile) arrives in two parts.
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed by the broker")
            data += chunk
        return bytes(data)

    def call(self, api_key: int, version: int, body):
        sent = self.send(api_key, version, body)
        correlation_id, response = self.receive(api_key, version)
        assert correlation_id == sent
        return response

    def closed_by_broker(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


# -- group offsets, as a group-less ("simple") consumer commits them ----------------------
def commit_offset(raw: RawClient, group: str, topic: str, partition: int, offset: int) -> int:
    """OffsetCommit v8 with generation -1; returns the partition's error code."""
    from kafkito.protocol import ApiKey
    from kafkito.protocol.messages.offset_commit import (
        OffsetCommitRequest,
        OffsetCommitRequestPartition,
        OffsetCommitRequestTopic,
    )

    request = OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                  group_instance_id=None, topics=[OffsetCommitRequestTopic(
                                      name=topic, partitions=[OffsetCommitRequestPartition(
                                          partition_index=partition, committed_offset=offset,
                                          committed_metadata="")])])
    return raw.call(ApiKey.OFFSET_COMMIT, 8, request).topics[0].partitions[0].error_code


def committed_offset(raw: RawClient, group: str, topic: str, partition: int) -> tuple[int, int]:
    """OffsetFetch v7: (error code, committed offset or -1)."""
    from kafkito.protocol import ApiKey
    from kafkito.protocol.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestTopic

    request = OffsetFetchRequest(group_id=group, require_stable=False, topics=[
        OffsetFetchRequestTopic(name=topic, partition_indexes=[partition])])
    part = raw.call(ApiKey.OFFSET_FETCH, 7, request).topics[0].partitions[0]
    return part.error_code, part.committed_offset


def list_offset(raw: RawClient, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
    """ListOffsets v5 (-1 latest = the high watermark, -2 earliest): (error code, offset)."""
    from kafkito.protocol import ApiKey
    from kafkito.protocol.messages.list_offsets import (
        ListOffsetsPartition,
        ListOffsetsRequest,
        ListOffsetsTopic,
    )

    request = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[ListOffsetsTopic(
        name=topic, partitions=[ListOffsetsPartition(partition_index=partition, timestamp=timestamp)])])
    part = raw.call(ApiKey.LIST_OFFSETS, 5, request).topics[0].partitions[0]
    return part.error_code, part.offset
