"""Produce's handler: what its deferred fsync wait keeps alive."""

from __future__ import annotations

import gc

import trio

from kafkito.broker.context import Deferred, RequestContext
from kafkito.protocol import ApiKey, RequestHeader
from kafkito.protocol.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kafkito.records import build_batch


def test_an_acks_all_produce_waiting_for_its_fsync_does_not_hold_its_frame(state):
    """Regression: the fsync wait kept the whole request, and with it the frame its records
    are views of. Under pipelined acks=all that kept ~140 MB of frames alive and made every
    new frame fresh memory (15 % of the broker thread in page faults)."""
    state.logs.create_topic("t", 1)
    frame = bytearray(build_batch([(b"k", b"v" * 1000, [], 1_700_000_000_000)]))
    request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(
        name="t", partition_data=[PartitionProduceData(index=0, records=memoryview(frame))])])
    header = RequestHeader(api_key=ApiKey.PRODUCE, api_version=9, correlation_id=1, client_id="t")
    handler = state.handlers[ApiKey.PRODUCE]

    async def main():
        nonlocal request
        deferred = await handler.handle(RequestContext(header, state), request)
        assert isinstance(deferred, Deferred)
        del request
        gc.collect()
        frame.append(0)  # BufferError while anything still views the frame
        frame.pop()
        response = await deferred.wait()
        part = response.responses[0].partition_responses[0]
        assert (part.error_code, part.base_offset) == (0, 0)

    trio.run(main)
    assert state.logs.log("t", 0).flushed_offset == 1
