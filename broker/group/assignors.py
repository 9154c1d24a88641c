"""Server-side assignors of KIP-848 consumer groups: "uniform" (the default) and "range".

Theory of operation
-------------------
An assignor is a pure function from the group's members (their subscriptions) and the
subscribed topics' partition counts, plus the current target assignment, to a new target
assignment: member id -> {topic: set of partitions}. The coordinator then reconciles
members towards it incrementally; the assignor never worries about who still owns what.

* ``uniform`` (Kafka's UniformAssignor): every partition of a subscribed topic goes to one
  member subscribed to that topic, loads as even as the subscriptions allow, and as few
  partitions as possible move: a member keeps what it had unless balance needs it to give
  some up. Greedy: keep the valid part of the current assignment, give each unassigned
  partition to the least-loaded eligible member, then move partitions from the most to
  the least loaded eligible member while that narrows the gap by more than one.
* ``range`` (Kafka's RangeAssignor, server side): topic by topic, the members subscribed to
  the topic in a stable order (instance id, else member id) each get a contiguous range of
  partitions, the first ``partitions % members`` one more. Co-partitioned topics thus land
  on the same members.

Both are deterministic (ties broken by member id), which the tests rely on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ASSIGNORS", "DEFAULT_ASSIGNOR", "AssignmentMember", "Assignment", "assign"]

Assignment = dict[str, dict[str, set[int]]]  # member id -> topic -> partitions


@dataclass(frozen=True, slots=True)
class AssignmentMember:
    member_id: str
    instance_id: str | None
    topics: frozenset[str]  # subscribed topics that exist


def _uniform(members: list[AssignmentMember], partitions: Mapping[str, int],
             current: Mapping[str, Mapping[str, set[int]]]) -> Assignment:
    by_id = {m.member_id: m for m in members}
    owner: dict[tuple[str, int], str] = {}
    load = {m.member_id: 0 for m in members}
    out: Assignment = {m.member_id: {} for m in members}

    def give(tp: tuple[str, int], member_id: str) -> None:
        owner[tp] = member_id
        out[member_id].setdefault(tp[0], set()).add(tp[1])
        load[member_id] += 1

    def take(tp: tuple[str, int]) -> str:
        member_id = owner.pop(tp)
        parts = out[member_id][tp[0]]
        parts.discard(tp[1])
        if not parts:
            del out[member_id][tp[0]]
        load[member_id] -= 1
        return member_id

    # 1. Stickiness: what a member still may have, it keeps.
    for member_id in sorted(current):
        m = by_id.get(member_id)
        if m is None:
            continue
        for topic, parts in sorted(current[member_id].items()):
            if topic not in m.topics:
                continue
            for p in sorted(parts):
                if p < partitions.get(topic, 0) and (topic, p) not in owner:
                    give((topic, p), member_id)
    eligible: dict[str, list[str]] = {
        t: sorted(m.member_id for m in members if t in m.topics) for t in partitions}
    # 2. Every partition somebody can take gets a member.
    for topic in sorted(partitions):
        if not eligible[topic]:
            continue
        for p in range(partitions[topic]):
            if (topic, p) not in owner:
                give((topic, p), min(eligible[topic], key=lambda mid: (load[mid], mid)))
    # 3. Balance: each move lowers the sum of squared loads, so this ends.
    moved = True
    while moved:
        moved = False
        for src in sorted(load, key=lambda mid: (-load[mid], mid)):
            for topic, parts in sorted(out[src].items()):
                for p in sorted(parts, reverse=True):
                    dst = min(eligible[topic], key=lambda mid: (load[mid], mid))
                    if load[dst] < load[src] - 1:
                        take((topic, p))
                        give((topic, p), dst)
                        moved = True
                        break
                if moved:
                    break
            if moved:
                break
    return out


def _range(members: list[AssignmentMember], partitions: Mapping[str, int],
           current: Mapping[str, Mapping[str, set[int]]]) -> Assignment:
    out: Assignment = {m.member_id: {} for m in members}
    for topic in sorted(partitions):
        subscribers = sorted((m for m in members if topic in m.topics),
                             key=lambda m: (m.instance_id or m.member_id, m.member_id))
        if not subscribers:
            continue
        n = partitions[topic]
        quota, extra = divmod(n, len(subscribers))
        start = 0
        for i, m in enumerate(subscribers):
            size = quota + (1 if i < extra else 0)
            if size:
                out[m.member_id][topic] = set(range(start, start + size))
            start += size
    return out


ASSIGNORS = {"uniform": _uniform, "range": _range}
DEFAULT_ASSIGNOR = "uniform"


def assign(name: str, members: list[AssignmentMember], partitions: Mapping[str, int],
           current: Mapping[str, Mapping[str, set[int]]]) -> Assignment:
    """The target assignment ``name`` computes; every member appears (maybe with nothing)."""
    return ASSIGNORS[name](members, partitions, current)
