"""The classic protocol's assignors as pure functions: every subscribed partition goes to
exactly one subscribed member (or, for cooperative-sticky, is held back while its previous
owner still has it), loads are balanced, and sticky keeps what members own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.client.assignors import ASSIGNORS, MemberSubscription, cooperative_sticky

topics = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 8), min_size=1)


@st.composite
def groups(draw):
    parts = draw(topics)
    names = draw(st.lists(st.text("mnopq", min_size=1, max_size=3), min_size=1, max_size=5, unique=True))
    members = {m: MemberSubscription(draw(st.lists(st.sampled_from(sorted(parts)), min_size=1, unique=True)))
               for m in names}
    return members, parts


def _flat(plan):
    return [(t, p, m) for m, tps in plan.items() for t, ps in tps.items() for p in ps]


@settings(max_examples=200, deadline=None)
@given(groups(), st.sampled_from(sorted(ASSIGNORS)))
def test_each_subscribed_partition_goes_to_one_subscribed_member(group, name):
    members, parts = group
    plan = ASSIGNORS[name](members, parts)
    flat = _flat(plan)
    owned = [(t, p) for t, p, _ in flat]
    assert len(owned) == len(set(owned)), "a partition assigned twice"
    assert all(t in members[m].topics for t, p, m in flat), "a partition of a topic the member did not ask for"
    wanted = {(t, p) for t in parts for p in range(parts[t]) if any(t in s.topics for s in members.values())}
    assert set(owned) == wanted


@settings(max_examples=200, deadline=None)
@given(groups())
def test_roundrobin_and_sticky_balance_members_with_one_subscription(group):
    members, parts = group
    same = {m: MemberSubscription(sorted(parts)) for m in members}
    for name in ("roundrobin", "cooperative-sticky"):
        counts = [sum(len(ps) for ps in tps.values()) for tps in ASSIGNORS[name](same, parts).values()]
        assert max(counts) - min(counts) <= 1, (name, counts)


@settings(max_examples=200, deadline=None)
@given(groups(), st.data())
def test_cooperative_sticky_never_hands_over_a_partition_its_owner_still_has(group, data):
    members, parts = group
    first = cooperative_sticky(members, parts)
    # Members leave and join; the survivors report what they own.
    names = list(members)
    leaving = set(data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names) - 1)))
    again = {m: MemberSubscription(members[m].topics, [(t, p) for t, ps in first[m].items() for p in ps], 1)
             for m in names if m not in leaving}
    again["zz-new"] = MemberSubscription(sorted(parts))
    second = cooperative_sticky(again, parts)
    for t, p, m in _flat(second):
        prev = [o for o in again if (t, p) in again[o].owned]
        assert not prev or prev == [m], f"{t}-{p} given to {m} while {prev} still owns it"


@settings(max_examples=200, deadline=None)
@given(topics, st.integers(1, 4))
def test_cooperative_sticky_keeps_what_members_own_up_to_their_share(parts, n):
    everyone = sorted(parts)
    members = {f"m{i}": MemberSubscription(everyone) for i in range(n)}
    first = cooperative_sticky(members, parts)
    again = {m: MemberSubscription(everyone, [(t, p) for t, ps in first[m].items() for p in ps], 1) for m in members}
    again["new"] = MemberSubscription(everyone)
    second = cooperative_sticky(again, parts)
    share = sum(parts.values()) // len(again)
    for m in members:
        kept = sum(len(ps) for ps in second[m].values())
        assert kept >= min(share, len(again[m].owned)), (m, kept, share)
        assert all((t, p) in again[m].owned for t, ps in second[m].items() for p in ps), "an old member gained"
