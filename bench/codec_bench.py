"""Codec micro-benchmark: the broker's hot paths through kafkito.protocol.

    python -m bench.codec_bench [--seconds 1.0]

Cases: decode and re-encode a Produce request carrying one 16 KB record batch (v7 as
aiokafka sends it, v10 as librdkafka does), and encode / decode a Fetch response with 10
partitions of 1 KB each (v11 classic, v16 flexible), plus the Fetch encode with
RecordsRef chunks (what the broker does before sendfile). Prints microseconds per
operation (best of 5 runs). A benchmark, not a test: the figures go in closing notes, as
measured on the machine at hand.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from kafkito.protocol import (
    ApiKey,
    RecordsRef,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    encode_response_bytes,
)
from kafkito.protocol.messages import fetch, produce


class _FileRange(RecordsRef):
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def _produce_frame(version: int) -> memoryview:
    body = produce.ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=30000,
        topic_data=[
            produce.TopicProduceData(
                name="bench-topic",
                partition_data=[produce.PartitionProduceData(index=0, records=os.urandom(16 * 1024))],
            )
        ],
    )
    return memoryview(encode_request(ApiKey.PRODUCE, version, 1, "bench-client", body))[4:]


def _fetch_response(records) -> fetch.FetchResponse:
    return fetch.FetchResponse(
        responses=[
            fetch.FetchableTopicResponse(
                topic="bench-topic",
                topic_id=uuid.UUID(int=7),
                partitions=[
                    fetch.PartitionData(
                        partition_index=i,
                        high_watermark=1000 + i,
                        last_stable_offset=1000 + i,
                        log_start_offset=0,
                        aborted_transactions=None,
                        records=records(i),
                    )
                    for i in range(10)
                ],
            )
        ]
    )


def _best_us(fn, seconds: float) -> float:
    # Calibrate a batch that takes ~seconds/5, then keep the best of 5 batches.
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - start
        if took > seconds / 5 or n > 1 << 22:
            break
        n *= 2
    best = took / n
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def cases():
    out = {}
    for v in (7, 10):
        frame = _produce_frame(v)

        def produce_round_trip(frame=frame, v=v):
            header, body = decode_request(frame)
            encode_request(ApiKey.PRODUCE, v, header.correlation_id, header.client_id, body)

        def produce_decode(frame=frame):
            decode_request(frame)

        out[f"Produce v{v} 16 KB: decode"] = produce_decode
        out[f"Produce v{v} 16 KB: decode+encode"] = produce_round_trip
    blob = os.urandom(1024)
    for v in (11, 16):
        inline = _fetch_response(lambda i: blob)
        refs = _fetch_response(lambda i: _FileRange(1024))
        wire = memoryview(encode_response_bytes(ApiKey.FETCH, v, 1, inline))[4:]

        out[f"Fetch v{v} 10x1 KB: encode (bytes)"] = lambda v=v, r=inline: encode_response(ApiKey.FETCH, v, 1, r)
        out[f"Fetch v{v} 10x1 KB: encode (RecordsRef)"] = lambda v=v, r=refs: encode_response(ApiKey.FETCH, v, 1, r)
        out[f"Fetch v{v} 10x1 KB: decode"] = lambda v=v, w=wire: decode_response(ApiKey.FETCH, v, w)

        def fetch_round_trip(v=v, r=inline):
            frame = encode_response_bytes(ApiKey.FETCH, v, 1, r)
            decode_response(ApiKey.FETCH, v, memoryview(frame)[4:])

        out[f"Fetch v{v} 10x1 KB: encode+decode"] = fetch_round_trip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time budget per case")
    args = parser.parse_args()
    for name, fn in cases().items():
        fn()  # build and cache the generated codecs first
        us = _best_us(fn, args.seconds)
        print(f"{name:42s} {us:9.2f} us/op  {1e6 / us:11.0f} ops/s")


if __name__ == "__main__":
    main()
