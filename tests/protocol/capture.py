"""A capture listener: real clients connect, we keep the exact request frames they send.

It is a toy broker on a loopback socket, one thread per connection. Every request frame is
recorded as sent (without the size prefix) and answered from our own encoder, just well
enough to make the client send its next request: ApiVersions lists every declared range,
Metadata names this listener as broker 0 and the leader of one partition per topic,
FindCoordinator points at it, JoinGroup makes the caller leader, SyncGroup hands the
leader's own assignment back, produce and offset requests succeed, fetches return no
records. Anything else gets the response type's defaults (error_code NONE). The frames
it records are the golden test data (see capture_clients.py to regenerate them).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid

from kafkito.protocol import SPECS, ApiKey, ErrorCode, decode_request, encode_response_bytes
from kafkito.protocol.messages import (
    add_partitions_to_txn,
    api_versions,
    consumer_group_describe,
    describe_groups,
    create_topics,
    fetch,
    find_coordinator,
    init_producer_id,
    join_group,
    list_offsets,
    metadata,
    offset_commit,
    offset_fetch,
    produce,
    sync_group,
    txn_offset_commit,
)


def topic_id(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.golden.kafkito")


class CaptureBroker:
    """Listens on 127.0.0.1:<free port>; ``frames`` collects (api_key, version, bytes)."""

    def __init__(self, fetch_delay_s: float = 0.1) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.frames: list[tuple[int, int, bytes]] = []
        self.errors: list[str] = []
        self.fetch_delay_s = fetch_delay_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> CaptureBroker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.sock.close()
        for c in list(self._conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                head = _recv_exactly(conn, 4)
                if head is None:
                    return
                (size,) = struct.unpack(">i", head)
                frame = _recv_exactly(conn, size)
                if frame is None:
                    return
                api_key, api_version = struct.unpack_from(">hh", frame, 0)
                with self._lock:
                    self.frames.append((api_key, api_version, frame))
                try:
                    header, request = decode_request(frame)
                except Exception as e:  # recorded; the golden test will show it
                    self.errors.append(f"{api_key} v{api_version}: {e!r}")
                    return
                body = self._respond(header, request)
                if body is None:
                    continue
                conn.sendall(
                    encode_response_bytes(header.api_key, header.api_version, header.correlation_id, body)
                )
        except OSError:
            return
        finally:
            conn.close()

    # -- responders ----------------------------------------------------------------------

    def _respond(self, header, req):
        key, v = header.api_key, header.api_version
        handler = getattr(self, f"_on_{ApiKey(key).name.lower()}", None)
        if handler is not None:
            return handler(req, v)
        return SPECS[key].response()

    def _on_api_versions(self, req, v):
        keys = [
            api_versions.ApiVersion(api_key=s.api_key, min_version=s.min_version, max_version=s.max_version)
            for s in SPECS.values()
        ]
        return api_versions.ApiVersionsResponse(api_keys=keys)

    def _on_metadata(self, req, v):
        names = [t.name for t in (req.topics or []) if t.name] or ["golden"]
        md = metadata
        return md.MetadataResponse(
            brokers=[md.MetadataResponseBroker(node_id=0, host="127.0.0.1", port=self.port)],
            cluster_id="golden-cluster",
            controller_id=0,
            topics=[
                md.MetadataResponseTopic(
                    name=n,
                    topic_id=topic_id(n),
                    partitions=[
                        md.MetadataResponsePartition(
                            partition_index=0, leader_id=0, leader_epoch=0, replica_nodes=[0], isr_nodes=[0]
                        )
                    ],
                )
                for n in names
            ],
        )

    def _on_find_coordinator(self, req, v):
        fc = find_coordinator
        keys = req.coordinator_keys if v >= 4 else [req.key]
        return fc.FindCoordinatorResponse(
            node_id=0,
            host="127.0.0.1",
            port=self.port,
            coordinators=[fc.Coordinator(key=k, node_id=0, host="127.0.0.1", port=self.port) for k in keys],
        )

    def _on_join_group(self, req, v):
        jg = join_group
        member_id = req.member_id or "member-1"
        first = req.protocols[0] if req.protocols else jg.JoinGroupRequestProtocol()
        return jg.JoinGroupResponse(
            generation_id=1,
            protocol_type=req.protocol_type,
            protocol_name=first.name,
            leader=member_id,
            member_id=member_id,
            members=[jg.JoinGroupResponseMember(member_id=member_id, metadata=first.metadata)],
        )

    def _on_sync_group(self, req, v):
        mine = [a.assignment for a in req.assignments if a.member_id == req.member_id]
        return sync_group.SyncGroupResponse(
            protocol_type=req.protocol_type,
            protocol_name=req.protocol_name,
            assignment=mine[0] if mine else b"",
        )

    def _on_init_producer_id(self, req, v):
        return init_producer_id.InitProducerIdResponse(producer_id=1000, producer_epoch=0)

    def _on_produce(self, req, v):
        if req.acks == 0:
            return None
        p = produce
        return p.ProduceResponse(
            responses=[
                p.TopicProduceResponse(
                    name=t.name,
                    topic_id=t.topic_id,
                    partition_responses=[
                        p.PartitionProduceResponse(index=d.index, base_offset=0, log_start_offset=0)
                        for d in t.partition_data
                    ],
                )
                for t in req.topic_data
            ]
        )

    def _on_list_offsets(self, req, v):
        lo = list_offsets
        return lo.ListOffsetsResponse(
            topics=[
                lo.ListOffsetsTopicResponse(
                    name=t.name,
                    partitions=[
                        lo.ListOffsetsPartitionResponse(
                            partition_index=p.partition_index, old_style_offsets=[0], timestamp=-1, offset=0
                        )
                        for p in t.partitions
                    ],
                )
                for t in req.topics
            ]
        )

    def _on_fetch(self, req, v):
        time.sleep(self.fetch_delay_s)  # clients re-fetch at once on an empty answer
        f = fetch
        return f.FetchResponse(
            responses=[
                f.FetchableTopicResponse(
                    topic=t.topic,
                    topic_id=t.topic_id,
                    partitions=[
                        f.PartitionData(
                            partition_index=p.partition,
                            high_watermark=0,
                            last_stable_offset=0,
                            log_start_offset=0,
                            aborted_transactions=None,
                            records=b"",
                        )
                        for p in t.partitions
                    ],
                )
                for t in req.topics
            ]
        )

    def _on_offset_fetch(self, req, v):
        of = offset_fetch
        if v < 8:
            return of.OffsetFetchResponse(
                topics=[
                    of.OffsetFetchResponseTopic(
                        name=t.name,
                        partitions=[
                            of.OffsetFetchResponsePartition(partition_index=i, committed_offset=-1)
                            for i in t.partition_indexes
                        ],
                    )
                    for t in (req.topics or [])
                ]
            )
        return of.OffsetFetchResponse(
            groups=[
                of.OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    topics=[
                        of.OffsetFetchResponseTopics(
                            name=t.name,
                            topic_id=t.topic_id,
                            partitions=[
                                of.OffsetFetchResponsePartitions(partition_index=i, committed_offset=-1)
                                for i in t.partition_indexes
                            ],
                        )
                        for t in (g.topics or [])
                    ],
                )
                for g in req.groups
            ]
        )

    def _on_offset_commit(self, req, v):
        oc = offset_commit
        return oc.OffsetCommitResponse(
            topics=[
                oc.OffsetCommitResponseTopic(
                    name=t.name,
                    topic_id=t.topic_id,
                    partitions=[oc.OffsetCommitResponsePartition(partition_index=p.partition_index) for p in t.partitions],
                )
                for t in req.topics
            ]
        )

    def _on_txn_offset_commit(self, req, v):
        tc = txn_offset_commit
        return tc.TxnOffsetCommitResponse(
            topics=[
                tc.TxnOffsetCommitResponseTopic(
                    name=t.name,
                    partitions=[
                        tc.TxnOffsetCommitResponsePartition(partition_index=p.partition_index) for p in t.partitions
                    ],
                )
                for t in req.topics
            ]
        )

    def _on_add_partitions_to_txn(self, req, v):
        ap = add_partitions_to_txn

        def results(topics):
            return [
                ap.AddPartitionsToTxnTopicResult(
                    name=t.name,
                    results_by_partition=[ap.AddPartitionsToTxnPartitionResult(partition_index=i) for i in t.partitions],
                )
                for t in topics
            ]

        return ap.AddPartitionsToTxnResponse(
            results_by_topic_v3_and_below=results(req.v3_and_below_topics),
            results_by_transaction=[
                ap.AddPartitionsToTxnResult(transactional_id=t.transactional_id, topic_results=results(t.topics))
                for t in req.transactions
            ],
        )

    def _on_create_topics(self, req, v):
        ct = create_topics
        return ct.CreateTopicsResponse(
            topics=[
                ct.CreatableTopicResult(
                    name=t.name,
                    topic_id=topic_id(t.name),
                    num_partitions=max(t.num_partitions, 1),
                    replication_factor=1,
                    configs=[],
                )
                for t in req.topics
            ]
        )

    def _on_consumer_group_describe(self, req, v):
        # "Not a consumer-protocol group": clients then fall back to DescribeGroups.
        cg = consumer_group_describe
        return cg.ConsumerGroupDescribeResponse(
            groups=[cg.DescribedGroup(group_id=g, error_code=ErrorCode.GROUP_ID_NOT_FOUND) for g in req.group_ids]
        )

    def _on_describe_groups(self, req, v):
        dg = describe_groups
        return dg.DescribeGroupsResponse(
            groups=[dg.DescribedGroup(group_id=g, group_state="Empty", protocol_type="consumer") for g in req.groups]
        )


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
