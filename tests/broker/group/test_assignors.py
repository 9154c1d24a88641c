"""The server-side assignors: complete, balanced where subscriptions allow, sticky (uniform)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kafkito.broker.group.assignors import AssignmentMember, assign


def members(spec: dict[str, set[str]]) -> list[AssignmentMember]:
    return [AssignmentMember(m, None, frozenset(ts)) for m, ts in spec.items()]


def flat(a) -> list[tuple[str, int]]:
    return sorted((t, p) for tps in a.values() for t, ps in tps.items() for p in ps)


def test_uniform_two_members_four_partitions_split_evenly():
    a = assign("uniform", members({"m1": {"t"}, "m2": {"t"}}), {"t": 4}, {})
    assert flat(a) == [("t", p) for p in range(4)]
    assert sorted(len(a[m].get("t", ())) for m in a) == [2, 2]


def test_uniform_is_sticky_when_a_member_joins():
    before = {"m1": {"t": {0, 1, 2}}, "m2": {"t": {3, 4, 5}}}
    a = assign("uniform", members({"m1": {"t"}, "m2": {"t"}, "m3": {"t"}}), {"t": 6}, before)
    assert a["m1"]["t"] <= before["m1"]["t"] and a["m2"]["t"] <= before["m2"]["t"]
    assert len(a["m3"]["t"]) == 2


def test_range_gives_contiguous_ranges_first_members_one_more():
    a = assign("range", members({"b": {"t", "u"}, "a": {"t", "u"}}), {"t": 5, "u": 5}, {})
    assert a["a"] == {"t": {0, 1, 2}, "u": {0, 1, 2}}
    assert a["b"] == {"t": {3, 4}, "u": {3, 4}}


def test_partitions_nobody_subscribes_to_stay_unassigned():
    a = assign("uniform", members({"m1": {"t"}}), {"t": 2, "u": 3}, {})
    assert flat(a) == [("t", 0), ("t", 1)]


@given(st.sampled_from(["uniform", "range"]),
       st.dictionaries(st.sampled_from(["m1", "m2", "m3", "m4"]),
                       st.sets(st.sampled_from(["t", "u"]), min_size=1), min_size=1),
       st.integers(0, 9), st.integers(0, 9),
       st.dictionaries(st.sampled_from(["m1", "m2", "m3", "m4", "gone"]),
                       st.dictionaries(st.sampled_from(["t", "u", "x"]),
                                       st.sets(st.integers(0, 12), max_size=5))))
def test_every_subscribed_partition_once_and_balanced_for_equal_subscriptions(name, spec, nt, nu, current):
    counts = {"t": nt, "u": nu}
    a = assign(name, members(spec), counts, current)
    got = flat(a)
    assert len(got) == len(set(got))
    want = sorted((t, p) for t, n in counts.items() if any(t in ts for ts in spec.values()) for p in range(n))
    assert got == want
    for m, tps in a.items():
        assert set(tps) <= spec[m]
    if name == "uniform" and len({frozenset(ts) for ts in spec.values()}) == 1:
        loads = [sum(len(ps) for ps in tps.values()) for tps in a.values()]
        assert max(loads) - min(loads) <= 1
