"""InitProducerId when the producer-id block cannot be written (found by the simulation,
seeds 81 and 163: the handler raised and the connection closed without an answer;
the same fix landed from the diskfull branch, this pins the failed-fsync case)."""

from __future__ import annotations

import errno

import trio

from kafkito.broker.context import RequestContext
from kafkito.broker.producer_ids import ProducerIdManager
from kafkito.protocol import ApiKey, ErrorCode, RequestHeader
from kafkito.protocol.messages.init_producer_id import InitProducerIdRequest
from kafkito.storage.fileio import FileIO


class FailingFsync(FileIO):
    def __init__(self) -> None:
        self.failing = True

    def fsync(self, fd: int) -> None:
        if self.failing:
            raise OSError(errno.EIO, "injected")
        super().fsync(fd)


def _init(state):
    header = RequestHeader(api_key=ApiKey.INIT_PRODUCER_ID, api_version=3, correlation_id=1, client_id="t")
    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000)
    return trio.run(state.handlers[ApiKey.INIT_PRODUCER_ID].handle, RequestContext(header, state), request)


def test_init_producer_id_answers_an_error_when_the_id_block_cannot_be_written(state, tmp_path):
    io = FailingFsync()
    state.producer_ids = ProducerIdManager(str(tmp_path), io)
    r = _init(state)
    assert (r.error_code, r.producer_id) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1)
    io.failing = False
    r = _init(state)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (ErrorCode.NONE, 0, 0)
    # The block written on the retry is the one recorded: a restart resumes past it.
    assert ProducerIdManager(str(tmp_path)).next_id() == 1000
