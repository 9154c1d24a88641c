"""KIP-848 groups through GroupService under trio's MockClock: a silent member's session
ends on the timer task alone, and the group's offsets outlive it as a simple group."""

from __future__ import annotations

import trio
from test_service import make_service, run

from kafkito.broker.group.coordinator import OffsetCommitEntry
from kafkito.protocol import ErrorCode

E = ErrorCode


def test_consumer_member_session_expires_on_the_timer_task_alone(logs):  # noqa: F811
    async def body():
        service, _ = make_service(logs)
        await service.load()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            r = service.consumer_group_heartbeat(group_id="g", member_id="", member_epoch=0,
                                                 instance_id=None, rack_id=None, rebalance_timeout_ms=10_000,
                                                 subscribed_topic_names=["t"], subscribed_topic_regex=None,
                                                 server_assignor=None, owned={}, topics={"t": 2})
            assert r.error == E.NONE and r.assignment == {"t": {0, 1}}
            committed = await service.wait(service.commit_offsets(
                group_id="g", member_id=r.member_id, group_instance_id=None,
                generation_id=r.member_epoch, topics=[("t", [OffsetCommitEntry(0, 7)])], api_version=9))
            assert committed == [("t", [(0, E.NONE)])]
            session_s = service.config.group_consumer_session_timeout_ms / 1000
            await trio.sleep(session_s - 0.1)
            assert "g" in service.coordinator.consumer.groups
            await trio.sleep(0.2)  # nobody calls the service: its timer notices the expiry
            assert "g" not in service.coordinator.consumer.groups
            assert [(g.group_id, g.group_type) for g in service.list_groups()] == [("g", "classic")]
            fetched = service.fetch_offsets(group_id="g", topics=[("t", [0])])
            assert fetched[0][1][0].offset == 7
            nursery.cancel_scope.cancel()

    run(body)
