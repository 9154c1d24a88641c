"""A raw protocol client on our own codec: exact bytes, pipelining, no client library."""

from __future__ import annotations

import socket

from kafkito.protocol import CLOSED, FRAME_ANNOUNCED, NEED_DATA, FrameReader, decode_response, encode_request


class RawClient:
    _frames: FrameReader | None = None  # responses' framing, made on first receive

    def __init__(self, host: str, port: int, timeout_s: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.correlation_id = 0

    def send(self, api_key: int, version: int, body) -> int:
        self.correlation_id += 1
        self.sock.sendall(encode_request(api_key, version, self.correlation_id, "raw", body))
        return self.correlation_id

    def receive(self, api_key: int, version: int):
        """(correlation_id, response) of the next response on the wire."""
        if self._frames is None:
            self._frames = FrameReader(receive_buffer=bytearray(16 * 1024))
        frames = self._frames
        while True:
            event = frames.next_event()
            if event is FRAME_ANNOUNCED:
                event = frames.accept_frame()  # the frame, if it is whole already
                if event is not None:
                    return decode_response(api_key, version, event)
            elif event is NEED_DATA:
                # A response may come in several pieces (header, then sendfile); the
                # frame reader keeps whatever arrives past it for the next call.
                frames.receive_data(self.sock.recv(65536))
            elif event is CLOSED:
                raise ConnectionError("closed by the broker")
            else:
                return decode_response(api_key, version, event)

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
