"""Partition assignors of the classic consumer protocol: range, roundrobin, cooperative-sticky.

The group leader runs one of these on every member's subscription and sends the result
through SyncGroup. Pure functions: ``assign(members, partitions)`` where ``members`` maps
member id to a ``MemberSubscription`` (its topics and, for the sticky assignor, what it
owns now) and ``partitions`` maps topic to its partition count; the result maps member id
to ``{topic: [partitions]}``. Members are taken in member-id order, as Kafka's assignors do,
so every leader computes the same answer from the same input.

* ``range`` (Kafka's RangeAssignor): per topic, the partitions in order cut into one
  contiguous range per subscribed member, the first ``n % members`` getting one more.
* ``roundrobin``: every subscribed partition, in topic then partition order, dealt to the
  members in turn (skipping members not subscribed to the topic).
* ``cooperative-sticky`` (KIP-429): as balanced as possible while keeping every member's
  current partitions where the quota allows; a partition that moves away from a member
  that still owns it is left out of this round (its owner revokes it first, then the
  follow-up rebalance hands it over), so no partition is ever owned twice.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ASSIGNORS", "MemberSubscription", "cooperative_sticky", "range_assign", "roundrobin"]


class MemberSubscription(NamedTuple):
    topics: list
    owned: list = []  # [(topic, partition)]
    generation: int = -1


def _empty(members) -> dict:
    return {m: {} for m in members}


def range_assign(members: dict[str, MemberSubscription], partitions: dict[str, int]) -> dict:
    out = _empty(members)
    for topic in sorted(partitions):
        subs = sorted(m for m, s in members.items() if topic in s.topics)
        if not subs:
            continue
        n = partitions[topic]
        per, extra = divmod(n, len(subs))
        start = 0
        for i, m in enumerate(subs):
            count = per + (1 if i < extra else 0)
            if count:
                out[m][topic] = list(range(start, start + count))
            start += count
    return out


def roundrobin(members: dict[str, MemberSubscription], partitions: dict[str, int]) -> dict:
    out = _empty(members)
    order = sorted(members)
    i = 0
    for topic in sorted(partitions):
        for p in range(partitions[topic]):
            for _ in range(len(order)):
                m = order[i % len(order)]
                i += 1
                if topic in members[m].topics:
                    out[m].setdefault(topic, []).append(p)
                    break
    return out


def cooperative_sticky(members: dict[str, MemberSubscription], partitions: dict[str, int]) -> dict:
    order = sorted(members)
    all_parts = [(t, p) for t in sorted(partitions) for p in range(partitions[t])
                 if any(t in members[m].topics for m in order)]
    # Who owns what now; when two claim one partition, the higher generation wins.
    owner: dict[tuple, str] = {}
    owner_gen: dict[tuple, int] = {}
    for m in order:
        s = members[m]
        for tp in s.owned:
            tp = (tp[0], tp[1])
            if tp[0] in s.topics and tp[0] in partitions and tp[1] < partitions[tp[0]]:
                if tp not in owner or s.generation > owner_gen[tp]:
                    owner[tp], owner_gen[tp] = m, s.generation
    n_members = len(order)
    if not n_members:
        return {}
    base, extra = divmod(len(all_parts), n_members)
    assigned: dict[str, list] = {m: [] for m in order}
    # Keep owned partitions up to the quota (base, or base+1 for the first `extra` to claim it).
    ceil_left = extra
    for m in sorted(order, key=lambda m: -sum(1 for o in owner.values() if o == m)):
        mine = sorted(tp for tp, o in owner.items() if o == m)
        quota = base + (1 if ceil_left > 0 and len(mine) > base else 0)
        if quota > base:
            ceil_left -= 1
        assigned[m] = mine[:quota]
    taken = {tp for lst in assigned.values() for tp in lst}
    for tp in all_parts:
        if tp in taken:
            continue
        candidates = [m for m in order if tp[0] in members[m].topics]
        if not candidates:
            continue
        m = min(candidates, key=lambda m: (len(assigned[m]), m))
        assigned[m].append(tp)
    out = _empty(members)
    for m, lst in assigned.items():
        for t, p in sorted(lst):
            prev = owner.get((t, p))
            if prev is not None and prev != m:
                continue  # its owner gives it up first (cooperative: revoke, then reassign)
            out[m].setdefault(t, []).append(p)
    return out


ASSIGNORS = {
    "range": range_assign,
    "roundrobin": roundrobin,
    "cooperative-sticky": cooperative_sticky,
}
COOPERATIVE = {"cooperative-sticky"}
