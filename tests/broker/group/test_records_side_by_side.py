"""The old hand-written __consumer_offsets codec and the DSL declarations side by side:
same bytes for every value the coordinator can write, same values for every version read.
(Removed together with the old codec; tests/protocol/test_records.py keeps its bytes.)"""

from hypothesis import given
from hypothesis import strategies as st

from kafkito.broker.group import records as old
from kafkito.protocol.records import group_coordinator as gc

text = st.text(max_size=10)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)


@given(text, text, i32, i64, text, i64, i32, st.one_of(st.just(-1), st.integers(0, 2**63 - 1)))
def test_offset_commit_same_bytes(group, topic, partition, offset, meta, ts, epoch, expire):
    k, v = old.encode_offset_commit(old.OffsetCommitKey(group, topic, partition),
                                    old.OffsetCommitValue(offset, meta, ts, epoch, expire))
    version = 1 if expire >= 0 else 3
    new_key = gc.OffsetCommitKey(group=group, topic=topic, partition=partition)
    new_value = gc.OffsetCommitValue(offset=offset, leader_epoch=epoch if version == 3 else -1, metadata=meta,
                                     commit_timestamp=ts, expire_timestamp=expire if version == 1 else -1)
    assert gc.OFFSET_COMMIT.encode_key(new_key) == k
    assert gc.OFFSET_COMMIT.encode_value(new_value, version) == v
    assert gc.OFFSET_COMMIT.decode_value(v) == (version, new_value)


member = st.tuples(text, st.one_of(st.none(), text), text, text, i32, i32, st.binary(max_size=8),
                   st.binary(max_size=8))


@given(text, text, i32, st.one_of(st.none(), text), st.one_of(st.none(), text), i64, st.lists(member, max_size=3))
def test_group_metadata_same_bytes(group, ptype, gen, protocol, leader, ts, members):
    k, v = old.encode_group_metadata(
        old.GroupMetadataKey(group),
        old.GroupMetadataValue(ptype, gen, protocol, leader, ts, tuple(old.MemberMetadata(*m) for m in members)))
    new_value = gc.GroupMetadataValue(
        protocol_type=ptype, generation=gen, protocol=protocol, leader=leader, current_state_timestamp=ts,
        members=[gc.MemberMetadata(member_id=m[0], group_instance_id=m[1], client_id=m[2], client_host=m[3],
                                   rebalance_timeout=m[4], session_timeout=m[5], subscription=m[6],
                                   assignment=m[7]) for m in members])
    assert gc.GROUP_METADATA.encode_key(gc.GroupMetadataKey(group=group)) == k
    assert gc.GROUP_METADATA.encode_value(new_value, 3) == v
    assert gc.GROUP_METADATA.decode_value(v) == (3, new_value)
